//! `echo`: ringleader's echo server against tokio (current-thread and multi-thread), monoio,
//! glommio and compio, in one run.
//!
//! Each server runs as its own process pinned to one CPU; the load generator (one raw
//! io_uring, 100 connections, one request in flight each) runs here, pinned to another. For
//! every message size and server: a fresh server, a warm-up, a measured window; `--runs`
//! times, interleaved across servers. The table shows the median of the runs' req/s and p99
//! with `[min .. max]`, and the ratio of medians to tokio current_thread. See
//! `bench/README.md`.

#[path = "../echo/mod.rs"]
mod echo;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use echo::Server;
use echo::client::{self, Load, Outcome};
use echo::cpu::{self, Snapshot};
use ringleader_bench::pin;
use ringleader_bench::table::{Table, ratio, si};

const USAGE: &str = "\
usage: echo [--runs R] [--quick] [--secs S] [--warmup S] [--conns N] [--sizes B,B..]
            [--servers NAME,..] [--server-cpu N] [--client-cpu N] [--quiet-wait S]
            [--ringleader-bin PATH]

Echo round trips (send N bytes, wait for N back) from 100 connections against ringleader's
examples/echo and idiomatic echo servers on tokio (current_thread, multi_thread with 1
worker), monoio, glommio and compio; the server on one CPU, the load generator on another.
Prints req/s and p99 latency per server and message size, and the ratio to tokio-ct.

  --runs R              measured runs per cell, each with a fresh server (default 3); the
                        table shows the median with [min .. max]
  --quick               1 run of 1 s after 0.3 s of warm-up (smoke test)
  --secs S              measured window per run, seconds (default 3)
  --warmup S            warm-up per run before the window, seconds (default 1)
  --conns N             connections, one request in flight each (default 100)
  --sizes B,B..         message sizes in bytes (default 128,1024)
  --servers NAME,..     subset of: ringleader,rl-nospin,tokio-ct,tokio-mt,monoio,glommio,
                        compio (rl-nospin: ringleader's echo with --spin-us 0)
  --server-cpu N        CPU of the server process (default: the first allowed CPU)
  --client-cpu N        CPU of the load generator (default: the second allowed CPU)
  --quiet-wait S        before each run, wait up to S seconds for both CPUs to be idle,
                        and redo (up to 3 times) a run during which other processes took
                        more than 10 % of them (default 30; 0: neither wait nor redo). The
                        `others/steal %` column shows what the kept runs lost anyway
  --ringleader-bin PATH ringleader's echo binary (default: build ../target/release/examples/
                        echo with `cargo build --release --example echo` first)
  -h, --help            this text

Internal: `echo --serve NAME --listen ADDR` runs one peer server (how the bench starts them).";

#[derive(Debug)]
struct Args {
    runs: usize,
    warmup: Duration,
    secs: Duration,
    conns: usize,
    sizes: Vec<usize>,
    servers: Vec<Server>,
    server_cpu: Option<usize>,
    client_cpu: Option<usize>,
    quiet_wait: Duration,
    ringleader_bin: Option<PathBuf>,
}

enum Mode {
    Help,
    Bench(Args),
    Serve { name: String, listen: SocketAddr },
}

fn list<T>(flag: &str, v: &str, item: impl Fn(&str) -> Option<T>) -> Result<Vec<T>, String> {
    let items: Option<Vec<T>> = v.split(',').map(|s| item(s.trim())).collect();
    match items {
        Some(items) if !items.is_empty() => Ok(items),
        _ => Err(format!("{flag}: cannot parse {v:?}")),
    }
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Mode, String> {
    let mut args = Args {
        runs: 3,
        warmup: Duration::from_secs(1),
        secs: Duration::from_secs(3),
        conns: 100,
        sizes: vec![128, 1024],
        servers: Server::ALL.to_vec(),
        server_cpu: None,
        client_cpu: None,
        quiet_wait: Duration::from_secs(30),
        ringleader_bin: None,
    };
    let (mut quick, mut runs, mut warmup, mut secs) = (false, None, None, None);
    let (mut serve, mut listen) = (None, None);
    fn value(flag: &str, v: Option<String>) -> Result<String, String> {
        v.ok_or_else(|| format!("{flag} needs a value"))
    }
    fn number<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
        let v = value(flag, v)?;
        v.parse()
            .map_err(|_| format!("{flag}: cannot parse {v:?} as a number"))
    }
    let seconds = |flag: &str, v: Option<String>| -> Result<Duration, String> {
        let s: f64 = number(flag, v)?;
        Duration::try_from_secs_f64(s).map_err(|e| format!("{flag}: {e}"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(Mode::Help),
            "--quick" => quick = true,
            "--runs" => runs = Some(number("--runs", it.next())?),
            "--secs" => secs = Some(seconds("--secs", it.next())?),
            "--warmup" => warmup = Some(seconds("--warmup", it.next())?),
            "--conns" => args.conns = number("--conns", it.next())?,
            "--sizes" => {
                args.sizes = list("--sizes", &value("--sizes", it.next())?, |s| {
                    s.parse().ok().filter(|&n: &usize| n > 0)
                })?
            }
            "--servers" => {
                args.servers = list(
                    "--servers",
                    &value("--servers", it.next())?,
                    Server::from_name,
                )?
            }
            "--server-cpu" => args.server_cpu = Some(number("--server-cpu", it.next())?),
            "--client-cpu" => args.client_cpu = Some(number("--client-cpu", it.next())?),
            "--quiet-wait" => args.quiet_wait = seconds("--quiet-wait", it.next())?,
            "--ringleader-bin" => {
                args.ringleader_bin = Some(value("--ringleader-bin", it.next())?.into())
            }
            "--serve" => serve = Some(value("--serve", it.next())?),
            "--listen" => listen = Some(number("--listen", it.next())?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if let Some(name) = serve {
        let listen = listen.ok_or("--serve needs --listen ADDR")?;
        return Ok(Mode::Serve { name, listen });
    }
    if quick {
        args.runs = 1;
        args.warmup = Duration::from_millis(300);
        args.secs = Duration::from_secs(1);
    }
    args.runs = runs.unwrap_or(args.runs);
    args.warmup = warmup.unwrap_or(args.warmup);
    args.secs = secs.unwrap_or(args.secs);
    if args.runs == 0 || args.conns == 0 || args.secs.is_zero() {
        return Err("--runs, --conns and --secs must be positive".to_owned());
    }
    Ok(Mode::Bench(args))
}

fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)) {
        Ok(Mode::Help) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Mode::Serve { name, listen }) => match echo::serve(&name, listen) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("echo --serve {name}: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(Mode::Bench(args)) => match run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("echo: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("echo: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// `../target/release/examples/echo`, built (or found up to date) by cargo.
fn build_ringleader_echo() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent");
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    eprintln!("echo: building ringleader's examples/echo (release) in {root:?}");
    let status = Command::new(cargo)
        .args(["build", "--release", "--example", "echo"])
        .current_dir(root)
        .status()
        .map_err(|e| format!("running {cargo} build: {e}"))?;
    if !status.success() {
        return Err(format!("building examples/echo failed: {status}"));
    }
    Ok(root.join("target/release/examples/echo"))
}

/// One measured run.
#[derive(Clone, Debug)]
struct Run {
    out: Outcome,
    /// Percent of the two CPUs taken by other processes / stolen by the hypervisor.
    others: f64,
    steal: f64,
}

impl Run {
    fn rate(&self) -> f64 {
        self.out.rate()
    }

    fn p99_us(&self) -> f64 {
        self.out
            .latency
            .quantile(0.99)
            .map_or(f64::NAN, |d| d.as_nanos() as f64 / 1e3)
    }
}

/// The runs of one cell (server x size), or the first error.
type Cell = Result<Vec<Run>, String>;

fn run(args: &Args) -> Result<(), String> {
    let cpus = pin::allowed_cpus().map_err(|e| format!("sched_getaffinity: {e}"))?;
    let server_cpu = args.server_cpu.or(cpus.first().copied()).unwrap_or(0);
    let client_cpu = args
        .client_cpu
        .or(cpus.iter().copied().find(|&c| c != server_cpu))
        .unwrap_or(server_cpu);
    if client_cpu == server_cpu {
        eprintln!("echo: warning: server and load generator share CPU {server_cpu}");
    }
    let ringleader_bin = match &args.ringleader_bin {
        Some(p) => p.clone(),
        None if args
            .servers
            .iter()
            .any(|s| matches!(s, Server::Ringleader | Server::RingleaderNoSpin)) =>
        {
            build_ringleader_echo()?
        }
        None => PathBuf::new(),
    };
    let bench_exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    pin::pin_to_cpu(client_cpu).map_err(|e| format!("pinning to CPU {client_cpu}: {e}"))?;

    println!(
        "echo: server on CPU {server_cpu}, load generator on CPU {client_cpu}; {} connections, \
         one request in flight each; {:.1} s measured after {:.1} s warm-up; {} run(s) per \
         cell, interleaved; kernel {}",
        args.conns,
        args.secs.as_secs_f64(),
        args.warmup.as_secs_f64(),
        args.runs,
        kernel_release()
    );
    // cells[size][server]
    let mut cells: Vec<Vec<Cell>> =
        vec![vec![Ok(Vec::new()); args.servers.len()]; args.sizes.len()];
    for r in 0..args.runs {
        for (zi, &size) in args.sizes.iter().enumerate() {
            for (vi, &server) in args.servers.iter().enumerate() {
                let cell = &mut cells[zi][vi];
                let Ok(runs) = cell else { continue };
                let load = Load {
                    conns: args.conns,
                    size,
                    warmup: args.warmup,
                    measure: args.secs,
                };
                let cpus = [server_cpu, client_cpu];
                let label = format!(
                    "run {}/{} {size:>5} B {:<10}",
                    r + 1,
                    args.runs,
                    server.name()
                );
                match clean_run(
                    args,
                    server,
                    &cpus,
                    &ringleader_bin,
                    &bench_exe,
                    &load,
                    &label,
                ) {
                    Ok(run) => runs.push(run),
                    Err(e) => {
                        eprintln!("echo: {} at {size} B: {e}", server.name());
                        *cell = Err(e);
                    }
                }
            }
        }
    }
    for (zi, &size) in args.sizes.iter().enumerate() {
        println!("\n{size} B messages");
        print!("{}", table(&args.servers, &cells[zi]));
    }
    println!();
    for s in &args.servers {
        println!("  {:<10}  {}", s.name(), s.description());
    }
    verdict(args, &cells);
    Ok(())
}

/// Runs of a cell that lost more than this share of the CPUs to other processes are redone.
const MAX_OTHERS: f64 = 10.0;
/// How many times a disturbed run is redone before it is kept as it is.
const RETRIES: usize = 3;

/// One run on quiet CPUs: wait for them (up to `--quiet-wait`), run, and redo the run (up to
/// `RETRIES` times) when other processes took more than `MAX_OTHERS` percent during it.
fn clean_run(
    args: &Args,
    server: Server,
    cpus: &[usize; 2],
    ringleader_bin: &Path,
    bench_exe: &Path,
    load: &Load,
    label: &str,
) -> Result<Run, String> {
    let mut attempt = 0;
    loop {
        if !args.quiet_wait.is_zero()
            && !cpu::wait_quiet(cpus, MAX_OTHERS, args.quiet_wait).unwrap_or(true)
        {
            eprintln!("echo: the CPUs are busy with other work; running anyway");
        }
        let run = one_run(server, cpus, ringleader_bin, bench_exe, load)?;
        let disturbed = run.others > MAX_OTHERS;
        eprintln!(
            "echo: {label} {:>10.0} req/s  p99 {:>8.1} us  others {:>4.1}%  steal {:>4.1}%{}",
            run.rate(),
            run.p99_us(),
            run.others,
            run.steal,
            if disturbed && attempt < RETRIES && !args.quiet_wait.is_zero() {
                "  (disturbed: redone)"
            } else {
                ""
            }
        );
        if !disturbed || attempt == RETRIES || args.quiet_wait.is_zero() {
            return Ok(run);
        }
        attempt += 1;
    }
}

/// Start `server` on `cpus[0]`, load it from this thread (already on `cpus[1]`), stop it.
fn one_run(
    server: Server,
    cpus: &[usize; 2],
    ringleader_bin: &Path,
    bench_exe: &Path,
    load: &Load,
) -> Result<Run, String> {
    let mut proc = server
        .start(cpus[0], ringleader_bin, bench_exe)
        .map_err(|e| e.to_string())?;
    let pids = [proc.pid(), std::process::id()];
    let before = Snapshot::take(cpus, &pids).map_err(|e| format!("reading /proc: {e}"))?;
    let out = client::run(proc.addr(), load).map_err(|e| e.to_string());
    let after = Snapshot::take(cpus, &pids).map_err(|e| format!("reading /proc: {e}"))?;
    proc.check_running().map_err(|e| e.to_string())?;
    let (others, steal) = before.others_since(&after);
    Ok(Run {
        out: out?,
        others,
        steal,
    })
}

/// The middle value (the mean of the two middle values for an even count); NaN if empty.
fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// (median, min, max) of `f` over the runs.
fn spread(runs: &[Run], f: impl Fn(&Run) -> f64) -> (f64, f64, f64) {
    let v: Vec<f64> = runs.iter().map(f).collect();
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (median(&v), lo, hi)
}

fn median_rate(cell: &Cell) -> Option<f64> {
    match cell {
        Ok(runs) if !runs.is_empty() => Some(spread(runs, Run::rate).0),
        _ => None,
    }
}

fn table(servers: &[Server], cells: &[Cell]) -> Table {
    let base = servers
        .iter()
        .position(|&s| s == Server::BASELINE)
        .and_then(|i| median_rate(&cells[i]));
    let mut t = Table::new([
        "server",
        "req/s median [min .. max]",
        "runs (req/s)",
        "p99 us median [min .. max]",
        "vs tokio-ct",
        "others/steal % (max)",
    ]);
    for (s, cell) in servers.iter().zip(cells) {
        match cell {
            Ok(runs) if !runs.is_empty() => {
                let (m, lo, hi) = spread(runs, Run::rate);
                let (pm, plo, phi) = spread(runs, Run::p99_us);
                let others = spread(runs, |r| r.others).2;
                let steal = spread(runs, |r| r.steal).2;
                let each: Vec<String> = runs.iter().map(|r| si(r.rate())).collect();
                t.row([
                    s.name().to_owned(),
                    format!("{} [{} .. {}]", si(m), si(lo), si(hi)),
                    each.join(", "),
                    format!("{pm:.0} [{plo:.0} .. {phi:.0}]"),
                    base.map_or("-".to_owned(), |b| ratio(m / b)),
                    format!("{others:.0} / {steal:.0}"),
                ]);
            }
            Ok(_) => t.row([s.name(), "-", "-", "-", "-", "-"]),
            Err(e) => t.row([
                s.name().to_owned(),
                format!("failed: {e}"),
                "-".to_owned(),
                "-".to_owned(),
                "-".to_owned(),
                "-".to_owned(),
            ]),
        }
    }
    t
}

/// Acceptance g of issue 4: ringleader >= 1.2x tokio current_thread at 128 B.
fn verdict(args: &Args, cells: &[Vec<Cell>]) {
    let (Some(zi), Some(rl), Some(tk)) = (
        args.sizes.iter().position(|&s| s == 128),
        args.servers.iter().position(|&s| s == Server::Ringleader),
        args.servers.iter().position(|&s| s == Server::BASELINE),
    ) else {
        return;
    };
    if let (Some(r), Some(t)) = (median_rate(&cells[zi][rl]), median_rate(&cells[zi][tk])) {
        let x = r / t;
        let verdict = if x >= 1.2 { "met" } else { "NOT met" };
        println!(
            "\nringleader / tokio-ct at 128 B: {} (median of {} run(s); target >= 1.20x): {verdict}",
            ratio(x),
            args.runs
        );
    }
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".to_owned())
}
