//! The NBD bench's sampler: the CPU time of the server and the client, and how busy the
//! CPUs are, read while a run goes on.
//!
//! fio reports its measured window only when it is done, in wall-clock time, so the
//! [`Sampler`] reads both processes and `/proc/stat` ([`ringleader_bench::procfs`]) every
//! [`PERIOD`]; [`Samples::between`] interpolates linearly between the two samples around each
//! end of a window given in wall-clock time, which is how the client reports it (fio's
//! `timestamp_ms` and `runtime`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ringleader_bench::procfs::{cpu_ticks, proc_ticks};

/// Time between two samples.
pub const PERIOD: Duration = Duration::from_millis(20);

/// Milliseconds since the Unix epoch, as fio stamps its report.
pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// One reading, in ticks; `at` in ms since the epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    pub at: f64,
    pub server: f64,
    pub client: f64,
    /// The bench itself (the sampler).
    pub bench: f64,
    pub busy: f64,
    pub steal: f64,
    pub total: f64,
}

impl Sample {
    fn lerp(a: &Sample, b: &Sample, at: f64) -> Sample {
        let span = b.at - a.at;
        let k = if span > 0.0 {
            ((at - a.at) / span).clamp(0.0, 1.0)
        } else {
            1.0
        };
        let l = |x: f64, y: f64| x + (y - x) * k;
        Sample {
            at,
            server: l(a.server, b.server),
            client: l(a.client, b.client),
            bench: l(a.bench, b.bench),
            busy: l(a.busy, b.busy),
            steal: l(a.steal, b.steal),
            total: l(a.total, b.total),
        }
    }

    fn minus(&self, earlier: &Sample) -> Sample {
        Sample {
            at: self.at - earlier.at,
            server: self.server - earlier.server,
            client: self.client - earlier.client,
            bench: self.bench - earlier.bench,
            busy: self.busy - earlier.busy,
            steal: self.steal - earlier.steal,
            total: self.total - earlier.total,
        }
    }
}

/// A thread that samples until stopped.
#[derive(Debug)]
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Samples>,
}

impl Sampler {
    /// Start sampling `server`, `client` and `cpus` (the thread inherits the caller's CPU
    /// mask). A process whose stat cannot be read any more keeps its last value: it has
    /// exited and uses no more CPU.
    pub fn start(server: u32, client: u32, cpus: &[usize]) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let cpus = cpus.to_vec();
        let bench = std::process::id();
        let thread = std::thread::spawn(move || {
            let mut v: Vec<Sample> = Vec::with_capacity(1024);
            loop {
                let last = v.last().copied().unwrap_or_default();
                let (busy, steal, total) = cpu_ticks(&cpus);
                let ticks = |pid: u32, last: f64| proc_ticks(pid).map_or(last, |t| t as f64);
                v.push(Sample {
                    at: now_ms(),
                    server: ticks(server, last.server),
                    client: ticks(client, last.client),
                    bench: ticks(bench, last.bench),
                    busy: busy as f64,
                    steal: steal as f64,
                    total: total as f64,
                });
                if flag.load(Ordering::Acquire) {
                    return Samples(v);
                }
                std::thread::sleep(PERIOD);
            }
        });
        Sampler { stop, thread }
    }

    /// Take one last sample and return them all.
    pub fn stop(self) -> Samples {
        self.stop.store(true, Ordering::Release);
        self.thread.join().unwrap_or(Samples(Vec::new()))
    }
}

/// Samples in time order.
#[derive(Clone, Debug)]
pub struct Samples(Vec<Sample>);

impl Samples {
    /// The interpolated reading at `at` (clamped to the first and last sample).
    fn at(&self, at: f64) -> Option<Sample> {
        let i = self.0.partition_point(|s| s.at <= at);
        let a = self.0.get(i.saturating_sub(1))?;
        let b = self.0.get(i).unwrap_or(a);
        Some(Sample::lerp(a, b, at))
    }

    /// What happened from `from` to `to` (ms since the epoch), in ticks; `at` is the span.
    pub fn between(&self, from: f64, to: f64) -> Option<Sample> {
        Some(self.at(to)?.minus(&self.at(from)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at: f64, server: f64) -> Sample {
        Sample {
            at,
            server,
            ..Sample::default()
        }
    }

    #[test]
    fn between_interpolates_inside_and_clamps_outside() {
        let v = Samples(vec![s(0.0, 0.0), s(20.0, 2.0), s(40.0, 6.0)]);
        let d = v.between(10.0, 30.0).unwrap();
        assert_eq!(d.server, 4.0 - 1.0);
        assert_eq!(d.at, 20.0);
        assert_eq!(v.between(-5.0, 100.0).unwrap().server, 6.0);
        assert!(Samples(Vec::new()).between(0.0, 1.0).is_none());
    }
}
