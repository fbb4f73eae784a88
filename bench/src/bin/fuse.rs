//! `fuse`: ringleader's `examples/fuse_passthrough` (io_uring and classic /dev/fuse) against
//! `bindfs` (libfuse 3), the bench's `fuser_passthrough` (the `fuser` crate) and no FUSE at
//! all, on fio and a metadata workload (issue 15).
//!
//! The source directory is on tmpfs. For every run, workload and server: a fresh server
//! pinned to one CPU (ringleader with `--cores 1`), one workload on another CPU, the server
//! stopped by PID and its mount removed; servers are interleaved within a run (from a
//! rotating start) so a noisy host's drift spreads over all of them. Reported per row and
//! server: IOPS (or seconds), the ratio to bindfs (and to nofuse), and µs of server CPU per
//! operation (`utime + stime`, all threads, over exactly the measured window). See
//! `src/fuse/` and `bench/README.md`.

#[path = "../fuse/mod.rs"]
mod fuse;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fuse::workload::{self, Measure, Workload};
use fuse::{Launch, Server};
use ringleader_bench::pin;
use ringleader_bench::table::{Table, ratio, si};

const USAGE: &str = "\
usage: fuse [--servers NAME,..] [--workloads NAME,..] [--runs N] [--runtime S] [--ramp S]
            [--no-pin] [--ringleader-bin PATH] [--fuser-bin PATH] [--tmp DIR]

FUSE passthrough servers over a tmpfs directory: ringleader's examples/fuse_passthrough
(io_uring transport, and classic /dev/fuse), bindfs, the bench's fuser_passthrough, and
no FUSE (fio on the source itself). Prints, per row and server: IOPS or seconds (median
[min .. max] of the runs), the ratio to bindfs and to nofuse, and µs of server CPU per
operation; then issue 15's goals. Needs root, fio, git, tar, bindfs.

  --servers NAME,..    subset of nofuse,bindfs,fuser,ringleader,ringleader-classic (all)
  --workloads NAME,..  subset of rand-read-4k-j1,rand-read-4k-j2,rand-write-4k-j1,
                       rand-write-4k-j2,seq-read-1m,seq-write-1m (fio: psync, direct=1,
                       one 512 MiB file) and metadata (untar a 10,000-file git repository,
                       then git status twice) (all)
  --runs N             measured runs per cell, each with a fresh server (default 3)
  --runtime S / --ramp S  fio: seconds measured / of ramp before them (default 10 / 1)
  --no-pin             do not pin (default: servers on the first allowed CPU, ringleader
                       with --cores 1; fio, tar, git and the bench on the second)
  --ringleader-bin P   default ../target/release/examples/fuse_passthrough
  --fuser-bin P        default: fuser_passthrough beside this binary
  --tmp DIR            where the source, mount point and tree go (default /dev/shm, tmpfs)
  -h, --help           this text";

const ENABLE_URING: &str = "/sys/module/fuse/parameters/enable_uring";

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

#[derive(Debug)]
struct Args {
    servers: Vec<Server>,
    workloads: Vec<Workload>,
    runs: usize,
    runtime: Duration,
    ramp: Duration,
    pin: bool,
    ringleader_bin: PathBuf,
    fuser_bin: PathBuf,
    tmp: PathBuf,
}

fn parse_args() -> Result<Option<Args>, String> {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_owned))
        .unwrap_or_default();
    let mut a = Args {
        servers: Server::ALL.to_vec(),
        workloads: Workload::ALL.to_vec(),
        runs: 3,
        runtime: Duration::from_secs(10),
        ramp: Duration::from_secs(1),
        pin: true,
        ringleader_bin: PathBuf::from("../target/release/examples/fuse_passthrough"),
        fuser_bin: exe_dir.join("fuser_passthrough"),
        tmp: PathBuf::from("/dev/shm"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let secs = |v: String| {
            v.parse::<f64>()
                .ok()
                .filter(|s| *s >= 0.0)
                .map(Duration::from_secs_f64)
                .ok_or(format!("bad seconds: {v}"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--servers" => {
                a.servers = value()?
                    .split(',')
                    .map(|n| Server::from_name(n).ok_or(format!("unknown server {n}")))
                    .collect::<Result<_, _>>()?
            }
            "--workloads" => {
                a.workloads = value()?
                    .split(',')
                    .map(|n| Workload::from_name(n).ok_or(format!("unknown workload {n}")))
                    .collect::<Result<_, _>>()?
            }
            "--runs" => {
                a.runs = value()?
                    .parse()
                    .ok()
                    .filter(|&r| r > 0)
                    .ok_or("--runs takes a positive number")?
            }
            "--runtime" => a.runtime = secs(value()?)?,
            "--ramp" => a.ramp = secs(value()?)?,
            "--no-pin" => a.pin = false,
            "--ringleader-bin" => a.ringleader_bin = value()?.into(),
            "--fuser-bin" => a.fuser_bin = value()?.into(),
            "--tmp" => a.tmp = value()?.into(),
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    Ok(Some(a))
}

/// The median and range of `v` (not empty).
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

/// Rows in print order.
fn rows(workloads: &[Workload]) -> Vec<&'static str> {
    let mut rows = Vec::new();
    for w in workloads {
        match w {
            Workload::Metadata => rows.extend(["untar", "git-status-1st", "git-status"]),
            w => rows.push(w.name()),
        }
    }
    rows
}

fn is_timed(row: &str) -> bool {
    matches!(row, "untar" | "git-status-1st" | "git-status")
}

/// Per row and server, the median speed (IOPS, or operations per second for the timed
/// rows) and µs of server CPU per operation.
type Medians = HashMap<(&'static str, Server), (f64, f64)>;

fn report(a: &Args, results: &HashMap<(&'static str, Server), Vec<Measure>>) -> Medians {
    let mut medians = Medians::new();
    for row in rows(&a.workloads) {
        for &s in &a.servers {
            if let Some(m) = results.get(&(row, s)).filter(|m| !m.is_empty()) {
                let speed = spread(m.iter().map(|m| m.ops / m.secs).collect()).0;
                let cpu = spread(m.iter().map(|m| m.server_cpu * 1e6 / m.ops).collect()).0;
                medians.insert((row, s), (speed, cpu));
            }
        }
    }
    for row in rows(&a.workloads) {
        let timed = is_timed(row);
        let what = if timed { "seconds" } else { "IOPS" };
        let mut t = Table::new([
            row.to_owned(),
            format!("{what} median [min .. max]"),
            "vs bindfs".into(),
            "vs nofuse".into(),
            "server CPU us/op".into(),
            "server CPU %".into(),
        ]);
        let base = |s: Server| medians.get(&(row, s)).map(|m| m.0);
        for &s in &a.servers {
            let Some(m) = results.get(&(row, s)).filter(|m| !m.is_empty()) else {
                continue;
            };
            let (speed, cpu) = medians[&(row, s)];
            let value = if timed {
                let (med, lo, hi) = spread(m.iter().map(|m| m.secs).collect());
                format!("{med:.2} [{lo:.2} .. {hi:.2}]")
            } else {
                let (med, lo, hi) = spread(m.iter().map(|m| m.ops / m.secs).collect());
                format!("{} [{} .. {}]", si(med), si(lo), si(hi))
            };
            let vs = |b: Option<f64>| b.map_or("-".into(), |b| ratio(speed / b));
            let busy = spread(m.iter().map(|m| 100.0 * m.server_cpu / m.secs).collect()).0;
            let no_server = s == Server::NoFuse;
            t.row([
                s.name().to_owned(),
                value,
                vs(base(Server::Bindfs)),
                vs(base(Server::NoFuse)),
                if no_server {
                    "-".into()
                } else {
                    format!("{cpu:.1}")
                },
                if no_server {
                    "-".into()
                } else {
                    format!("{busy:.0}")
                },
            ]);
        }
        println!("{t}");
    }
    medians
}

fn goals(a: &Args, medians: &Medians) {
    println!("Goals (issue 15), ringleader's medians:");
    for s in [Server::Ringleader, Server::RingleaderClassic] {
        for row in rows(&a.workloads) {
            if row == "git-status-1st" {
                continue;
            }
            let (Some(r), Some(b)) = (medians.get(&(row, s)), medians.get(&(row, Server::Bindfs)))
            else {
                continue;
            };
            let want = if row == "rand-read-4k-j2" { 1.5 } else { 1.3 };
            let got = r.0 / b.0;
            let mut line = format!(
                "  {:<18} {:<16} {} bindfs (goal >= {want:.1}x): {}",
                s.name(),
                row,
                ratio(got),
                if got >= want { "met" } else { "NOT met" }
            );
            if row == "seq-read-1m"
                && let Some(n) = medians.get(&(row, Server::NoFuse))
            {
                let got = r.0 / n.0;
                line += &format!(
                    "; {} nofuse (goal >= 0.5x): {}",
                    ratio(got),
                    if got >= 0.5 { "met" } else { "NOT met" }
                );
            }
            println!("{line}");
        }
    }
}

fn run(a: &Args, base: &Path) -> Result<(), String> {
    let source = base.join("src");
    let mount = base.join("mnt");
    for d in [&source, &mount] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let tar = base.join("tree.tar");
    let fio_rows = a.workloads.iter().any(|w| *w != Workload::Metadata);
    if fio_rows {
        workload::make_data(&source)?;
    }
    if a.workloads.contains(&Workload::Metadata) {
        workload::make_tree(&base.join("tree-build"), &tar)?;
    }
    let cpus = pin::allowed_cpus().map_err(|e| format!("sched_getaffinity: {e}"))?;
    let (server_cpu, client_cpu) = match (a.pin, cpus.as_slice()) {
        (true, [s, c, ..]) => (Some(*s), Some(*c)),
        (true, _) => return Err("pinning needs two allowed CPUs (or --no-pin)".into()),
        (false, _) => (None, None),
    };
    if let Some(c) = client_cpu {
        pin::pin_to_cpu(c).map_err(|e| format!("pinning the bench: {e}"))?;
    }
    let launch = Launch {
        ringleader_bin: a.ringleader_bin.clone(),
        fuser_bin: a.fuser_bin.clone(),
        cpu: server_cpu,
    };
    println!(
        "servers on CPU {}, clients on CPU {}; fio {} s + {} s ramp per run, {} runs",
        server_cpu.map_or("any".into(), |c| c.to_string()),
        client_cpu.map_or("any".into(), |c| c.to_string()),
        a.runtime.as_secs_f64(),
        a.ramp.as_secs_f64(),
        a.runs
    );
    let mut results: HashMap<(&'static str, Server), Vec<Measure>> = HashMap::new();
    'runs: for r in 0..a.runs {
        for &w in &a.workloads {
            for i in 0..a.servers.len() {
                if STOP.load(Ordering::Relaxed) {
                    break 'runs;
                }
                let s = a.servers[(i + r) % a.servers.len()];
                if w == Workload::Metadata {
                    let tree = source.join("tree");
                    if tree.exists() {
                        std::fs::remove_dir_all(&tree)
                            .map_err(|e| format!("{}: {e}", tree.display()))?;
                    }
                }
                let out = fuse::start(s, &launch, &source, &mount).and_then(|mut srv| {
                    let m = match w {
                        Workload::Metadata => {
                            workload::run_metadata(&tar, srv.dir(), client_cpu, srv.pid())
                        }
                        _ => workload::run_fio(
                            w,
                            srv.dir(),
                            a.runtime,
                            a.ramp,
                            client_cpu,
                            srv.pid(),
                            &cpus,
                        )
                        .map(|m| vec![m]),
                    };
                    srv.check_running()?;
                    m
                });
                match out {
                    Ok(ms) => {
                        for m in ms {
                            eprintln!(
                                "run {} {:<18} {:<16} {:>10.1} ops/s {:>8.1} us/op",
                                r + 1,
                                s.name(),
                                m.row,
                                m.ops / m.secs,
                                m.server_cpu * 1e6 / m.ops
                            );
                            results.entry((m.row, s)).or_default().push(m);
                        }
                    }
                    Err(e) => eprintln!("run {} {} {}: {e}", r + 1, s.name(), w.name()),
                }
            }
        }
    }
    let medians = report(a, &results);
    goals(a, &medians);
    Ok(())
}

fn main() -> ExitCode {
    let a = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("fuse: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    for (tool, needed) in [
        ("fio", true),
        ("bindfs", a.servers.contains(&Server::Bindfs)),
        ("git", a.workloads.contains(&Workload::Metadata)),
    ] {
        if needed && !fuse::have(tool) {
            eprintln!("fuse: {tool} is not on PATH (apt-get install -y {tool})");
            return ExitCode::FAILURE;
        }
    }
    // SAFETY: the handler only stores to an atomic (async-signal-safe).
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    // The io_uring transport turns the fuse module's global switch on and leaves it so:
    // the bench puts back what it found.
    let uring_before = std::fs::read_to_string(ENABLE_URING).ok();
    let base = a.tmp.join(format!("fusebench-{}", std::process::id()));
    let result = run(&a, &base);
    fuse::unmount(&base.join("mnt"));
    let _ = std::fs::remove_dir_all(&base);
    if let Some(v) = uring_before {
        let _ = std::fs::write(ENABLE_URING, v.trim());
    }
    match result {
        Ok(()) if !STOP.load(Ordering::Relaxed) => ExitCode::SUCCESS,
        Ok(()) => ExitCode::from(130),
        Err(e) => {
            eprintln!("fuse: {e}");
            ExitCode::FAILURE
        }
    }
}
