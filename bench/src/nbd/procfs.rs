//! What the NBD bench reads from `/proc`: the CPU time of the server and the client while a
//! run goes on, and how busy the CPUs are.
//!
//! Process CPU time is `utime + stime` of `/proc/PID/stat`: every thread of the process,
//! live and exited, in clock ticks (`_SC_CLK_TCK`, 10 ms here). A run's window is several
//! seconds of a busy server, so a tick is well under 1 % of it. The [`Sampler`] reads both
//! processes and `/proc/stat` every [`PERIOD`]; [`Samples::between`] interpolates linearly
//! between the two samples around each end of a window given in wall-clock time, which is
//! how the client reports it (fio's `timestamp_ms` and `runtime`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Time between two samples.
pub const PERIOD: Duration = Duration::from_millis(20);

/// utime + stime of process `pid` (all threads), in ticks; `None` once it is reaped.
pub fn proc_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok());
    // After the name: state(0) ppid(1) ... utime(11) stime(12).
    Some(n(11)? + n(12)?)
}

/// Clock ticks per second.
pub fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// `(busy, steal, total)` ticks of the CPUs in `cpus` so far, from `/proc/stat`. Busy is
/// user + nice + system + irq + softirq.
pub fn cpu_ticks(cpus: &[usize]) -> (u64, u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let (mut busy, mut steal, mut total) = (0, 0, 0);
    for line in stat.lines() {
        let mut f = line.split_whitespace();
        let Some(cpu) = f.next().and_then(|n| n.strip_prefix("cpu")) else {
            continue;
        };
        if !cpu.parse().is_ok_and(|c: usize| cpus.contains(&c)) {
            continue;
        }
        // user nice system idle iowait irq softirq steal
        let v: Vec<u64> = f.take(8).filter_map(|x| x.parse().ok()).collect();
        if v.len() == 8 {
            busy += v[0] + v[1] + v[2] + v[5] + v[6];
            steal += v[7];
            total += v.iter().sum::<u64>();
        }
    }
    (busy, steal, total)
}

/// Wait (at most `limit`) until `cpus` are busy (or stolen) for at most `max_busy` percent
/// over 200 ms, so a run does not start in the middle of someone else's compile. Returns
/// whether they were.
pub fn wait_quiet(cpus: &[usize], max_busy: f64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let (b0, s0, t0) = cpu_ticks(cpus);
        std::thread::sleep(Duration::from_millis(200));
        let (b1, s1, t1) = cpu_ticks(cpus);
        let busy = (b1.saturating_sub(b0) + s1.saturating_sub(s0)) as f64;
        if 100.0 * busy / t1.saturating_sub(t0).max(1) as f64 <= max_busy {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
    }
}

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

    #[test]
    fn our_own_cpu_time_is_readable() {
        assert!(proc_ticks(std::process::id()).is_some());
        assert!(cpu_ticks(&[0]).2 > 0);
    }
}
