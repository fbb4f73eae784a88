//! A log-linear latency histogram: constant memory, no allocation per sample, about 3 %
//! relative error.
//!
//! Values below 32 ns have a bucket each; above that, every power of two is cut into 32
//! equal buckets, so a bucket's width is at most 1/32 of its lower bound. A quantile is
//! reported as the upper bound of the bucket it falls in (never optimistic).

use std::time::Duration;

/// Sub-buckets per power of two (`2^SUB_BITS`).
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Buckets for every `u64` nanosecond count: 32 exact ones, then 32 per power of two from
/// 2^5 to 2^63.
const BUCKETS: usize = SUB * (64 - SUB_BITS as usize + 1);

/// Counts of latencies, in nanoseconds.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
        }
    }
}

fn index(ns: u64) -> usize {
    if ns < SUB as u64 {
        return ns as usize;
    }
    let msb = 63 - ns.leading_zeros();
    let shift = msb - SUB_BITS;
    let sub = ((ns >> shift) as usize) & (SUB - 1);
    (shift as usize + 1) * SUB + sub
}

/// The largest value that falls in bucket `i`.
fn upper_bound(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let shift = (i / SUB - 1) as u32;
    let low = ((SUB + i % SUB) as u64) << shift;
    low + ((1u64 << shift) - 1)
}

impl Histogram {
    /// Count one latency.
    #[inline]
    pub fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.counts[index(ns)] += 1;
        self.total += 1;
    }

    /// The latency below or at which a fraction `q` (0..=1) of the samples fall; `None` when
    /// empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Duration::from_nanos(upper_bound(i)));
            }
        }
        unreachable!("rank <= total")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_falls_in_a_bucket_that_holds_it() {
        for ns in (0..5000).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let i = index(ns);
            assert!(i < BUCKETS, "{ns} -> {i}");
            assert!(upper_bound(i) >= ns, "{ns} above its bucket {i}");
            assert!(
                i == 0 || upper_bound(i - 1) < ns,
                "{ns} below its bucket {i}"
            );
        }
    }

    #[test]
    fn relative_error_is_under_one_thirty_second() {
        for ns in [33u64, 1000, 123_456, 9_999_999] {
            let ub = upper_bound(index(ns));
            assert!((ub - ns) as f64 / ns as f64 <= 1.0 / 32.0, "{ns} -> {ub}");
        }
    }

    #[test]
    fn quantiles_of_a_uniform_sample() {
        let mut h = Histogram::default();
        for us in 1..=100u64 {
            h.record(Duration::from_micros(us));
        }
        let p99 = h.quantile(0.99).unwrap().as_nanos() as f64;
        assert!((99_000.0..=99_000.0 * 1.04).contains(&p99), "{p99}");
        let p50 = h.quantile(0.5).unwrap().as_nanos() as f64;
        assert!((50_000.0..=50_000.0 * 1.04).contains(&p50), "{p50}");
        assert_eq!(Histogram::default().quantile(0.5), None);
    }
}
