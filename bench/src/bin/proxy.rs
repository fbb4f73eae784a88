//! `proxy`: one iperf3 TCP stream over 127.0.0.1 straight to the server, through ringleader's
//! `examples/proxy` in each mode, and through socat, haproxy, tokio and monoio proxies; then
//! a fan-out variant (every byte also to N mirror sinks) against a tokio fan-out proxy.
//!
//! The proxy runs pinned to one CPU, the iperf3 client and server (and the sinks) to the
//! other. For every row and run: a fresh iperf3 server and proxy, `iperf3 -c -t S -J`, the
//! receiver's throughput and the proxy process tree's CPU time; rows are interleaved within
//! each round (with a rotating start) so a noisy host's drift spreads over all of them.
//! Tables show the median with `[min .. max]` and ratios of medians. See `src/proxy/`.

#[path = "../proxy/mod.rs"]
#[expect(dead_code, reason = "src/proxy/burst.rs serves the proxy_burst bin")]
mod proxy;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant, SystemTime};

use proxy::process::Proc;
use proxy::report::{self, RowResult};
use proxy::rows::{Row, Setup};
use proxy::{peers, procfs, run};
use ringleader_bench::pin;

const USAGE: &str = "\
usage: proxy [--runs N] [--seconds S] [--mirrors M] [--only NAME,..] [--proxy-bin PATH]
             [--rebuild] [--proxy-args \"ARGS\"] [--proxy-cpu N] [--load-cpu N]
             [--quiet-wait S]

iperf3, one TCP stream over 127.0.0.1, client -> proxy -> server: straight (direct), through
ringleader's examples/proxy (--mode lease, lease --zc, splice, copy; --cores 1), socat,
haproxy (tcp mode, nbthread 1; plain and with option splice-auto), a tokio
copy_bidirectional proxy and monoio proxies (read/write_all, and zero_copy splice). Then the
fan-out table: the same through proxies that also send every byte to M mirror sinks
(ringleader with --mirror xM in each mode, and a tokio fan-out proxy). Prints receiver
throughput and proxy CPU seconds per GB (median [min .. max] of the runs), with ratios to the
best peer / to tokio.

  --runs N          runs per row, interleaved across rows (default 3)
  --seconds S       iperf3 -t per run (default 5)
  --mirrors M       mirror sinks of the fan-out rows (default 3; 0 skips the fan-out table)
  --only NAME,..    only these rows: direct, rl-lease, rl-lease-zc, rl-splice, rl-copy,
                    socat, haproxy, haproxy-splice, tokio, monoio, monoio-splice,
                    fan-rl-lease, fan-rl-splice, fan-rl-copy, fan-tokio
  --proxy-bin PATH  ringleader's proxy (default: ../target/release/examples/proxy or
                    /work/target-proxy/release/examples/proxy, whichever exists; if neither,
                    `cargo build --release --example proxy` in the parent directory)
  --rebuild         run that cargo build even if a binary exists
  --proxy-args A    extra arguments for ringleader's proxy (e.g. \"--buf-size 65536\")
  --proxy-cpu N     the proxy's CPU (default: the first allowed CPU)
  --load-cpu N      iperf3 client and server's CPU (default: the second allowed CPU)
  --sink-cpu N      the mirror sinks' CPU (default: the load CPU)
  --quiet-wait S    before each run, wait up to S seconds for the CPUs to be under 10 %
                    busy (default 0.5; 0: do not wait); the others % column shows
                    what the runs lost to other work anyway
  -h, --help        this text

Internal (how the bench starts its own peers):
  --serve-tokio LISTEN UPSTREAM, --serve-monoio LISTEN UPSTREAM,
  --serve-monoio-splice LISTEN UPSTREAM, --serve-tokio-fanout LISTEN UPSTREAM MIRROR,..,
  --serve-sink LISTEN";

#[derive(Debug)]
struct Args {
    runs: usize,
    seconds: u32,
    mirrors: usize,
    only: Option<Vec<Row>>,
    proxy_bin: Option<PathBuf>,
    rebuild: bool,
    proxy_args: Vec<String>,
    proxy_cpu: Option<usize>,
    load_cpu: Option<usize>,
    sink_cpu: Option<usize>,
    quiet_wait: Duration,
}

enum Cmd {
    Help,
    Bench(Args),
    Tokio(SocketAddr, SocketAddr),
    Monoio(SocketAddr, SocketAddr, bool),
    Fanout(SocketAddr, SocketAddr, Vec<SocketAddr>),
    Sink(SocketAddr),
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
        runs: 3,
        seconds: 5,
        mirrors: 3,
        only: None,
        proxy_bin: None,
        rebuild: false,
        proxy_args: Vec::new(),
        proxy_cpu: None,
        load_cpu: None,
        sink_cpu: None,
        quiet_wait: Duration::from_millis(500),
    };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-h" | "--help" => return Ok(Cmd::Help),
            "--runs" => a.runs = number("--runs", it.next())?,
            "--seconds" => a.seconds = number("--seconds", it.next())?,
            "--mirrors" => a.mirrors = number("--mirrors", it.next())?,
            "--only" => {
                let v = value("--only", it.next())?;
                let rows: Result<Vec<Row>, String> = v
                    .split(',')
                    .map(|n| {
                        Row::from_name(n.trim()).ok_or_else(|| format!("--only: no row {n:?}"))
                    })
                    .collect();
                a.only = Some(rows?);
            }
            "--proxy-bin" => a.proxy_bin = Some(value("--proxy-bin", it.next())?.into()),
            "--rebuild" => a.rebuild = true,
            "--proxy-args" => {
                let v = value("--proxy-args", it.next())?;
                a.proxy_args = v.split_whitespace().map(str::to_owned).collect();
            }
            "--proxy-cpu" => a.proxy_cpu = Some(number("--proxy-cpu", it.next())?),
            "--load-cpu" => a.load_cpu = Some(number("--load-cpu", it.next())?),
            "--sink-cpu" => a.sink_cpu = Some(number("--sink-cpu", it.next())?),
            "--quiet-wait" => {
                let s: f64 = number("--quiet-wait", it.next())?;
                a.quiet_wait =
                    Duration::try_from_secs_f64(s).map_err(|e| format!("--quiet-wait: {e}"))?;
            }
            "--serve-tokio" | "--serve-monoio" | "--serve-monoio-splice" => {
                let listen = number(&flag, it.next())?;
                let upstream = number(&flag, it.next())?;
                return Ok(match flag.as_str() {
                    "--serve-tokio" => Cmd::Tokio(listen, upstream),
                    f => Cmd::Monoio(listen, upstream, f == "--serve-monoio-splice"),
                });
            }
            "--serve-tokio-fanout" => {
                let listen = number(&flag, it.next())?;
                let upstream = number(&flag, it.next())?;
                let mirrors = value(&flag, it.next())?
                    .split(',')
                    .map(|m| m.parse().map_err(|_| format!("{flag}: bad mirror {m:?}")))
                    .collect::<Result<_, _>>()?;
                return Ok(Cmd::Fanout(listen, upstream, mirrors));
            }
            "--serve-sink" => return Ok(Cmd::Sink(number(&flag, it.next())?)),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if a.runs == 0 || a.seconds == 0 {
        return Err("--runs and --seconds must be positive".to_owned());
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
                    eprintln!("proxy: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Ok(Cmd::Tokio(l, u)) => peers::tokio_proxy(l, u),
        Ok(Cmd::Monoio(l, u, splice)) => peers::monoio_proxy(l, u, splice),
        Ok(Cmd::Fanout(l, u, m)) => peers::tokio_fanout(l, u, m),
        Ok(Cmd::Sink(l)) => peers::sink(l),
        Err(e) => {
            eprintln!("proxy: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("proxy (serving): {e}");
            ExitCode::FAILURE
        }
    }
}

fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// ringleader's `examples/proxy`: `--proxy-bin`, else a built one, else built now.
fn ringleader_bin(args: &Args) -> Result<PathBuf, String> {
    if let Some(p) = &args.proxy_bin {
        return if p.is_file() {
            Ok(p.clone())
        } else {
            Err(format!("missing binary ({} does not exist)", p.display()))
        };
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent");
    let built = root.join("target/release/examples/proxy");
    // Where the example's own author builds it (a separate target directory).
    let candidates = [
        built.clone(),
        PathBuf::from("/work/target-proxy/release/examples/proxy"),
    ];
    if !args.rebuild
        && let Some(found) = candidates.iter().find(|p| p.is_file())
    {
        return Ok(found.clone());
    }
    if !root.join("examples/proxy").exists() && !root.join("examples/proxy.rs").exists() {
        return Err("missing binary (examples/proxy does not exist yet)".to_owned());
    }
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    eprintln!("proxy: building ringleader's examples/proxy (release) in {root:?}");
    let status = Command::new(cargo)
        .args(["build", "--release", "--example", "proxy"])
        .current_dir(root)
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .map_err(|e| format!("missing binary (running {cargo} build: {e})"))?;
    if !status.success() || !built.is_file() {
        return Err(format!(
            "missing binary (cargo build --release --example proxy: {status})"
        ));
    }
    Ok(built)
}

/// Before a run: wait up to `limit` for the machine to be under 10 % busy.
fn quiet(limit: Duration) {
    if limit.is_zero() {
        return;
    }
    let deadline = Instant::now() + limit;
    while procfs::busy_percent(Duration::from_millis(200)) > 10.0 {
        if Instant::now() >= deadline {
            eprintln!("proxy: the CPUs are busy; measuring anyway");
            return;
        }
    }
}

fn age(p: &Path) -> String {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map_or("age unknown".to_owned(), |d| {
            format!("built {} min ago", d.as_secs() / 60)
        })
}

fn bench(args: &Args) -> Result<(), String> {
    if !have("iperf3") {
        return Err("iperf3 is not installed (apt-get install -y iperf3)".to_owned());
    }
    let cpus = pin::allowed_cpus().map_err(|e| format!("sched_getaffinity: {e}"))?;
    let proxy_cpu = args.proxy_cpu.or(cpus.first().copied()).unwrap_or(0);
    let load_cpu = args
        .load_cpu
        .or(cpus.iter().copied().find(|&c| c != proxy_cpu))
        .unwrap_or(proxy_cpu);
    let sink_cpu = args.sink_cpu.unwrap_or(load_cpu);
    let wanted: Vec<Row> = match &args.only {
        Some(rows) => Row::ALL.into_iter().filter(|r| rows.contains(r)).collect(),
        None => Row::ALL
            .into_iter()
            .filter(|r| !r.fanout() || args.mirrors > 0)
            .collect(),
    };
    let rl = if wanted.iter().any(|r| r.ringleader()) {
        ringleader_bin(args)
    } else {
        Err("not selected".to_owned())
    };
    let mut results: Vec<RowResult> = wanted
        .iter()
        .map(|&row| {
            let skipped = match (row.tool(), &rl) {
                (Some(tool), _) if !have(tool) => {
                    Some(format!("{tool} not installed (apt-get install -y {tool})"))
                }
                (None, Err(e)) if row.ringleader() => Some(e.clone()),
                _ => None,
            };
            RowResult {
                row,
                skipped,
                runs: Vec::new(),
            }
        })
        .collect();
    let bench_exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let tmp = std::env::temp_dir().join(format!("ringleader-proxy-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let fan = results
        .iter()
        .any(|r| r.row.fanout() && r.skipped.is_none());
    let mut sinks: Vec<Proc> = Vec::new();
    let mut mirrors = Vec::new();
    for i in 0..if fan { args.mirrors } else { 0 } {
        let mut cmd = Command::new(&bench_exe);
        cmd.args(["--serve-sink", "127.0.0.1:0"]);
        let mut p = Proc::spawn(cmd, sink_cpu, &format!("sink {i}")).map_err(|e| e.to_string())?;
        mirrors.push(p.wait_announced(Duration::from_secs(5))?);
        sinks.push(p);
    }
    let setup = Setup {
        cpu: proxy_cpu,
        bench_exe,
        ringleader: rl.clone(),
        ringleader_args: args.proxy_args.clone(),
        mirrors,
        sinks: sinks.iter().map(Proc::pid).collect(),
        tmp: tmp.clone(),
        haproxy_maxconn: 1000,
    };
    let header = header(args, [proxy_cpu, load_cpu, sink_cpu], &rl, &setup.mirrors);
    eprintln!("{header}");
    let runnable: Vec<usize> = (0..results.len())
        .filter(|&i| results[i].skipped.is_none())
        .collect();
    for round in 0..args.runs {
        for k in 0..runnable.len() {
            let i = runnable[(k + round) % runnable.len()];
            let row = results[i].row;
            quiet(args.quiet_wait);
            let sample = run::once(row, &setup, args.seconds, load_cpu);
            match &sample {
                Ok(s) => eprintln!(
                    "proxy: round {} {}: {:.2} Gbit/s, others {:.0} %, {}",
                    round + 1,
                    row.name(),
                    s.gbps,
                    s.others_percent,
                    s.cpu_per_gb()
                        .map_or("no proxy".to_owned(), |c| format!("{c:.3} CPU s/GB"))
                ),
                Err(e) => eprintln!("proxy: round {} {}: failed: {e}", round + 1, row.name()),
            }
            results[i].runs.push(sample);
        }
    }
    drop(sinks);
    let _ = std::fs::remove_dir_all(&tmp);
    let single: Vec<&RowResult> = results.iter().filter(|r| !r.row.fanout()).collect();
    let fanout: Vec<&RowResult> = results.iter().filter(|r| r.row.fanout()).collect();
    println!("\n{header}");
    if !single.is_empty() {
        println!(
            "\nSingle stream (client -> proxy -> iperf3 server)\n{}",
            report::single(&single)
        );
    }
    if !fanout.is_empty() {
        println!(
            "Fan-out (client -> proxy -> iperf3 server + {} mirror sinks)\n{}",
            args.mirrors,
            report::fanout(&fanout)
        );
    }
    println!("{}\n{}", report::LEGEND, report::goals(&results));
    Ok(())
}

fn header(
    args: &Args,
    [proxy_cpu, load_cpu, sink_cpu]: [usize; 3],
    rl: &Result<PathBuf, String>,
    mirrors: &[SocketAddr],
) -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let rl = match rl {
        Ok(p) => format!(
            "{} ({}) --cores 1 {}",
            p.display(),
            age(p),
            args.proxy_args.join(" ")
        ),
        Err(e) => e.clone(),
    };
    let sinks = if mirrors.is_empty() {
        String::new()
    } else {
        format!(", {} mirror sinks pinned to CPU {sink_cpu}", mirrors.len())
    };
    format!(
        "proxy: iperf3 -t {} single stream over 127.0.0.1, {} run(s) per row, rows interleaved; \
         proxy pinned to CPU {proxy_cpu}, iperf3 client + server pinned to CPU {load_cpu}\
         {sinks} (every row alike); throughput = receiver side; CPU = proxy process tree \
         utime+stime; kernel {}\nringleader: {rl}",
        args.seconds,
        args.runs,
        kernel.trim()
    )
}
