//! `nbd`: ringleader's `examples/nbd_server` against `qemu-nbd --aio=io_uring`,
//! `qemu-nbd --aio=threads` and `nbdkit file`, driven by `qemu-img bench`, in one run.
//!
//! All servers export the same raw image, read once beforehand so it sits in the page cache.
//! For every workload and run, each server is started fresh, one `qemu-img bench` runs
//! against it, and the server is killed by PID; servers are interleaved within a run so a
//! noisy host's drift spreads over all of them. By default nothing is pinned (as when the
//! issue's peer numbers were taken; ringleader pins its own core threads); `--pin` puts every
//! server on one CPU and the client on another. ringleader runs twice: as it ships (inline
//! `pwrite` for small writes where the file system has no non-blocking buffered write, see
//! `examples/nbd_server/export.rs`) and with `--ring-writes` (every write through io_uring);
//! `ringleader-batch-reads` runs it with `--read-path batch` (READ replies through the
//! connection's batching writer instead of a group per READ). A cell is the median IOPS of the runs with `[min .. max]`; ratios are ratios of
//! medians; "µs CPU/IO" is the server process's utime+stime (all threads, `/proc/PID/stat`)
//! over the run divided by the I/O count, median of the runs.
//!
//! `qemu-img bench` issues its requests at a fixed stride (`-S`); the "scattered" 4 KiB rows
//! use a stride of 7919 blocks (odd, so every 4 KiB block of the 1 GiB image is visited
//! before any repeats, in a non-sequential order), the sequential row the default stride.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use ringleader_bench::pin::allowed_cpus;
use ringleader_bench::table::{Table, ratio};

const USAGE: &str = "\
usage: nbd [--runs R] [--quick] [--image PATH] [--servers NAME,..] [--workloads NAME,..]
           [--pin] [--server-cpu N] [--client-cpu N] [--quiet-wait S]
           [--ringleader-bin PATH] [--ringleader-args \"ARGS\"]

qemu-img bench against NBD servers on the same 1 GiB image in the page cache: ringleader's
examples/nbd_server, qemu-nbd --aio=io_uring, qemu-nbd --aio=threads, nbdkit file.
Prints IOPS (median [min .. max]) per server and workload, ringleader's ratio to each peer,
and each server's CPU time per I/O.

  --runs R              measured runs per cell, each with a fresh server (default 3)
  --quick               1 run with a tenth of the I/O counts (smoke test)
  --image PATH          the image (default: target/nbd-bench.img, 1 GiB of pseudo-random
                        data, created if missing)
  --servers NAME,..     subset of: ringleader,ringleader-ring-writes,ringleader-batch-reads,
                        qemu-nbd-io_uring,qemu-nbd-threads,nbdkit
  --workloads NAME,..   subset of: rand-read-qd1,rand-write-qd1,rand-read-qd32,
                        rand-write-qd32,seq-read-64k
  --pin                 pin every server to one CPU and qemu-img bench to another (ringleader
                        then runs with --cores 1)
  --server-cpu N        with --pin: the servers' CPU (default: the first allowed CPU)
  --client-cpu N        with --pin: qemu-img bench's CPU (default: the second allowed CPU)
  --quiet-wait S        before each cell, wait up to S seconds for the CPUs to be idle
                        (default 10; 0: do not wait)
  --ringleader-bin PATH ringleader's server (default: ../target/release/examples/nbd_server,
                        built with `cargo build --release --example nbd_server` first)
  --ringleader-args A   extra arguments for ringleader's server (e.g. \"--direct\")
  -h, --help            this text";

const IMAGE_SIZE: u64 = 1 << 30;
/// Stride of the scattered 4 KiB rows, in bytes: 7919 (prime) blocks of 4 KiB.
const SCATTER: u64 = 7919 * 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Server {
    Ringleader,
    RingleaderRingWrites,
    RingleaderBatchReads,
    QemuNbdUring,
    QemuNbdThreads,
    Nbdkit,
}

impl Server {
    const ALL: [Server; 6] = [
        Server::Ringleader,
        Server::RingleaderRingWrites,
        Server::RingleaderBatchReads,
        Server::QemuNbdUring,
        Server::QemuNbdThreads,
        Server::Nbdkit,
    ];

    fn name(self) -> &'static str {
        match self {
            Server::Ringleader => "ringleader",
            Server::RingleaderRingWrites => "ringleader-ring-writes",
            Server::RingleaderBatchReads => "ringleader-batch-reads",
            Server::QemuNbdUring => "qemu-nbd-io_uring",
            Server::QemuNbdThreads => "qemu-nbd-threads",
            Server::Nbdkit => "nbdkit",
        }
    }

    fn is_ringleader(self) -> bool {
        matches!(
            self,
            Server::Ringleader | Server::RingleaderRingWrites | Server::RingleaderBatchReads
        )
    }

    fn tool(self) -> &'static str {
        match self {
            Server::Ringleader | Server::RingleaderRingWrites | Server::RingleaderBatchReads => "",
            Server::QemuNbdUring | Server::QemuNbdThreads => "qemu-nbd",
            Server::Nbdkit => "nbdkit",
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Workload {
    name: &'static str,
    write: bool,
    depth: u32,
    size: u64,
    step: u64,
    count: u64,
}

const WORKLOADS: [Workload; 5] = [
    Workload {
        name: "rand-read-qd1",
        write: false,
        depth: 1,
        size: 4096,
        step: SCATTER,
        count: 40_000,
    },
    Workload {
        name: "rand-write-qd1",
        write: true,
        depth: 1,
        size: 4096,
        step: SCATTER,
        count: 40_000,
    },
    Workload {
        name: "rand-read-qd32",
        write: false,
        depth: 32,
        size: 4096,
        step: SCATTER,
        count: 200_000,
    },
    Workload {
        name: "rand-write-qd32",
        write: true,
        depth: 32,
        size: 4096,
        step: SCATTER,
        count: 200_000,
    },
    Workload {
        name: "seq-read-64k",
        write: false,
        depth: 32,
        size: 65536,
        step: 65536,
        count: 50_000,
    },
];

struct Args {
    runs: usize,
    count_div: u64,
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

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut a = Args {
        runs: 3,
        count_div: 1,
        image: None,
        servers: Server::ALL.to_vec(),
        workloads: WORKLOADS.to_vec(),
        pin: false,
        server_cpu: None,
        client_cpu: None,
        quiet_wait: Duration::from_secs(10),
        ringleader_bin: None,
        ringleader_args: Vec::new(),
    };
    let value = |flag: &str, v: Option<String>| v.ok_or_else(|| format!("{flag} needs a value"));
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--quick" => {
                a.runs = 1;
                a.count_div = 10;
            }
            "--runs" => {
                let v = value("--runs", it.next())?;
                a.runs = v
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or("--runs: a number > 0")?;
            }
            "--image" => a.image = Some(value("--image", it.next())?.into()),
            "--servers" => {
                let v = value("--servers", it.next())?;
                a.servers = pick(&v, &Server::ALL, |s| s.name())?;
            }
            "--workloads" => {
                let v = value("--workloads", it.next())?;
                a.workloads = pick(&v, &WORKLOADS, |w| w.name)?;
            }
            "--pin" => a.pin = true,
            "--server-cpu" => a.server_cpu = Some(number("--server-cpu", it.next())?),
            "--client-cpu" => a.client_cpu = Some(number("--client-cpu", it.next())?),
            "--quiet-wait" => {
                a.quiet_wait = Duration::from_secs(number("--quiet-wait", it.next())?);
            }
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
    Ok(Some(a))
}

fn number<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
    let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
    v.parse().map_err(|_| format!("{flag}: cannot parse {v:?}"))
}

fn pick<T: Copy>(list: &str, all: &[T], name: impl Fn(&T) -> &str) -> Result<Vec<T>, String> {
    list.split(',')
        .map(|n| {
            all.iter()
                .find(|x| name(x) == n.trim())
                .copied()
                .ok_or_else(|| format!("unknown name {n:?}"))
        })
        .collect()
}

fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// A server process, killed by PID on drop.
struct Running {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Restrict a child to `cpu`, if any, before it runs (threads it starts inherit the mask).
fn pinned(cmd: &mut Command, cpu: Option<usize>) -> &mut Command {
    if let Some(cpu) = cpu {
        ringleader_bench::pin::pin_child(cmd, cpu).expect("CPUs come from allowed_cpus");
    }
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start(
    server: Server,
    args: &Args,
    bin: &Path,
    image: &Path,
    cpu: Option<usize>,
) -> Result<Running, String> {
    let img = image.to_str().ok_or("image path is not UTF-8")?;
    if server.is_ringleader() {
        let mut cmd = Command::new(bin);
        cmd.args(["--listen", "127.0.0.1:0", "--image", img])
            .args(&args.ringleader_args)
            .stdout(Stdio::piped());
        if cpu.is_some() {
            cmd.args(["--cores", "1"]);
        }
        if server == Server::RingleaderRingWrites {
            cmd.arg("--ring-writes");
        }
        if server == Server::RingleaderBatchReads {
            cmd.args(["--read-path", "batch"]);
        }
        let mut child = pinned(&mut cmd, cpu)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("nbd_server said {line:?}"))?;
        return Ok(Running { child, addr });
    }
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let p = port.to_string();
    let mut cmd = match server {
        Server::QemuNbdUring | Server::QemuNbdThreads => {
            let aio = if server == Server::QemuNbdUring {
                "--aio=io_uring"
            } else {
                "--aio=threads"
            };
            let mut c = Command::new("qemu-nbd");
            c.args([
                "-f",
                "raw",
                "-b",
                "127.0.0.1",
                "-p",
                &p,
                "-t",
                "-e",
                "8",
                "--cache=writeback",
            ])
            .arg(aio)
            .arg(img);
            c
        }
        _ => {
            let mut c = Command::new("nbdkit");
            c.args(["-f", "-i", "127.0.0.1", "-p", &p, "file", img]);
            c
        }
    };
    let child = pinned(cmd.stdout(Stdio::null()).stderr(Stdio::null()), cpu)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", server.tool()))?;
    let running = Running { child, addr };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            return Err(format!("{} did not listen on {addr}", server.name()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(running)
}

/// utime + stime of process `pid` (all threads), in ticks.
fn proc_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Busy share (percent) of all CPUs over 200 ms, from `/proc/stat`.
fn busy_percent() -> f64 {
    let sample = || -> (u64, u64) {
        let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let line = s.lines().next().unwrap_or("");
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() < 8 {
            return (0, 1);
        }
        (v[0] + v[1] + v[2] + v[5] + v[6] + v[7], v.iter().sum())
    };
    let (b0, t0) = sample();
    std::thread::sleep(Duration::from_millis(200));
    let (b1, t1) = sample();
    100.0 * (b1 - b0) as f64 / (t1 - t0).max(1) as f64
}

fn wait_quiet(limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if busy_percent() <= 10.0 {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
    }
}

/// One measured run: (IOPS, server µs CPU per I/O).
fn measure(
    w: &Workload,
    count: u64,
    running: &Running,
    cpu: Option<usize>,
) -> Result<(f64, f64), String> {
    let uri = format!("nbd://{}", running.addr);
    let mut cmd = Command::new("qemu-img");
    cmd.args([
        "bench",
        "-f",
        "raw",
        "-c",
        &count.to_string(),
        "-d",
        &w.depth.to_string(),
    ])
    .args(["-s", &w.size.to_string(), "-S", &w.step.to_string()]);
    if w.write {
        cmd.arg("-w");
    }
    cmd.arg(&uri).stdout(Stdio::piped()).stderr(Stdio::piped());
    let before = proc_ticks(running.child.id());
    let t = Instant::now();
    let mut child = pinned(&mut cmd, cpu)
        .spawn()
        .map_err(|e| format!("qemu-img: {e}"))?;
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut out)
        .map_err(|e| e.to_string())?;
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("piped")
        .read_to_string(&mut err)
        .map_err(|e| e.to_string())?;
    let status = child.wait().map_err(|e| e.to_string())?;
    let wall = t.elapsed().as_secs_f64();
    let after = proc_ticks(running.child.id());
    if !status.success() {
        return Err(format!("qemu-img bench failed: {out}{err}"));
    }
    // qemu-img's own timing of the I/O phase, without its start-up.
    let secs = out
        .lines()
        .find_map(|l| l.strip_prefix("Run completed in "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(wall);
    let cpu_us = (after - before) as f64 / ticks_per_sec() * 1e6 / count as f64;
    Ok((count as f64 / secs, cpu_us))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn make_image(path: &Path) -> Result<(), String> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == IMAGE_SIZE) {
        return Ok(());
    }
    eprintln!("nbd: writing a 1 GiB image at {}", path.display());
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut chunk = vec![0u8; 1 << 20];
    let mut f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for _ in 0..(IMAGE_SIZE >> 20) {
        for c in chunk.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c.copy_from_slice(&x.to_le_bytes());
        }
        std::io::Write::write_all(&mut f, &chunk).map_err(|e| e.to_string())?;
    }
    f.sync_all().map_err(|e| e.to_string())
}

/// Read the whole image so it sits in the page cache.
fn warm(path: &Path) -> Result<(), String> {
    let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 1 << 20];
    while f.read(&mut buf).map_err(|e| e.to_string())? > 0 {}
    Ok(())
}

fn build_ringleader() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent");
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    eprintln!("nbd: building ringleader's examples/nbd_server (release) in {root:?}");
    let status = Command::new(cargo)
        .args(["build", "--release", "--example", "nbd_server"])
        .current_dir(root)
        .status()
        .map_err(|e| format!("running {cargo} build: {e}"))?;
    if !status.success() {
        return Err(format!("building examples/nbd_server failed: {status}"));
    }
    Ok(root.join("target/release/examples/nbd_server"))
}

fn run(args: &Args) -> Result<(), String> {
    if !have("qemu-img") {
        return Err("qemu-img is not installed (apt-get install qemu-utils)".into());
    }
    let servers: Vec<Server> = args
        .servers
        .iter()
        .copied()
        .filter(|s| {
            let ok = s.tool().is_empty() || have(s.tool());
            if !ok {
                eprintln!(
                    "nbd: skipping {}: `{}` is not installed",
                    s.name(),
                    s.tool()
                );
            }
            ok
        })
        .collect();
    let bin = match &args.ringleader_bin {
        Some(b) => b.clone(),
        None => build_ringleader()?,
    };
    let image = args
        .image
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/nbd-bench.img"));
    make_image(&image)?;
    warm(&image)?;
    let cpus = allowed_cpus().map_err(|e| e.to_string())?;
    let (server_cpu, client_cpu) = if args.pin {
        let s = args.server_cpu.unwrap_or(cpus[0]);
        let c = args.client_cpu.unwrap_or(*cpus.get(1).unwrap_or(&cpus[0]));
        (Some(s), Some(c))
    } else {
        (None, None)
    };
    let placement = match (server_cpu, client_cpu) {
        (Some(s), Some(c)) => format!("servers on CPU {s}, qemu-img bench on CPU {c}"),
        _ => format!("nothing pinned, {} CPUs", cpus.len()),
    };
    println!(
        "nbd: image {} (1 GiB, page cache), {placement}, {} run(s) per cell",
        image.display(),
        args.runs
    );
    // results[workload][server] = (iops runs, cpu runs)
    let mut results = vec![vec![(Vec::new(), Vec::new()); servers.len()]; args.workloads.len()];
    for run in 0..args.runs {
        for (wi, w) in args.workloads.iter().enumerate() {
            for (si, &s) in servers.iter().enumerate() {
                if !args.quiet_wait.is_zero() && !wait_quiet(args.quiet_wait) {
                    eprintln!("nbd: the CPUs are busy; measuring anyway");
                }
                let count = (w.count / args.count_div).max(1000);
                let running = start(s, args, &bin, &image, server_cpu)?;
                let (iops, cpu) = measure(w, count, &running, client_cpu)?;
                drop(running);
                eprintln!(
                    "nbd: run {} {} {}: {iops:.0} IOPS, {cpu:.2} µs CPU/IO",
                    run + 1,
                    w.name,
                    s.name()
                );
                results[wi][si].0.push(iops);
                results[wi][si].1.push(cpu);
            }
        }
    }
    print_tables(args, &servers, &mut results);
    Ok(())
}

type Cells = Vec<Vec<(Vec<f64>, Vec<f64>)>>;

fn print_tables(args: &Args, servers: &[Server], results: &mut Cells) {
    let mut head = vec!["workload (IOPS)".to_owned()];
    head.extend(servers.iter().map(|s| s.name().to_owned()));
    let rl = servers.iter().position(|&s| s == Server::Ringleader);
    let peer = |s: Server| !s.is_ringleader();
    if rl.is_some() {
        head.extend(
            servers
                .iter()
                .filter(|&&s| peer(s))
                .map(|s| format!("rl/{}", s.name())),
        );
    }
    let mut t = Table::new(head);
    let mut cpu_head = vec!["workload (µs CPU/IO)".to_owned()];
    cpu_head.extend(servers.iter().map(|s| s.name().to_owned()));
    let mut c = Table::new(cpu_head);
    for (wi, w) in args.workloads.iter().enumerate() {
        let mut row = vec![w.name.to_owned()];
        let mut meds = Vec::new();
        let mut cpu_row = vec![w.name.to_owned()];
        for cell in results[wi].iter_mut() {
            let lo = cell.0.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = cell.0.iter().copied().fold(0.0, f64::max);
            let m = median(&mut cell.0);
            meds.push(m);
            row.push(format!(
                "{:.1}k [{:.1}k .. {:.1}k]",
                m / 1e3,
                lo / 1e3,
                hi / 1e3
            ));
            cpu_row.push(format!("{:.2}", median(&mut cell.1)));
        }
        if let Some(r) = rl {
            for (si, &m) in meds.iter().enumerate() {
                if peer(servers[si]) {
                    row.push(ratio(meds[r] / m));
                }
            }
        }
        t.row(row);
        c.row(cpu_row);
    }
    println!("\n{t}\n{c}");
    println!(
        "Goal (issue 6): rl/nbdkit >= 1.30x and rl/qemu-nbd-* >= 2.00x on rand-read-qd32 and \
         rand-write-qd32, with less server CPU per I/O than either."
    );
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
