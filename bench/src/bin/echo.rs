//! `echo`: ringleader's echo server against tokio (current-thread and multi-thread), monoio,
//! glommio and compio, in one run.
//!
//! Each server runs as its own process pinned to one CPU; the load generator (one raw
//! io_uring, 100 connections, one request in flight each) runs here, pinned to another. For
//! every message size and server: a fresh server, a warm-up, a measured window; `--runs`
//! times, interleaved across servers. The table shows the median of the runs' req/s, p99 and
//! server CPU time per request with `[min .. max]`, and the ratios of medians to tokio
//! current_thread. See `bench/README.md`.

#[path = "../echo/mod.rs"]
mod echo;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use echo::Server;
use echo::client::{self, Load, Outcome};
use echo::cpu::{Snapshot, Usage};
use ringleader_bench::table::{Table, ratio, si};
use ringleader_bench::{pin, procfs};

const USAGE: &str = "\
usage: echo [--runs R] [--quick] [--secs S] [--warmup S] [--conns N] [--sizes B,B..]
            [--servers NAME,..] [--server-cpu N] [--client-cpu N] [--quiet-wait S]
            [--ringleader-bin PATH]

Echo round trips (send N bytes, wait for N back) from 100 connections against ringleader's
examples/echo and idiomatic echo servers on tokio (current_thread, multi_thread with 1
worker), monoio, glommio and compio; the server on one CPU, the load generator on another.
Prints per server and message size req/s, p99 latency and the server's CPU time per request
(utime + stime of all its threads over the measured window, divided by the requests
completed in it: efficiency whatever the load generator's speed), and the ratios of
req/s and of CPU per request to tokio-ct.

  --runs R              measured runs per cell, each with a fresh server (default 3); the
                        table shows the median with [min .. max]; a run's CPU per request
                        is good to one 10 ms tick of server CPU time (1 % of a busy 1 s)
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
    /// Over the measured window: the server's CPU time, and the percent of the two CPUs
    /// taken by other processes / stolen by the hypervisor.
    usage: Usage,
}

impl Run {
    fn rate(&self) -> f64 {
        self.out.rate()
    }

    /// Microseconds of server CPU time (all threads) per request completed in the window.
    fn cpu_us(&self) -> f64 {
        self.usage.server_cpu * 1e6 / self.out.requests as f64
    }

    fn others(&self) -> f64 {
        self.usage.others
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
        if !args.quiet_wait.is_zero() && !procfs::wait_quiet(cpus, MAX_OTHERS, args.quiet_wait) {
            eprintln!("echo: the CPUs are busy with other work; running anyway");
        }
        let run = one_run(server, cpus, ringleader_bin, bench_exe, load)?;
        let disturbed = run.others() > MAX_OTHERS;
        eprintln!(
            "echo: {label} {:>10.0} req/s  p99 {:>8.1} us  cpu {:>5.2} us/req  others {:>4.1}%  \
             steal {:>4.1}%{}",
            run.rate(),
            run.p99_us(),
            run.cpu_us(),
            run.usage.others,
            run.usage.steal,
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
/// The CPU figures are snapshots taken by the load generator as its window opens and closes.
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
    let pid = proc.pid();
    let mut edges = Vec::with_capacity(2);
    let out = client::run(proc.addr(), load, &mut || {
        edges.push(Snapshot::take(cpus, pid));
    })
    .map_err(|e| e.to_string());
    proc.check_running().map_err(|e| e.to_string())?;
    let out = out?;
    let [before, after] = <[_; 2]>::try_from(edges)
        .map_err(|v| format!("{} window edges instead of 2", v.len()))?
        .map(|s| s.map_err(|e| format!("reading /proc: {e}")));
    Ok(Run {
        out,
        usage: before?.until(&after?),
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

/// The median of `f` over a cell's runs; `None` for a failed or empty cell.
fn median_of(cell: &Cell, f: impl Fn(&Run) -> f64) -> Option<f64> {
    match cell {
        Ok(runs) if !runs.is_empty() => Some(spread(runs, f).0),
        _ => None,
    }
}

fn table(servers: &[Server], cells: &[Cell]) -> Table {
    let base = servers.iter().position(|&s| s == Server::BASELINE);
    let base_rate = base.and_then(|i| median_of(&cells[i], Run::rate));
    let base_cpu = base.and_then(|i| median_of(&cells[i], Run::cpu_us));
    let header = [
        "server",
        "req/s median [min .. max]",
        "runs (req/s)",
        "p99 us median [min .. max]",
        "server CPU us/req median [min .. max]",
        "req/s vs tokio-ct",
        "CPU/req vs tokio-ct",
        "others/steal % (max)",
    ];
    let dashes = || header.iter().skip(2).map(|_| "-".to_owned());
    let mut t = Table::new(header);
    for (s, cell) in servers.iter().zip(cells) {
        match cell {
            Ok(runs) if !runs.is_empty() => {
                let (m, lo, hi) = spread(runs, Run::rate);
                let (pm, plo, phi) = spread(runs, Run::p99_us);
                let (cm, clo, chi) = spread(runs, Run::cpu_us);
                let others = spread(runs, Run::others).2;
                let steal = spread(runs, |r| r.usage.steal).2;
                let each: Vec<String> = runs.iter().map(|r| si(r.rate())).collect();
                let vs = |b: Option<f64>, x: f64| b.map_or("-".to_owned(), |b| ratio(x / b));
                t.row([
                    s.name().to_owned(),
                    format!("{} [{} .. {}]", si(m), si(lo), si(hi)),
                    each.join(", "),
                    format!("{pm:.0} [{plo:.0} .. {phi:.0}]"),
                    format!("{cm:.2} [{clo:.2} .. {chi:.2}]"),
                    vs(base_rate, m),
                    vs(base_cpu, cm),
                    format!("{others:.0} / {steal:.0}"),
                ]);
            }
            Ok(_) => t.row(
                [s.name().to_owned(), "-".to_owned()]
                    .into_iter()
                    .chain(dashes()),
            ),
            Err(e) => t.row(
                [s.name().to_owned(), format!("failed: {e}")]
                    .into_iter()
                    .chain(dashes()),
            ),
        }
    }
    t
}

/// The targets against tokio current_thread, from the ratios of medians: issue 4's
/// acceptance g (ringleader >= 1.2x its req/s at 128 B) and issue 17's echo goal (at every
/// size, req/s >= tokio-ct's and server CPU per request <= tokio-ct's, with default settings).
fn verdict(args: &Args, cells: &[Vec<Cell>]) {
    let (Some(rl), Some(tk)) = (
        args.servers.iter().position(|&s| s == Server::Ringleader),
        args.servers.iter().position(|&s| s == Server::BASELINE),
    ) else {
        return;
    };
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    let vs = |zi: usize, f: fn(&Run) -> f64| {
        Some(median_of(&cells[zi][rl], f)? / median_of(&cells[zi][tk], f)?)
    };
    println!(
        "\nringleader / tokio-ct, ratios of medians of {} run(s):",
        args.runs
    );
    if let Some(x) = args
        .sizes
        .iter()
        .position(|&s| s == 128)
        .and_then(|zi| vs(zi, Run::rate))
    {
        println!(
            "  req/s at 128 B: {} (issue 4 target >= 1.20x): {}",
            ratio(x),
            met(x >= 1.2)
        );
    }
    for (zi, size) in args.sizes.iter().enumerate() {
        if let (Some(r), Some(c)) = (vs(zi, Run::rate), vs(zi, Run::cpu_us)) {
            println!(
                "  at {size} B: req/s {}, server CPU per request {} (issue 17 target: \
                 req/s >= 1.00x and CPU/req <= 1.00x): {}",
                ratio(r),
                ratio(c),
                met(r >= 1.0 && c <= 1.0)
            );
        }
    }
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".to_owned())
}
