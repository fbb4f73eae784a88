//! Where the CPU time of a measured window went: to the server (its CPU per request, the
//! efficiency figure that does not depend on how fast the load generator is), and to other
//! processes (the bench shares its machine, and a compile on the server's CPU halves a
//! server's rate without saying so).
//!
//! A [`Snapshot`] is taken when the load generator opens its measured window and another
//! when it closes it, from the generator's own thread between two loop turns, so the server's
//! CPU time is over exactly the window whose requests are counted. Readings come from
//! [`ringleader_bench::procfs`]: the server's `utime + stime` (all its threads), the bench's
//! own, and the two CPUs' busy and steal time, in clock ticks. "Others" is the busy time of
//! the two CPUs that neither the server nor the bench accounts for; softirq work runs in
//! their context and is charged to them (no `IRQ_TIME_ACCOUNTING`), so it is not counted
//! twice. A tick is 10 ms, truncated on each read: the server's CPU time over a window is good
//! to one tick, 1 % of a busy second; read "others" as a warning light, not a measurement.

use std::io;

use ringleader_bench::procfs::{cpu_ticks, proc_ticks, ticks_per_sec};

/// Busy, steal and total ticks of some CPUs, and ticks of the server and the bench, at one
/// moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    busy: u64,
    steal: u64,
    total: u64,
    server: u64,
    bench: u64,
}

/// What happened between two [`Snapshot`]s.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Usage {
    /// CPU seconds the server process used (all its threads).
    pub server_cpu: f64,
    /// Percent of the CPUs' time that other processes used.
    pub others: f64,
    /// Percent of the CPUs' time that the hypervisor stole.
    pub steal: f64,
}

impl Snapshot {
    /// Now, for `cpus`, the server process `server` and this process.
    pub fn take(cpus: &[usize], server: u32) -> io::Result<Snapshot> {
        let ticks = |pid: u32, who: &str| {
            proc_ticks(pid).ok_or_else(|| {
                io::Error::other(format!("cannot read /proc/{pid}/stat (the {who})"))
            })
        };
        let (busy, steal, total) = cpu_ticks(cpus);
        Ok(Snapshot {
            busy,
            steal,
            total,
            server: ticks(server, "server")?,
            bench: ticks(std::process::id(), "bench")?,
        })
    }

    /// From `self` to the later snapshot `now`.
    pub fn until(&self, now: &Snapshot) -> Usage {
        let total = now.total.saturating_sub(self.total).max(1) as f64;
        let busy = now.busy.saturating_sub(self.busy);
        let server = now.server.saturating_sub(self.server);
        let ours = server + now.bench.saturating_sub(self.bench);
        Usage {
            server_cpu: server as f64 / ticks_per_sec(),
            others: 100.0 * busy.saturating_sub(ours) as f64 / total,
            steal: 100.0 * now.steal.saturating_sub(self.steal) as f64 / total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_splits_busy_time_between_us_and_others() {
        let a = Snapshot {
            busy: 100,
            steal: 0,
            total: 1000,
            server: 10,
            bench: 20,
        };
        let b = Snapshot {
            busy: 260,
            steal: 2,
            total: 1200,
            server: 110,
            bench: 60,
        };
        let u = a.until(&b);
        assert_eq!(u.server_cpu, 100.0 / ticks_per_sec());
        assert_eq!(u.others, 100.0 * 20.0 / 200.0);
        assert_eq!(u.steal, 1.0);
    }
}
