//! Deciding whether a server grew, and the numbers the report prints.
//!
//! **Growth** compares the largest value of each resource (RSS, fds, threads) in the last
//! third of the samples with the largest in the first third: it grew if the last third's exceeds
//! the first third's by more than a tolerance ([`Tolerance`]). Maxima, not means, so that a
//! server which holds a steady plateau under steady load passes however its samples fall,
//! and one that keeps climbing fails. The first third includes warm-up (allocator arenas,
//! page-ins, io-wq workers started on demand), which is why the tolerance is not zero.
//!
//! **Quiet** compares fds and threads after all clients have gone (given time to settle)
//! with the values before any client came: a leaked fd or a thread that never ends shows
//! there without the noise of load.

use std::fmt;
use std::time::Duration;

use super::procs::Usage;

/// How much a resource may grow from the first third to the last: the limit is the first
/// third's maximum plus the larger of `pct` percent of it and `abs`.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    pub pct: u64,
    pub abs: u64,
}

impl Tolerance {
    pub fn limit(self, first: u64) -> u64 {
        first + (first * self.pct / 100).max(self.abs)
    }
}

/// RSS: 25 % or 64 MiB. The NBD clients legitimately swing the server's RSS by tens of MiB
/// from one sample to the next (the resetter alone queues 16 reads of 4 MiB), and a 60 s
/// run has only two samples per third.
pub const RSS: Tolerance = Tolerance {
    pct: 25,
    abs: 64 << 20,
};
/// fds: 10 % or 16.
pub const FDS: Tolerance = Tolerance { pct: 10, abs: 16 };
/// Threads: 4 (io-wq workers come and go with the load).
pub const THREADS: Tolerance = Tolerance { pct: 0, abs: 4 };

/// After the load: fds may exceed the value before it by this many.
pub const QUIET_FDS: u64 = 2;
/// After the load: threads may exceed the value before it by this many (idle io-wq workers
/// exit after a few seconds, but the soak waits only so long).
pub const QUIET_THREADS: u64 = 2;

/// One resource's first-third and last-third maxima.
#[derive(Clone, Copy, Debug)]
pub struct Growth {
    pub what: &'static str,
    pub first: u64,
    pub last: u64,
    pub limit: u64,
    bytes: bool,
}

impl Growth {
    pub fn grew(&self) -> bool {
        self.last > self.limit
    }
}

impl fmt::Display for Growth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = |x: u64| if self.bytes { mib(x) } else { x.to_string() };
        write!(
            f,
            "{} {} -> {} (limit {}){}",
            self.what,
            v(self.first),
            v(self.last),
            v(self.limit),
            if self.grew() { " GREW" } else { "" }
        )
    }
}

/// Growth of RSS, fds and threads over `samples` (in time order): the first third of them
/// against the last third; `None` with fewer than 3 samples.
pub fn growth(samples: &[Usage]) -> Option<[Growth; 3]> {
    let third = samples.len() / 3;
    if third == 0 {
        return None;
    }
    let first = &samples[..third];
    let last = &samples[samples.len() - third..];
    let one = |what, get: fn(&Usage) -> u64, tol: Tolerance, bytes| {
        let f = first.iter().map(get).max().unwrap();
        let l = last.iter().map(get).max().unwrap();
        Growth {
            what,
            first: f,
            last: l,
            limit: tol.limit(f),
            bytes,
        }
    };
    Some([
        one("rss", |u| u.rss, RSS, true),
        one("fds", |u| u.fds, FDS, false),
        one("threads", |u| u.threads, THREADS, false),
    ])
}

/// The `q` quantile (0..=1) of sorted `v`, rounded up; zero if empty.
pub fn quantile(v: &[Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

/// `bytes` in MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1}M", bytes as f64 / (1 << 20) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(rss: u64, fds: u64, threads: u64) -> Usage {
        Usage { rss, fds, threads }
    }

    #[test]
    fn a_plateau_passes_and_a_climb_fails() {
        let s = |fds: u64| u(100 << 20, fds, 5);
        let flat = [s(50), s(70), s(60), s(66), s(55), s(70)];
        let g = growth(&flat).unwrap();
        assert!(g.iter().all(|g| !g.grew()), "{g:?}");
        let climb = [s(50), s(60), s(70), s(80), s(90), s(100)];
        let g = growth(&climb).unwrap();
        assert!(g[1].grew());
        assert!(!g[0].grew() && !g[2].grew());
        assert!(growth(&climb[..2]).is_none());
    }

    #[test]
    fn quantiles_round_up() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&v, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&v[..1], 0.99), Duration::from_millis(1));
        assert_eq!(quantile(&[], 0.99), Duration::ZERO);
    }
}
