//! `nbd`: ringleader's `examples/nbd_server` against `qemu-nbd --aio=io_uring`,
//! `qemu-nbd --aio=threads` and `nbdkit file`, driven by fio's nbd engine (or by
//! `qemu-img bench`), in one run.
//!
//! All servers export the same raw image, read once beforehand so it sits in the page cache.
//! For every run, workload and server: a fresh server, one client run against it, the
//! server killed by PID; servers are interleaved within a run (from a rotating start) so a
//! noisy host's drift spreads over all of them. With fio (the default) the server is pinned
//! to one CPU (ringleader with `--cores 1`) and fio to another. Reported per workload and
//! server: IOPS, IOPS per server CPU-second and µs of server CPU per I/O, the server's CPU
//! time being its `utime + stime` (all threads) over exactly the client's measured window;
//! then ringleader's ratio to the best peer. See `src/nbd/` and `bench/README.md`.

#[path = "../nbd/mod.rs"]
mod nbd;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use nbd::report::{self, Cell};
use nbd::run::{self, Plan};
use nbd::server::{self, Launch, Server};
use nbd::workload::{Client, Workload};
use nbd::{fio, image};
use ringleader_bench::pin;

const USAGE: &str = "\
usage: nbd [--client fio|qemu-img] [--runs R] [--quick] [--runtime S] [--ramp S]
           [--image PATH] [--servers NAME,..] [--workloads NAME,..] [--pin | --no-pin]
           [--server-cpu N] [--client-cpu N] [--quiet-wait S]
           [--ringleader-bin PATH] [--ringleader-args \"ARGS\"]

NBD servers on the same 1 GiB image in the page cache: ringleader's examples/nbd_server,
qemu-nbd --aio=io_uring, qemu-nbd --aio=threads and nbdkit file, driven by fio's nbd engine
(default) or qemu-img bench. Prints, per workload and server: IOPS (median [min .. max] of
the runs), IOPS per server CPU-second, µs of server CPU per I/O, server and client CPU %;
then ringleader's ratio to the best peer on IOPS and on IOPS per CPU-second.

  --client C            fio (default): `fio --ioengine=nbd`, time-based, one connection;
                        qemu-img: `qemu-img bench`, a fixed count of requests
  --runs R              measured runs per cell, each with a fresh server (default 3)
  --quick               1 run; fio: 1 s ramp + 3 s measured; qemu-img: a tenth of the I/O
  --runtime S / --ramp S  fio: seconds measured / of ramp before them (default 10 / 2)
  --image PATH          the image (default: target/nbd-bench.img, 1 GiB of pseudo-random
                        data, created if missing)
  --servers NAME,..     subset of: ringleader,ringleader-ring-writes,ringleader-batch-reads,
                        ringleader-group-reads,ringleader-nospin,qemu-nbd-io_uring,
                        qemu-nbd-threads,nbdkit
                        (default: ringleader and the three peers with fio, all with qemu-img)
  --workloads NAME,..   subset of: rand-read-qd1,rand-write-qd1,rand-read-qd32,
                        rand-write-qd32 (4 KiB each), seq-read-64k (QD 32),
                        seq-read-256k,seq-write-256k (QD 8) (default with fio:
                        rand-read-qd32,rand-write-qd32,seq-read-256k,seq-write-256k; with
                        qemu-img: the first five)
  --pin / --no-pin      the server on one CPU (ringleader then runs with --cores 1), the
                        client and the bench on another (default: pinned with fio, not
                        pinned with qemu-img)
  --server-cpu N        pinned: the server's CPU (default: the first allowed CPU)
  --client-cpu N        pinned: the client's CPU (default: the second allowed CPU)
  --quiet-wait S        before each run, wait up to S seconds for the CPUs to be idle, and
                        redo (up to 3 times) a run during which other processes took more
                        than 10 % of them (default 10; 0: neither wait nor redo)
  --ringleader-bin PATH ringleader's server (default: ../target/release/examples/nbd_server;
                        build it with `cargo build --release --all-features --example
                        nbd_server` in the repository root)
  --ringleader-args A   extra arguments for ringleader's server (e.g. \"--direct\")
  -h, --help            this text";

#[derive(Debug)]
struct Args {
    client: Client,
    runs: usize,
    quick: bool,
    timing: fio::Timing,
    image: Option<PathBuf>,
    servers: Vec<Server>,
    workloads: Vec<Workload>,
    pin: bool,
    server_cpu: Option<usize>,
    client_cpu: Option<usize>,
    quiet_wait: Duration,
    ringleader_bin: Option<PathBuf>,
    ringleader_args: Vec<String>,
}

fn value(flag: &str, v: Option<String>) -> Result<String, String> {
    v.ok_or_else(|| format!("{flag} needs a value"))
}

fn number<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
    let v = value(flag, v)?;
    v.parse().map_err(|_| format!("{flag}: cannot parse {v:?}"))
}

fn seconds(flag: &str, v: Option<String>) -> Result<Duration, String> {
    let s: f64 = number(flag, v)?;
    Duration::try_from_secs_f64(s).map_err(|e| format!("{flag}: {e}"))
}

fn list<T>(flag: &str, v: &str, item: impl Fn(&str) -> Option<T>) -> Result<Vec<T>, String> {
    v.split(',')
        .map(|n| item(n.trim()).ok_or_else(|| format!("{flag}: unknown name {n:?}")))
        .collect()
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let (mut client, mut runs, mut quick, mut pin) = (Client::Fio, None, false, None);
    let (mut runtime, mut ramp, mut servers, mut workloads) = (None, None, None, None);
    let mut a = Args {
        client,
        runs: 3,
        quick: false,
        timing: fio::Timing {
            ramp: Duration::from_secs(2),
            runtime: Duration::from_secs(10),
        },
        image: None,
        servers: Vec::new(),
        workloads: Vec::new(),
        pin: true,
        server_cpu: None,
        client_cpu: None,
        quiet_wait: Duration::from_secs(10),
        ringleader_bin: None,
        ringleader_args: Vec::new(),
    };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--client" => {
                let v = value("--client", it.next())?;
                client = Client::from_name(&v)
                    .ok_or_else(|| format!("--client: fio or qemu-img, not {v:?}"))?;
            }
            "--quick" => quick = true,
            "--runs" => runs = Some(number("--runs", it.next())?),
            "--runtime" => runtime = Some(seconds("--runtime", it.next())?),
            "--ramp" => ramp = Some(seconds("--ramp", it.next())?),
            "--image" => a.image = Some(value("--image", it.next())?.into()),
            "--servers" => {
                let v = value("--servers", it.next())?;
                servers = Some(list("--servers", &v, Server::from_name)?);
            }
            "--workloads" => {
                let v = value("--workloads", it.next())?;
                workloads = Some(list("--workloads", &v, Workload::from_name)?);
            }
            "--pin" => pin = Some(true),
            "--no-pin" => pin = Some(false),
            "--server-cpu" => a.server_cpu = Some(number("--server-cpu", it.next())?),
            "--client-cpu" => a.client_cpu = Some(number("--client-cpu", it.next())?),
            "--quiet-wait" => a.quiet_wait = seconds("--quiet-wait", it.next())?,
            "--ringleader-bin" => {
                a.ringleader_bin = Some(value("--ringleader-bin", it.next())?.into());
            }
            "--ringleader-args" => {
                let v = value("--ringleader-args", it.next())?;
                a.ringleader_args = v.split_whitespace().map(str::to_owned).collect();
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    a.client = client;
    a.quick = quick;
    if quick {
        a.runs = 1;
        a.timing = fio::Timing {
            ramp: Duration::from_secs(1),
            runtime: Duration::from_secs(3),
        };
    }
    a.runs = runs.unwrap_or(a.runs);
    a.timing.runtime = runtime.unwrap_or(a.timing.runtime);
    a.timing.ramp = ramp.unwrap_or(a.timing.ramp);
    a.servers = servers.unwrap_or_else(|| match client {
        Client::Fio => Server::DEFAULT.to_vec(),
        Client::QemuImg => Server::ALL.to_vec(),
    });
    a.workloads = workloads.unwrap_or_else(|| client.default_workloads());
    a.pin = pin.unwrap_or(client == Client::Fio);
    if a.runs == 0 || a.timing.runtime < Duration::from_secs(1) {
        return Err("--runs must be above 0 and --runtime at least 1 s".to_owned());
    }
    Ok(Some(a))
}

fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)) {
        Ok(None) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Some(args)) => match run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("nbd: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("nbd: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// The servers whose program is installed.
fn available(servers: &[Server]) -> Vec<Server> {
    servers
        .iter()
        .copied()
        .filter(|s| {
            let ok = s.tool().is_empty() || server::have(s.tool());
            if !ok {
                eprintln!(
                    "nbd: skipping {}: `{}` is not installed",
                    s.name(),
                    s.tool()
                );
            }
            ok
        })
        .collect()
}

/// A copy of ringleader's server for one bench, removed when dropped: a rebuild of the
/// original during the bench (others may be working on it) cannot mix two servers in one
/// table.
#[derive(Debug)]
struct BinCopy(PathBuf);

impl BinCopy {
    fn new(bin: &Path) -> Result<BinCopy, String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        let copy = dir.join(format!("nbd_server.bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::fs::copy(bin, &copy)
            .map_err(|e| format!("copying {} to {}: {e}", bin.display(), copy.display()))?;
        Ok(BinCopy(copy))
    }
}

impl Drop for BinCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// ringleader's server binary, and how long ago it was built.
fn ringleader_bin(args: &Args) -> Result<(PathBuf, String), String> {
    let bin = args.ringleader_bin.clone().unwrap_or_else(|| {
        let bench = Path::new(env!("CARGO_MANIFEST_DIR"));
        bench
            .parent()
            .unwrap_or(bench)
            .join("target/release/examples/nbd_server")
    });
    let meta = std::fs::metadata(&bin).map_err(|e| {
        format!(
            "{}: {e}; build it with `cargo build --release --all-features --example \
             nbd_server` in the repository root, or pass --ringleader-bin",
            bin.display()
        )
    })?;
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .map_or("?".to_owned(), |d| format!("{} min", d.as_secs() / 60));
    Ok((bin, age))
}

fn first_line(path: &str) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// `1.27 0.34 0.11` (1, 5 and 15 minutes).
fn load_average() -> String {
    let l = first_line("/proc/loadavg");
    l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn run(args: &Args) -> Result<(), String> {
    let client_tool = match args.client {
        Client::Fio => "fio",
        Client::QemuImg => "qemu-img",
    };
    if !server::have(client_tool) {
        return Err(format!(
            "{client_tool} is not installed (apt-get install {})",
            if args.client == Client::Fio {
                "fio"
            } else {
                "qemu-utils"
            }
        ));
    }
    let servers = available(&args.servers);
    let (bin, bin_age) = if servers.iter().any(|s| s.is_ringleader()) {
        ringleader_bin(args)?
    } else {
        (PathBuf::new(), String::new())
    };
    let copy = if bin.as_os_str().is_empty() {
        None
    } else {
        Some(BinCopy::new(&bin)?)
    };
    let image = args
        .image
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/nbd-bench.img"));
    image::make(&image)?;
    image::warm(&image)?;
    // Held to the end: the image stays in the page cache for every run (image.rs).
    let _resident = match image::pin(&image) {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("nbd: warning: {e}: page-cache eviction may reach the runs");
            None
        }
    };

    let allowed = pin::allowed_cpus().map_err(|e| format!("sched_getaffinity: {e}"))?;
    let (server_cpu, client_cpu) = if args.pin {
        let s = args.server_cpu.unwrap_or(allowed[0]);
        let c = args
            .client_cpu
            .or(allowed.iter().copied().find(|&c| c != s))
            .unwrap_or(s);
        if c == s {
            eprintln!("nbd: warning: server and client share CPU {s}");
        }
        // The sampler thread (and everything else here) stays off the server's CPU.
        pin::pin_to_cpu(c).map_err(|e| format!("pinning to CPU {c}: {e}"))?;
        (Some(s), Some(c))
    } else {
        (None, None)
    };
    let watched: Vec<usize> = match (server_cpu, client_cpu) {
        (Some(s), Some(c)) if s != c => vec![s, c],
        (Some(s), _) => vec![s],
        _ => allowed.clone(),
    };
    let placement = match (server_cpu, client_cpu) {
        (Some(s), Some(c)) => format!(
            "server on CPU {s} (ringleader with --cores 1), {} on CPU {c}",
            args.client.name()
        ),
        _ => format!("nothing pinned, {} CPUs", allowed.len()),
    };
    let client = match args.client {
        Client::Fio => format!(
            "{} --ioengine=nbd, {} s measured after {} s ramp",
            fio::version().unwrap_or_else(|| "fio".to_owned()),
            args.timing.runtime.as_secs_f64(),
            args.timing.ramp.as_secs_f64()
        ),
        Client::QemuImg if args.quick => "qemu-img bench, a tenth of the I/O counts".to_owned(),
        Client::QemuImg => "qemu-img bench".to_owned(),
    };
    println!(
        "nbd: {client}; image {} (1 GiB, page cache); {placement}; {} run(s) per cell, \
         interleaved; kernel {}",
        image.display(),
        args.runs,
        first_line("/proc/sys/kernel/osrelease"),
    );
    if servers.iter().any(|s| s.is_ringleader()) {
        println!(
            "nbd: ringleader {} (built {bin_age} ago; the bench runs a copy of it)",
            bin.display()
        );
    }
    println!("nbd: load average before: {}", load_average());

    let launch = Launch {
        ringleader_bin: copy.as_ref().map_or(&bin, |c| &c.0),
        ringleader_args: &args.ringleader_args,
        image: &image,
        cpu: server_cpu,
    };
    let plan = Plan {
        client: args.client,
        timing: args.timing,
        count_div: if args.quick { 10 } else { 1 },
        client_cpu,
        cpus: &watched,
        quiet_wait: args.quiet_wait,
    };
    let cells = measure_all(args, &servers, &launch, &plan);

    for (w, cells) in args.workloads.iter().zip(&cells) {
        println!("\n{}: {}", w.name, w.describe());
        print!("{}", report::workload_table(&servers, cells));
    }
    if let Some((table, verdict)) = report::summary(&args.workloads, &servers, &cells) {
        println!("\nringleader / best peer (ratio of medians; the peer in brackets)");
        print!("{table}");
        println!("{verdict}");
    }
    if args.client == Client::QemuImg {
        println!(
            "Goal (issue 6, qemu-img): ringleader >= 1.30x nbdkit's and >= 2.00x qemu-nbd's \
             IOPS on rand-read-qd32 and rand-write-qd32, with less server CPU per I/O."
        );
    }
    println!("nbd: load average after: {}", load_average());
    Ok(())
}

/// Every run of every cell, `cells[workload][server]`: run 1 of every workload and server,
/// then run 2, ...; within a run the servers start from a rotating position. A cell whose
/// run fails keeps the error and is not run again.
fn measure_all(
    args: &Args,
    servers: &[Server],
    launch: &Launch<'_>,
    plan: &Plan<'_>,
) -> Vec<Vec<Cell>> {
    let mut cells: Vec<Vec<Cell>> = vec![vec![Ok(Vec::new()); servers.len()]; args.workloads.len()];
    let width = servers.iter().map(|s| s.name().len()).max().unwrap_or(0);
    for r in 0..args.runs {
        for (wi, w) in args.workloads.iter().enumerate() {
            for k in 0..servers.len() {
                let si = (k + r) % servers.len();
                let cell = &mut cells[wi][si];
                let Ok(runs) = cell else { continue };
                let label = format!(
                    "run {}/{} {:<15} {:<width$}",
                    r + 1,
                    args.runs,
                    w.name,
                    servers[si].name()
                );
                match run::clean(servers[si], w, launch, plan, &label) {
                    Ok(run) => runs.push(run),
                    Err(e) => {
                        eprintln!("nbd: {label}: {e}");
                        *cell = Err(e);
                    }
                }
            }
        }
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<Option<Args>, String> {
        parse_args(v.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_follow_the_client() {
        let a = parse(&[]).unwrap().unwrap();
        assert_eq!(a.client, Client::Fio);
        assert!(a.pin);
        assert_eq!(a.servers, Server::DEFAULT);
        assert_eq!(a.workloads.len(), 4);
        let a = parse(&["--client", "qemu-img"]).unwrap().unwrap();
        assert!(!a.pin);
        assert_eq!(a.servers, Server::ALL);
        assert_eq!(a.workloads.len(), 5);
    }

    #[test]
    fn quick_then_explicit_flags_win() {
        let a = parse(&["--runs", "5", "--quick", "--runtime", "2"])
            .unwrap()
            .unwrap();
        assert_eq!(a.runs, 5);
        assert_eq!(a.timing.runtime, Duration::from_secs(2));
        assert_eq!(a.timing.ramp, Duration::from_secs(1));
        assert!(parse(&["--servers", "nope"]).is_err());
        assert!(parse(&["--help"]).unwrap().is_none());
    }
}
