//! Repeating a measurement and summarising its runs.

use std::time::Duration;

/// The wall times of the runs of one row.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Sorted, shortest first; never empty.
    times: Vec<Duration>,
}

impl Summary {
    /// A summary of `times`.
    ///
    /// # Panics
    /// If `times` is empty.
    pub fn new(mut times: Vec<Duration>) -> Self {
        assert!(!times.is_empty(), "a summary needs at least one run");
        times.sort_unstable();
        Summary { times }
    }

    /// The median time (the mean of the two middle runs for an even count).
    pub fn median(&self) -> Duration {
        let n = self.times.len();
        if n % 2 == 1 {
            self.times[n / 2]
        } else {
            (self.times[n / 2 - 1] + self.times[n / 2]) / 2
        }
    }

    /// The shortest run.
    pub fn min(&self) -> Duration {
        self.times[0]
    }

    /// The longest run.
    pub fn max(&self) -> Duration {
        self.times[self.times.len() - 1]
    }

    /// Throughput of `ops` operations per run: (median, lowest, highest) in ops/s.
    pub fn rate(&self, ops: u64) -> (f64, f64, f64) {
        let r = |d: Duration| ops as f64 / d.as_secs_f64();
        (r(self.median()), r(self.max()), r(self.min()))
    }

    /// Time per item for `items` items per run: (median, min, max) in nanoseconds.
    pub fn per_item_ns(&self, items: u64) -> (f64, f64, f64) {
        let p = |d: Duration| d.as_nanos() as f64 / items as f64;
        (p(self.median()), p(self.min()), p(self.max()))
    }
}

/// Run `run` once untimed to warm caches, allocators and the ring, then `runs` times; `run`
/// returns the wall time of its timed part.
pub fn repeat(runs: usize, mut run: impl FnMut() -> Duration) -> Summary {
    let _warm_up = run();
    Summary::new((0..runs.max(1)).map(|_| run()).collect())
}

/// `(median, min, max)` of values that are not times (rates, ratios); the median of an even
/// count is the mean of the two middle values. All NaN for an empty slice.
pub fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => (f64::NAN, f64::NAN, f64::NAN),
        _ if n % 2 == 1 => (v[n / 2], v[0], v[n - 1]),
        _ => ((v[n / 2 - 1] + v[n / 2]) / 2.0, v[0], v[n - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn odd_count_median_is_the_middle_run() {
        let s = Summary::new(ms(&[30, 10, 20]));
        assert_eq!(s.median(), Duration::from_millis(20));
        assert_eq!(s.min(), Duration::from_millis(10));
        assert_eq!(s.max(), Duration::from_millis(30));
    }

    #[test]
    fn even_count_median_is_the_mean_of_the_middle_runs() {
        let s = Summary::new(ms(&[40, 10, 20, 30]));
        assert_eq!(s.median(), Duration::from_millis(25));
    }

    #[test]
    fn rate_reports_slowest_run_as_lowest_rate() {
        let s = Summary::new(ms(&[1000, 500, 2000]));
        assert_eq!(s.rate(1000), (1000.0, 500.0, 2000.0));
    }

    #[test]
    fn spread_of_values() {
        assert_eq!(spread(&[3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(spread(&[4.0, 1.0, 2.0, 3.0]), (2.5, 1.0, 4.0));
        assert!(spread(&[]).0.is_nan());
    }
}
