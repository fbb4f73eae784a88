//! `proxy_burst`: bursts of short connections through a proxy — N clients at once, each
//! sending 4 KiB to an echo upstream through the proxy, reading them back and closing —
//! for N = 1, 10, 100, 1,000 and 10,000, through ringleader's `examples/proxy` in each mode
//! and through haproxy and a tokio proxy.
//!
//! Every run starts a fresh proxy (so lease mode starts with no idle buffer rings, as after
//! a restart), times one burst, counts the proxy's threads (io-wq workers apart) and kills
//! it. Rows are interleaved within each round, with a rotating start. See
//! `src/proxy/burst.rs` for the client and the echo server.

#[path = "../proxy/mod.rs"]
#[expect(
    dead_code,
    reason = "the iperf3 parts of src/proxy/ (report, run) serve the proxy bin"
)]
mod proxy;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use proxy::burst::{self, Outcome};
use proxy::process::Proc;
use proxy::rows::{Mode, Row, Setup};
use proxy::{peers, rows};
use ringleader_bench::pin;
use ringleader_bench::table::{Table, ratio};

const USAGE: &str = "\
usage: proxy_burst [--runs N] [--counts N,..] [--size BYTES] [--only NAME,..]
                   [--proxy-bin PATH] [--proxy-args \"ARGS\"] [--limit S]
                   [--proxy-cpu N] [--load-cpu N]

Bursts of N concurrent short connections (connect, send --size bytes, read them back from
an echo upstream, close) through ringleader's examples/proxy (--mode lease, splice, copy;
--cores 1, default flags), haproxy (tcp mode, nbthread 1) and a tokio copy_bidirectional
proxy. A fresh proxy per run. Prints, per N, each row's burst time (first connect to last
connection done; median [min .. max] of the runs), the median and p99 of the connections'
own times, failures, and the proxy's threads after the burst (io-wq workers apart).

  --runs N          runs per row and count (default 5)
  --counts N,..     burst sizes (default 1,10,100,1000,10000)
  --size BYTES      bytes each client sends and reads back (default 4096)
  --only NAME,..    only these rows: rl-lease, rl-splice, rl-copy, haproxy, tokio
  --proxy-bin PATH  ringleader's proxy (default: ../target/release/examples/proxy)
  --proxy-args A    extra arguments for ringleader's proxy (e.g. \"--max-buffered 1M\")
  --limit S         give up on a burst after S seconds (default 60)
  --proxy-cpu N     the proxy's CPU (default: the first allowed CPU)
  --load-cpu N      the clients' and the echo server's CPU (default: the second)
  -h, --help        this text

Internal: --serve-echo LISTEN, --serve-tokio LISTEN UPSTREAM";

/// The rows this bench knows.
const ROWS: [Row; 5] = [
    Row::Ringleader {
        mode: Mode::Lease,
        zc: false,
    },
    Row::Ringleader {
        mode: Mode::Splice,
        zc: false,
    },
    Row::Ringleader {
        mode: Mode::Copy,
        zc: false,
    },
    Row::Haproxy { splice: false },
    Row::Tokio,
];

/// `RLIMIT_NOFILE` the bench asks for (its children inherit it): a burst of 10,000 takes
/// 10,000 fds in the client and 20,000 to 40,000 in a proxy (splice mode: two pipes more
/// per connection).
const NOFILE: u64 = 200_000;

#[derive(Debug)]
struct Args {
    runs: usize,
    counts: Vec<usize>,
    size: usize,
    only: Option<Vec<Row>>,
    proxy_bin: Option<PathBuf>,
    proxy_args: Vec<String>,
    limit: Duration,
    proxy_cpu: Option<usize>,
    load_cpu: Option<usize>,
}

enum Cmd {
    Help,
    Bench(Args),
    Echo(SocketAddr),
    Tokio(SocketAddr, SocketAddr),
}

fn value(flag: &str, v: Option<String>) -> Result<String, String> {
    v.ok_or_else(|| format!("{flag} needs a value"))
}

fn number<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
    let v = value(flag, v)?;
    v.parse().map_err(|_| format!("{flag}: cannot parse {v:?}"))
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Cmd, String> {
    let mut a = Args {
        runs: 5,
        counts: vec![1, 10, 100, 1000, 10_000],
        size: 4096,
        only: None,
        proxy_bin: None,
        proxy_args: Vec::new(),
        limit: Duration::from_secs(60),
        proxy_cpu: None,
        load_cpu: None,
    };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-h" | "--help" => return Ok(Cmd::Help),
            "--runs" => a.runs = number("--runs", it.next())?,
            "--counts" => {
                a.counts = value("--counts", it.next())?
                    .split(',')
                    .map(|n| {
                        n.trim()
                            .parse()
                            .map_err(|_| format!("--counts: cannot parse {n:?}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--size" => a.size = number("--size", it.next())?,
            "--only" => {
                let v = value("--only", it.next())?;
                let rows: Result<Vec<Row>, String> = v
                    .split(',')
                    .map(|n| {
                        ROWS.into_iter()
                            .find(|r| r.name() == n.trim())
                            .ok_or_else(|| format!("--only: no row {n:?}"))
                    })
                    .collect();
                a.only = Some(rows?);
            }
            "--proxy-bin" => a.proxy_bin = Some(value("--proxy-bin", it.next())?.into()),
            "--proxy-args" => {
                let v = value("--proxy-args", it.next())?;
                a.proxy_args = v.split_whitespace().map(str::to_owned).collect();
            }
            "--limit" => a.limit = Duration::from_secs(number("--limit", it.next())?),
            "--proxy-cpu" => a.proxy_cpu = Some(number("--proxy-cpu", it.next())?),
            "--load-cpu" => a.load_cpu = Some(number("--load-cpu", it.next())?),
            "--serve-echo" => return Ok(Cmd::Echo(number(&flag, it.next())?)),
            "--serve-tokio" => {
                let listen = number(&flag, it.next())?;
                return Ok(Cmd::Tokio(listen, number(&flag, it.next())?));
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if a.runs == 0 || a.counts.is_empty() || a.size == 0 {
        return Err("--runs, --counts and --size must be positive".to_owned());
    }
    Ok(Cmd::Bench(a))
}

fn main() -> ExitCode {
    let served = match parse_args(std::env::args().skip(1)) {
        Ok(Cmd::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Cmd::Bench(args)) => {
            return match bench(&args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("proxy_burst: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Ok(Cmd::Echo(l)) => burst::echo(l),
        Ok(Cmd::Tokio(l, u)) => peers::tokio_proxy(l, u),
        Err(e) => {
            eprintln!("proxy_burst: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("proxy_burst (serving): {e}");
            ExitCode::FAILURE
        }
    }
}

fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

fn ringleader_bin(args: &Args) -> Result<PathBuf, String> {
    let p = args.proxy_bin.clone().unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("bench/ has a parent")
            .join("target/release/examples/proxy")
    });
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "missing binary {} (cargo build --release --example proxy at the root)",
            p.display()
        ))
    }
}

/// The runs of one row at one count.
struct Cell {
    row: Row,
    skipped: Option<String>,
    runs: Vec<Result<Run, String>>,
}

/// One run: the burst, the proxy's CPU time for it and its threads after it.
struct Run {
    outcome: Outcome,
    cpu_ms: f64,
    threads: usize,
    iowq: usize,
}

fn bench(args: &Args) -> Result<(), String> {
    let nofile = burst::raise_nofile(NOFILE).map_err(|e| format!("RLIMIT_NOFILE: {e}"))?;
    let cpus = pin::allowed_cpus().map_err(|e| format!("sched_getaffinity: {e}"))?;
    let proxy_cpu = args.proxy_cpu.or(cpus.first().copied()).unwrap_or(0);
    let load_cpu = args
        .load_cpu
        .or(cpus.iter().copied().find(|&c| c != proxy_cpu))
        .unwrap_or(proxy_cpu);
    pin::pin_to_cpu(load_cpu).map_err(|e| format!("pinning the clients: {e}"))?;
    let wanted: Vec<Row> = match &args.only {
        Some(rows) => ROWS.into_iter().filter(|r| rows.contains(r)).collect(),
        None => ROWS.to_vec(),
    };
    let rl = ringleader_bin(args);
    let bench_exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let tmp = std::env::temp_dir().join(format!("ringleader-burst-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let mut echo_cmd = Command::new(&bench_exe);
    echo_cmd.args(["--serve-echo", "127.0.0.1:0"]);
    let mut echo = Proc::spawn(echo_cmd, load_cpu, "echo").map_err(|e| e.to_string())?;
    let upstream = echo.wait_announced(Duration::from_secs(5))?;
    let setup = Setup {
        cpu: proxy_cpu,
        bench_exe,
        ringleader: rl.clone(),
        ringleader_args: args.proxy_args.clone(),
        mirrors: Vec::new(),
        sinks: Vec::new(),
        tmp: tmp.clone(),
        // haproxy refuses to start if 2 fds per `maxconn` (and a few) exceed RLIMIT_NOFILE.
        haproxy_maxconn: (args.counts.iter().copied().max().unwrap_or(1) + 100)
            .min((nofile as usize).saturating_sub(200) / 2),
    };
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let header = format!(
        "proxy_burst: bursts of N connections x {} bytes echoed, {} run(s) per row and N, a \
         fresh proxy per run; proxy pinned to CPU {proxy_cpu}, clients + echo upstream to CPU \
         {load_cpu}; RLIMIT_NOFILE {nofile}; kernel {}\nringleader: {} {}",
        args.size,
        args.runs,
        kernel.trim(),
        rl.as_ref()
            .map_or_else(Clone::clone, |p| p.display().to_string()),
        args.proxy_args.join(" ")
    );
    eprintln!("{header}");
    let mut tables = Vec::new();
    for &n in &args.counts {
        let mut cells: Vec<Cell> = wanted
            .iter()
            .map(|&row| Cell {
                row,
                skipped: match (row.tool(), &rl) {
                    (Some(tool), _) if !have(tool) => Some(format!("{tool} not installed")),
                    (None, Err(e)) if row.ringleader() => Some(e.clone()),
                    _ => None,
                },
                runs: Vec::new(),
            })
            .collect();
        let runnable: Vec<usize> = (0..cells.len())
            .filter(|&i| cells[i].skipped.is_none())
            .collect();
        for round in 0..args.runs {
            for k in 0..runnable.len() {
                let i = runnable[(k + round) % runnable.len()];
                let run = once(cells[i].row, &setup, upstream, n, args);
                match &run {
                    Ok(r) => eprintln!(
                        "proxy_burst: N={n} round {} {}: {:.3} s, proxy CPU {:.1} ms, {} \
                         failed, threads {} (io-wq {})",
                        round + 1,
                        cells[i].row.name(),
                        r.outcome.elapsed.as_secs_f64(),
                        r.cpu_ms,
                        r.outcome.failed,
                        r.threads,
                        r.iowq
                    ),
                    Err(e) => eprintln!(
                        "proxy_burst: N={n} round {} {}: {e}",
                        round + 1,
                        cells[i].row.name()
                    ),
                }
                cells[i].runs.push(run);
            }
        }
        echo.check_running()?;
        tables.push((n, cells));
    }
    drop(echo);
    let _ = std::fs::remove_dir_all(&tmp);
    println!("\n{header}");
    for (n, cells) in &tables {
        println!("\nN = {n}\n{}", table(cells));
    }
    println!("{}", goal(&tables));
    Ok(())
}

/// One run: a fresh proxy of `row`, one burst of `n`, its threads, then it is killed.
fn once(
    row: Row,
    setup: &Setup,
    upstream: SocketAddr,
    n: usize,
    args: &Args,
) -> Result<Run, String> {
    let (mut proxy, target) = match rows::start(row, setup, upstream)? {
        Some(p) => p,
        None => return Err("not a proxy row".to_owned()),
    };
    let cpu0 = burst::cpu_ns(proxy.pid());
    let outcome = burst::burst(target, n, args.size, args.limit);
    let cpu_ms = burst::cpu_ns(proxy.pid()).saturating_sub(cpu0) as f64 / 1e6;
    let (threads, iowq) = burst::threads(proxy.pid());
    proxy.check_running()?;
    let mut outcome = outcome;
    if outcome.failed > 0 {
        // What the proxy said about it (the tail of its stderr) explains a failure better
        // than the client's error does.
        let said = proxy.failure("said");
        outcome.first_error = Some(format!(
            "{}; {said}",
            outcome.first_error.take().unwrap_or_default()
        ));
    }
    drop(proxy);
    Ok(Run {
        outcome,
        cpu_ms,
        threads,
        iowq,
    })
}

/// Median, min and max of `v` (not empty).
fn spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (median, v[0], v[n - 1])
}

fn ok_runs(c: &Cell) -> impl Iterator<Item = &Run> {
    c.runs.iter().filter_map(|r| r.as_ref().ok())
}

/// The median burst time of a cell, seconds.
fn median_secs(c: &Cell) -> Option<f64> {
    let v: Vec<f64> = ok_runs(c)
        .map(|r| r.outcome.elapsed.as_secs_f64())
        .collect();
    (!v.is_empty()).then(|| spread(v).0)
}

fn table(cells: &[Cell]) -> String {
    let copy = cells
        .iter()
        .find(|c| {
            c.row
                == Row::Ringleader {
                    mode: Mode::Copy,
                    zc: false,
                }
        })
        .and_then(median_secs);
    let mut t = Table::new([
        "row",
        "burst s median [min .. max]",
        "vs rl-copy",
        "conn ms p50",
        "conn ms p99",
        "proxy CPU ms",
        "failed (all runs)",
        "threads (io-wq) max",
    ]);
    let mut notes = Vec::new();
    for c in cells {
        let name = c.row.name();
        if let Some(why) = &c.skipped {
            t.row([name, why, "-", "-", "-", "-", "-", "-"]);
            continue;
        }
        let runs: Vec<&Run> = ok_runs(c).collect();
        if let Some(e) = c.runs.iter().find_map(|r| r.as_ref().err()) {
            notes.push(format!("{name}: a run failed: {e}"));
        }
        if runs.is_empty() {
            t.row([name, "failed", "-", "-", "-", "-", "-", "-"]);
            continue;
        }
        let (med, lo, hi) = spread(
            runs.iter()
                .map(|r| r.outcome.elapsed.as_secs_f64())
                .collect(),
        );
        let q = |p: f64| {
            let v: Vec<f64> = runs
                .iter()
                .filter_map(|r| r.outcome.quantile(p))
                .map(|d| d.as_secs_f64() * 1e3)
                .collect();
            if v.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.1}", spread(v).0)
            }
        };
        let failed: usize = runs.iter().map(|r| r.outcome.failed).sum();
        if let Some(e) = runs.iter().find_map(|r| r.outcome.first_error.as_ref()) {
            notes.push(format!("{name}: {e}"));
        }
        let threads = runs.iter().map(|r| r.threads).max().unwrap_or(0);
        let iowq = runs.iter().map(|r| r.iowq).max().unwrap_or(0);
        t.row([
            name.to_owned(),
            format!("{med:.3} [{lo:.3} .. {hi:.3}]"),
            copy.map_or("-".to_owned(), |c| ratio(med / c)),
            q(0.5),
            q(0.99),
            format!("{:.1}", spread(runs.iter().map(|r| r.cpu_ms).collect()).0),
            failed.to_string(),
            format!("{threads} ({iowq})"),
        ]);
    }
    let mut out = t.to_string();
    for n in notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

/// The goal of issue 14: the default mode (lease) at least as fast as copy at every N. A
/// median above copy's whose range overlaps copy's is reported as such: on a shared machine
/// that is run-to-run noise, not a difference.
fn goal(tables: &[(usize, Vec<Cell>)]) -> String {
    let mut out = String::from("Goal (issue 14): rl-lease burst median <= rl-copy's at every N\n");
    for (n, cells) in tables {
        let stat = |mode| {
            let c = cells
                .iter()
                .find(|c| c.row == Row::Ringleader { mode, zc: false })?;
            let v: Vec<f64> = ok_runs(c)
                .map(|r| r.outcome.elapsed.as_secs_f64())
                .collect();
            let cpu: Vec<f64> = ok_runs(c).map(|r| r.cpu_ms).collect();
            (!v.is_empty()).then(|| (spread(v), spread(cpu).0))
        };
        match (stat(Mode::Lease), stat(Mode::Copy)) {
            (Some(((l, llo, _), lcpu)), Some(((c, _, chi), ccpu))) => out.push_str(&format!(
                "  N={n}: lease {l:.3} s / copy {c:.3} s = {} (CPU {lcpu:.1} / {ccpu:.1} ms): {}\n",
                ratio(l / c),
                if l <= c {
                    "met"
                } else if llo <= chi {
                    "within noise (the runs' ranges overlap)"
                } else {
                    "not met"
                }
            )),
            _ => out.push_str(&format!("  N={n}: no lease or no copy result\n")),
        }
    }
    out
}
