//! What the soak prints: the 10 s lines, and the summary with its verdict.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::net_load::{Burst, CycleSample, short};
use super::procs::{self, Usage, describe};
use super::servers::Servers;
use super::verdict::{self, QUIET_FDS, QUIET_THREADS, mib, quantile};
use super::{Board, Latency, Settings, Who};

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Everything the monitor keeps per server.
#[derive(Debug, Default)]
pub struct Track {
    /// Sampled every 10 s.
    pub periodic: Vec<Usage>,
    /// Sampled before the load.
    pub before: Usage,
    pub probe: Arc<Latency>,
}

/// The counters shown on a server's periodic line.
fn counters_line(board: &Board, who: Who) -> String {
    let c = board.tally(who).counters();
    let get = |k: &str| c.get(k).copied().unwrap_or(0);
    match who {
        Who::Nbd => format!(
            "fio {} qemu-io {} resets {} slowloris-cut {} idle-checks {}",
            get("fio runs"),
            get("qemu-io runs"),
            get("resets"),
            get("slowloris cut"),
            get("idle checks")
        ),
        Who::Proxy => format!(
            "burst cycles {} conns ok {} failed {}",
            get("burst cycles"),
            get("burst connections ok"),
            get("burst connections failed")
        ),
        Who::Upstream => String::new(),
    }
}

/// Print the load average and one line per server; keep the samples in `tracks`.
pub fn print_window(board: &Board, servers: &mut Servers, tracks: &mut [Track], t: Duration) {
    println!("[{:>5.0}s] load average {}", t.as_secs_f64(), loadavg());
    for (i, who) in Who::ALL.into_iter().enumerate() {
        let s = servers.get(who);
        let usage = procs::usage(s.pid());
        let mut lat = tracks[i].probe.take_window();
        lat.sort();
        let tally = board.tally(who);
        let res = match usage {
            Ok(u) => {
                tracks[i].periodic.push(u);
                format!(
                    "rss {:>7} fds {:>5} threads {:>3}",
                    mib(u.rss),
                    u.fds,
                    u.threads
                )
            }
            Err(e) => format!("/proc unreadable: {e}"),
        };
        println!(
            "[{:>5.0}s]   {:<10} {res} | probe p50 {:>6} p99 {:>6} max {:>6} n {:>3} | errors \
             {} verify {} | {}",
            t.as_secs_f64(),
            who.name(),
            short(quantile(&lat, 0.5)),
            short(quantile(&lat, 0.99)),
            short(lat.last().copied().unwrap_or_default()),
            lat.len(),
            tally.errors(),
            tally.verify_errors(),
            counters_line(board, who)
        );
    }
}

/// Print the summary; `true` if the soak passed. `ran`: how long the load ran;
/// `interrupted`: stopped by a signal.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site; the pieces are the run's state"
)]
pub fn summary(
    args: &Settings,
    board: &Board,
    servers: &mut Servers,
    tracks: &[Track],
    quiet: &[Usage],
    cycles: &Mutex<Vec<CycleSample>>,
    burst_log: &Mutex<Vec<Burst>>,
    ran: Duration,
    interrupted: bool,
) -> bool {
    let mut failures: Vec<String> = Vec::new();
    println!(
        "== summary: {:.0} s of load, load average now {}",
        ran.as_secs_f64(),
        loadavg()
    );
    let cycles = cycles.lock().unwrap().clone();
    for (i, who) in Who::ALL.into_iter().enumerate() {
        let name = who.name();
        // Growth: the proxy's and echo's quiet samples after each burst cycle; the NBD
        // server's periodic ones (its load is steady).
        let series: Vec<Usage> = match who {
            Who::Nbd => tracks[i].periodic.clone(),
            Who::Proxy => cycles.iter().map(|c| c.proxy).collect(),
            Who::Upstream => cycles.iter().map(|c| c.upstream).collect(),
        };
        // The bench's own upstream is shown, not judged.
        let judged = who != Who::Upstream || args.ringleader_upstream;
        if !judged {
            println!(
                "{name}: {} (the bench's tokio echo: not judged)",
                servers.get(who).command()
            );
        }
        let from = if who == Who::Nbd {
            "every 10 s"
        } else {
            "after each burst cycle"
        };
        match verdict::growth(&series) {
            Some(g) => {
                let text: Vec<String> = g.iter().map(|g| g.to_string()).collect();
                println!(
                    "{name}: growth, first third -> last third ({from}): {}",
                    text.join(", ")
                );
                for g in g.iter().filter(|g| g.grew() && judged) {
                    failures.push(format!("{name}: {g}"));
                }
            }
            None => {
                println!(
                    "{name}: growth not judged: {} samples ({from}), need 3",
                    series.len()
                )
            }
        }
        let (b, q) = (tracks[i].before, quiet[i]);
        println!(
            "{name}: after the load: fds {} (before it {}), threads {} (before {}), rss {} \
             (before {})",
            q.fds,
            b.fds,
            q.threads,
            b.threads,
            mib(q.rss),
            mib(b.rss)
        );
        if judged && (q.fds > b.fds + QUIET_FDS || q.threads > b.threads + QUIET_THREADS) {
            failures.push(format!(
                "{name}: 20 s after the load fds {} / threads {}, before it {} / {} \
                 (allowed +{QUIET_FDS} / +{QUIET_THREADS})",
                q.fds, q.threads, b.fds, b.threads
            ));
        }
        let mut all = tracks[i].probe.all();
        all.sort();
        println!(
            "{name}: probe over the run: p50 {} p99 {} p99.9 {} max {} ({} round trips)",
            short(quantile(&all, 0.5)),
            short(quantile(&all, 0.99)),
            short(quantile(&all, 0.999)),
            short(all.last().copied().unwrap_or_default()),
            all.len()
        );
        let tally = board.tally(who);
        let counters: Vec<String> = tally
            .counters()
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!(
            "{name}: errors {}, verification errors {}; {}",
            tally.errors(),
            tally.verify_errors(),
            counters.join(", ")
        );
        if tally.verify_errors() > 0 {
            failures.push(format!(
                "{name}: {} verification errors",
                tally.verify_errors()
            ));
        }
        if tally.errors() > 0 {
            failures.push(format!("{name}: {} errors", tally.errors()));
        }
    }
    print_bursts(&burst_log.lock().unwrap());

    // Stop the servers gracefully: each must exit 0 within its drain time.
    for (who, grace) in [(Who::Proxy, 15), (Who::Upstream, 15), (Who::Nbd, 35)] {
        let s = servers.get(who);
        let name = s.name();
        let stderr_lines = s.stderr_lines();
        match s.terminate(Duration::from_secs(grace)) {
            Ok(Some((status, took))) => {
                println!(
                    "{name}: SIGTERM: {} after {:.2} s; {stderr_lines} stderr lines",
                    describe(status),
                    took.as_secs_f64()
                );
                // The tokio upstream dies by SIGTERM's default action.
                if !status.success() && (who != Who::Upstream || args.ringleader_upstream) {
                    failures.push(format!(
                        "{name}: {} (stderr: {})",
                        describe(status),
                        s.stderr_tail(3)
                    ));
                }
            }
            Ok(None) => failures.push(format!(
                "{name}: still running {grace} s after SIGTERM (killed)"
            )),
            Err(e) => failures.push(format!("{name}: SIGTERM: {e}")),
        }
    }
    let messages = board.messages();
    if !messages.is_empty() {
        println!("first problems:");
        for m in &messages {
            println!("  {m}");
        }
    }
    if interrupted {
        failures.push("interrupted before the end".into());
    } else if ran + Duration::from_secs(1) < args.duration {
        failures.push(format!("stopped early after {:.0} s", ran.as_secs_f64()));
    }
    if failures.is_empty() {
        println!("verdict: PASS");
        true
    } else {
        println!("verdict: FAIL");
        for f in &failures {
            println!("  {f}");
        }
        false
    }
}

/// One line per burst size.
fn print_bursts(log: &[Burst]) {
    let mut sizes: Vec<usize> = log.iter().map(|b| b.conns).collect();
    sizes.sort();
    sizes.dedup();
    for n in sizes {
        let of: Vec<&Burst> = log.iter().filter(|b| b.conns == n).collect();
        let mut times: Vec<Duration> = of.iter().map(|b| b.elapsed).collect();
        times.sort();
        let failed: usize = of.iter().map(|b| b.failed + b.wrong).sum();
        let mut conn: Vec<Duration> = of
            .iter()
            .flat_map(|b| b.conn_times.iter().copied())
            .collect();
        conn.sort();
        println!(
            "proxy: bursts of {n:>5}: {} bursts, burst time median {} max {}; per connection \
             p99 {}; failed connections {failed}",
            of.len(),
            short(quantile(&times, 0.5)),
            short(times.last().copied().unwrap_or_default()),
            short(quantile(&conn, 0.99)),
        );
    }
}
