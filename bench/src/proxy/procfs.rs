//! What the proxy bench reads from `/proc`: CPU time of a process tree, listening sockets,
//! and how busy the machine is.
//!
//! CPU time is in clock ticks (`_SC_CLK_TCK`, 10 ms on this kernel); a run of several
//! seconds makes that resolution a fraction of a percent. A process's `utime + stime` covers
//! all its threads, live and exited; `cutime + cstime` covers its children once reaped. The
//! tree's total is the root's four fields plus the same four of every live (or zombie)
//! descendant, so a forked child is counted whether or not its parent has reaped it yet.

use std::collections::HashMap;

/// One `/proc/PID/stat`: (ppid, utime + stime + cutime + cstime).
fn stat(pid: u32) -> Option<(u32, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok());
    // After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    let ppid = n(1)? as u32;
    Some((ppid, n(11)? + n(12)? + n(13)? + n(14)?))
}

/// Every process: pid -> (ppid, ticks).
fn all() -> HashMap<u32, (u32, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat(pid)?)))
        .collect()
}

/// The descendants of `root` (not `root` itself), parents before children.
fn tree(procs: &HashMap<u32, (u32, u64)>, root: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (&pid, &(ppid, _)) in procs {
            if ppid == p && pid != root {
                out.push(pid);
                frontier.push(pid);
            }
        }
    }
    out
}

/// The live (or zombie) descendants of `root`.
pub fn descendants(root: u32) -> Vec<u32> {
    tree(&all(), root)
}

/// CPU ticks of `root` and its descendants, see the module doc; 0 if it is gone.
pub fn tree_ticks(root: u32) -> u64 {
    let procs = all();
    let own = procs.get(&root).map_or(0, |&(_, t)| t);
    own + tree(&procs, root)
        .iter()
        .filter_map(|p| procs.get(p))
        .map(|&(_, t)| t)
        .sum::<u64>()
}

/// Clock ticks per second.
pub fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Whether a TCP socket (v4 or v6) listens on `port`.
pub fn listening(port: u16) -> bool {
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|path| {
        let Ok(table) = std::fs::read_to_string(path) else {
            return false;
        };
        table.lines().skip(1).any(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st ...; st 0A is LISTEN.
            f.len() > 3
                && f[3] == "0A"
                && f[1]
                    .rsplit_once(':')
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                    == Some(port)
        })
    })
}

/// `(busy, total)` ticks of the CPUs in `cpus` so far, from `/proc/stat`. Busy is user +
/// nice + system: what processes are charged for (irq and softirq time, when the kernel
/// accounts it apart, is in neither a process's ticks nor here).
pub fn cpu_ticks(cpus: &[usize]) -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let (mut busy, mut total) = (0, 0);
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
            busy += v[0] + v[1] + v[2];
            total += v.iter().sum::<u64>();
        }
    }
    (busy, total)
}

/// irq + softirq ticks of `cpu` so far (nonzero only when the kernel accounts interrupt
/// time apart from processes, `CONFIG_IRQ_TIME_ACCOUNTING`). On loopback, the receive side
/// of a TCP send runs as a softirq on the sender's CPU: this is the kernel work a proxy's
/// sends cause that its own `stime` does not show.
pub fn irq_ticks(cpu: usize) -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let name = format!("cpu{cpu}");
    stat.lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(name.as_str())).then(|| {
                // user nice system idle iowait irq softirq
                let v: Vec<u64> = f.take(7).filter_map(|x| x.parse().ok()).collect();
                v.get(5).zip(v.get(6)).map_or(0, |(i, s)| i + s)
            })
        })
        .unwrap_or(0)
}

/// Busy share (percent) of all CPUs over `window`, from `/proc/stat`.
pub fn busy_percent(window: std::time::Duration) -> f64 {
    let sample = || -> (u64, u64) {
        let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let v: Vec<u64> = s
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .skip(1)
            .take(8)
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() < 8 {
            return (0, 1);
        }
        // user nice system idle iowait irq softirq steal
        (v[0] + v[1] + v[2] + v[5] + v[6] + v[7], v.iter().sum())
    };
    let (b0, t0) = sample();
    std::thread::sleep(window);
    let (b1, t1) = sample();
    100.0 * b1.saturating_sub(b0) as f64 / t1.saturating_sub(t0).max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_finds_grandchildren_but_not_the_root() {
        let procs: HashMap<u32, (u32, u64)> = [
            (1, (0, 5)),
            (10, (1, 1)),
            (11, (10, 2)),
            (12, (1, 3)),
            (20, (2, 9)),
        ]
        .into();
        let mut t = tree(&procs, 1);
        t.sort_unstable();
        assert_eq!(t, vec![10, 11, 12]);
    }

    #[test]
    fn our_own_listener_is_seen() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(listening(port));
        drop(l);
        assert!(!listening(port));
    }
}
