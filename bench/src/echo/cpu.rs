//! How much of the benchmark's CPUs went to other processes: the bench shares its machine,
//! and a compile on the server's CPU halves a server's rate without saying so.
//!
//! From `/proc/stat` (per-CPU busy and steal time) and `/proc/PID/stat` (the server's and
//! the bench's own CPU time), in clock ticks. "Others" is the busy time of the two CPUs that
//! neither the server nor the load generator accounts for; softirq work runs in their
//! context and is charged to them (no `IRQ_TIME_ACCOUNTING`), so it is not counted twice.
//! Tick accounting is coarse (10 ms): read it as a warning light, not a measurement.

use std::io;
use std::time::{Duration, Instant};

/// Busy and total ticks of some CPUs, and ticks of some processes, at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    busy: u64,
    steal: u64,
    total: u64,
    procs: u64,
}

/// `(busy, steal, total)` ticks of each CPU in `cpus`, summed.
fn cpu_ticks(cpus: &[usize]) -> io::Result<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let (mut busy, mut steal, mut total) = (0, 0, 0);
    for line in stat.lines() {
        let mut f = line.split_whitespace();
        let Some(cpu) = f.next().and_then(|n| n.strip_prefix("cpu")) else {
            continue;
        };
        if !cpu.parse().is_ok_and(|c: usize| cpus.contains(&c)) {
            continue;
        }
        // user nice system idle iowait irq softirq steal ...
        let v: Vec<u64> = f.take(8).filter_map(|x| x.parse().ok()).collect();
        if v.len() < 8 {
            continue;
        }
        busy += v[0] + v[1] + v[2] + v[5] + v[6];
        steal += v[7];
        total += v.iter().sum::<u64>();
    }
    Ok((busy, steal, total))
}

/// utime + stime of process `pid` (all its threads), in ticks.
fn proc_ticks(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    // After the name: state(0) ppid(1) ... utime(11) stime(12).
    Ok(n(11) + n(12))
}

impl Snapshot {
    /// Now, for `cpus` and the processes `pids`.
    pub fn take(cpus: &[usize], pids: &[u32]) -> io::Result<Snapshot> {
        let (busy, steal, total) = cpu_ticks(cpus)?;
        let mut procs = 0;
        for &p in pids {
            procs += proc_ticks(p)?;
        }
        Ok(Snapshot {
            busy,
            steal,
            total,
            procs,
        })
    }

    /// Percent of the CPUs' time since `self` that other processes used, and that the
    /// hypervisor stole.
    pub fn others_since(&self, now: &Snapshot) -> (f64, f64) {
        let total = now.total.saturating_sub(self.total).max(1) as f64;
        let busy = now.busy.saturating_sub(self.busy);
        let ours = now.procs.saturating_sub(self.procs);
        let others = busy.saturating_sub(ours) as f64;
        let steal = now.steal.saturating_sub(self.steal) as f64;
        (100.0 * others / total, 100.0 * steal / total)
    }
}

/// Wait (at most `limit`) until `cpus` are idle but for `max_busy` percent over 200 ms, so a
/// run does not start in the middle of someone else's compile. Returns whether they were.
pub fn wait_quiet(cpus: &[usize], max_busy: f64, limit: Duration) -> io::Result<bool> {
    let deadline = Instant::now() + limit;
    loop {
        let (b0, s0, t0) = cpu_ticks(cpus)?;
        std::thread::sleep(Duration::from_millis(200));
        let (b1, s1, t1) = cpu_ticks(cpus)?;
        let total = t1.saturating_sub(t0).max(1) as f64;
        let busy = (b1 - b0 + s1 - s0) as f64;
        if 100.0 * busy / total <= max_busy {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
    }
}
