//! What the benches that run servers as child processes read from `/proc`: a process's CPU
//! time and how busy some CPUs are.
//!
//! Process CPU time is `utime + stime` of `/proc/PID/stat`: every thread of the process, live
//! and exited (io_uring's io-wq workers included), in clock ticks (`_SC_CLK_TCK`, 10 ms
//! here). The kernel derives both from the scheduler's nanosecond runtime and only truncates
//! the sum to a tick, so a difference of two readings is off by at most one tick: well under
//! 1 % of a window of a second or more of a busy server.
//!
//! CPU busy time comes from `/proc/stat` per CPU: user + nice + system + irq + softirq, with
//! steal apart. Without `CONFIG_IRQ_TIME_ACCOUNTING` softirq work is charged to whichever
//! process it interrupted, so it is counted once either way.
//!
//! Users: the `echo` bench (its server's CPU per request, and how much of its CPUs others
//! took) and the `nbd` bench (the same, through a sampler thread, because fio reports its
//! window after the fact).

use std::time::{Duration, Instant};

/// utime + stime of process `pid` (all its threads), in ticks; `None` once it is reaped (or
/// if `/proc` cannot be read).
pub fn proc_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_ticks(&stat)
}

/// utime + stime from the text of a `/proc/PID/stat`.
fn stat_ticks(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses: fields are counted after its last
    // closing parenthesis.
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

/// `(busy, steal, total)` ticks of the CPUs in `cpus` so far, from `/proc/stat` (all zero if
/// it cannot be read). Busy is user + nice + system + irq + softirq.
pub fn cpu_ticks(cpus: &[usize]) -> (u64, u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    stat_cpu_ticks(&stat, cpus)
}

/// [`cpu_ticks`] from the text of a `/proc/stat`.
fn stat_cpu_ticks(stat: &str, cpus: &[usize]) -> (u64, u64, u64) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_count_from_the_last_parenthesis() {
        let stat = "42 (a) b) (c) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0";
        assert_eq!(stat_ticks(stat), Some(12));
        assert_eq!(stat_ticks("42 (short) S 1"), None);
    }

    #[test]
    fn cpu_lines_are_picked_by_number() {
        let stat = "cpu  9 9 9 9 9 9 9 9 0 0\n\
                    cpu0 1 2 3 100 4 5 6 7 0 0\n\
                    cpu1 10 0 0 50 0 0 0 1 0 0\n\
                    intr 1 2 3\n";
        assert_eq!(stat_cpu_ticks(stat, &[0]), (1 + 2 + 3 + 5 + 6, 7, 128));
        assert_eq!(stat_cpu_ticks(stat, &[0, 1]), (27, 8, 189));
        assert_eq!(stat_cpu_ticks(stat, &[2]), (0, 0, 0));
    }

    #[test]
    fn our_own_cpu_time_is_readable() {
        assert!(proc_ticks(std::process::id()).is_some());
        assert!(cpu_ticks(&[0]).2 > 0);
    }
}
