//! `soak`: ringleader's NBD server and proxy under ten minutes of mixed, idle, slow, rude and
//! bursty clients; prints RSS, fds, threads and probe latency of each server every 10 s, and
//! fails on wrong data, a failed client, a dead or hung server, or growth.
//! See `bench/README.md` and the module docs of `src/soak/`.

#[path = "../soak/mod.rs"]
mod soak;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use soak::layout::{MAX_FIO, MAX_QEMU_IO};
use soak::net_load::{self, Burst, CycleSample};
use soak::procs::{self, Usage, describe};
use soak::report::{Track, loadavg, print_window, summary};
use soak::servers::Servers;
use soak::verdict::{QUIET_FDS, QUIET_THREADS};
use soak::{Board, Settings, Who, nbd_load, upstream};

const USAGE: &str = "\
usage: soak [--duration D] [--quick] [--fio N] [--qemu-io N] [--idle N] [--slowloris N]
            [--resetters N] [--bursts N,N..] [--burst-period D] [--proxy-mode MODE]
            [--upstream tokio|ringleader] [--nbd-args 'A ..'] [--proxy-args 'A ..']
            [--bin-dir DIR] [--keep-temp]

Starts examples/nbd_server and examples/proxy (relaying to an echo server) and loads them
at once for D: fio (nbd engine, --verify=crc32c) and qemu-io (write/read-back pattern
checks) loops, idle NBD connections, slowloris handshakes, clients that reset mid-request,
and a latency probe per server; bursts of short connections through the proxy.
Every 10 s prints each server's RSS, fds, threads and probe latency; at the end fails
(exit 1) on any verification error, failed client, dead or hung server, or growth of RSS,
fds or threads (last third of the run against the first; see bench/README.md).

  --duration D        how long the load runs: 600, 90s, 10m, 1h (default 10m)
  --quick             60 s, a burst cycle every 15 s (a smoke test; --duration and
                      --burst-period still win if given)
  --fio N             fio loops (default 1, at most 2)
  --qemu-io N         qemu-io loops (default 2, at most 4)
  --idle N            idle NBD connections held (default 64)
  --slowloris N       slowloris NBD clients (default 8)
  --resetters N       clients that reset mid-request, one connection per 200 ms (default 1)
  --bursts N,N..      proxy burst sizes per cycle (default 1,10,100,1000,10000)
  --burst-period D    one burst cycle starts this often (default 30s)
  --proxy-mode MODE   the proxy's --mode: lease, splice or copy (default lease)
  --upstream WHICH    the echo server behind the proxy: `tokio`, the bench's own (default;
                      not judged), or `ringleader`: examples/echo --cores 1 (judged too)
  --nbd-args 'A ..'   extra arguments for nbd_server (split at spaces), e.g. '--cores 1'
  --proxy-args 'A ..' extra arguments for the proxy, e.g. '--ring-memory 64M'
  --bin-dir DIR       where nbd_server, proxy and echo are (default ../target/release/
                      examples; build with `cargo build --release --all-features
                      --examples` at the repository root)
  --keep-temp         keep the temporary directory (image, tool logs, server output)
  -h, --help          this text

Needs fio (with its nbd engine) and qemu-io: apt-get install -y fio qemu-utils.

Internal: `soak --serve-echo ADDR` runs the tokio upstream (how the soak starts it).";

/// Set by SIGINT/SIGTERM: stop the load, clean up, exit 130.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// The nbd_server's handshake timeout, passed explicitly so the slowloris clients know it.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the soak prints.
const PERIOD: Duration = Duration::from_secs(10);

/// "600", "90s", "500ms", "10m", "1h".
fn duration(flag: &str, v: Option<String>) -> Result<Duration, String> {
    let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
    let (num, unit) = match v.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => v.split_at(i),
        None => (v.as_str(), "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{flag}: cannot parse {v:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{flag}: unknown unit in {v:?}")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{flag}: {e}"))
}

enum Mode {
    Help,
    Soak(Settings),
    ServeEcho(SocketAddr),
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Mode, String> {
    let mut a = Settings {
        duration: Duration::from_secs(600),
        fio: 1,
        qemu_io: 2,
        idle: 64,
        slowloris: 8,
        resetters: 1,
        bursts: vec![1, 10, 100, 1000, 10_000],
        burst_period: Duration::from_secs(30),
        proxy_mode: "lease".into(),
        ringleader_upstream: false,
        nbd_args: Vec::new(),
        proxy_args: Vec::new(),
        bin_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/examples"),
        keep_temp: false,
    };
    let (mut quick, mut dur, mut period) = (false, None, None);
    fn number(flag: &str, v: Option<String>, max: usize) -> Result<usize, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        match v.parse() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(format!("{flag}: want a number up to {max}, got {v:?}")),
        }
    }
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Mode::Help),
            "--serve-echo" => {
                let v = it.next().ok_or("--serve-echo needs an address")?;
                let addr = v
                    .parse()
                    .map_err(|_| format!("--serve-echo: bad address {v:?}"))?;
                return Ok(Mode::ServeEcho(addr));
            }
            "--quick" => quick = true,
            "--duration" => dur = Some(duration("--duration", it.next())?),
            "--fio" => a.fio = number("--fio", it.next(), MAX_FIO)?,
            "--qemu-io" => a.qemu_io = number("--qemu-io", it.next(), MAX_QEMU_IO)?,
            "--idle" => a.idle = number("--idle", it.next(), 900)?,
            "--slowloris" => a.slowloris = number("--slowloris", it.next(), 64)?,
            "--resetters" => a.resetters = number("--resetters", it.next(), 8)?,
            "--bursts" => {
                let v = it.next().ok_or("--bursts needs a value")?;
                a.bursts = v
                    .split(',')
                    .map(|s| s.trim().parse().ok().filter(|&n| n > 0 && n <= 30_000))
                    .collect::<Option<Vec<usize>>>()
                    .ok_or_else(|| format!("--bursts: cannot parse {v:?} (1 to 30000 each)"))?;
            }
            "--burst-period" => period = Some(duration("--burst-period", it.next())?),
            "--proxy-mode" => a.proxy_mode = it.next().ok_or("--proxy-mode needs a value")?,
            "--upstream" => {
                a.ringleader_upstream = match it.next().as_deref() {
                    Some("tokio") => false,
                    Some("ringleader") => true,
                    v => return Err(format!("--upstream: want tokio or ringleader, got {v:?}")),
                }
            }
            "--nbd-args" => {
                let v = it.next().ok_or("--nbd-args needs a value")?;
                a.nbd_args = v.split_whitespace().map(String::from).collect();
            }
            "--proxy-args" => {
                let v = it.next().ok_or("--proxy-args needs a value")?;
                a.proxy_args = v.split_whitespace().map(String::from).collect();
            }
            "--bin-dir" => a.bin_dir = it.next().ok_or("--bin-dir needs a value")?.into(),
            "--keep-temp" => a.keep_temp = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    // --quick: 60 s with a cycle every 15 s, so the growth check has its 3 cycle samples.
    a.duration = dur.unwrap_or(if quick {
        Duration::from_secs(60)
    } else {
        a.duration
    });
    a.burst_period = period.unwrap_or(if quick {
        Duration::from_secs(15)
    } else {
        a.burst_period
    });
    Ok(Mode::Soak(a))
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Mode::Soak(a)) => a,
        Ok(Mode::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Mode::ServeEcho(addr)) => {
            if let Err(e) = upstream::serve(addr) {
                eprintln!("soak --serve-echo: {e}");
            }
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("soak: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let dir = std::env::temp_dir().join(format!("ringleader-soak-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("soak: creating {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let code = match run(&args, &dir) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::FAILURE
        }
    };
    if args.keep_temp {
        println!("kept {}", dir.display());
    } else if let Err(e) = std::fs::remove_dir_all(&dir) {
        eprintln!("soak: removing {}: {e}", dir.display());
    }
    if INTERRUPTED.load(Ordering::Relaxed) {
        return ExitCode::from(130);
    }
    code
}

fn tool_present(name: &str, arg: &str) -> Result<(), String> {
    match Command::new(name).arg(arg).output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err(format!(
            "`{name} {arg}` failed: install it (apt-get install -y fio qemu-utils)"
        )),
    }
}

fn run(args: &Settings, dir: &Path) -> Result<bool, String> {
    tool_present("fio", "--version")?;
    tool_present("qemu-io", "--version")?;
    let nofile = procs::raise_nofile(65_536).map_err(|e| format!("RLIMIT_NOFILE: {e}"))?;
    // SAFETY: `on_signal` only stores to an atomic, which is async-signal-safe; the handler
    // stays valid for the life of the process.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    println!(
        "soak: {} s of load, {} CPUs, load average {}, RLIMIT_NOFILE {nofile}, temp {}",
        args.duration.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg(),
        dir.display()
    );
    // The proxy holds two fds per relayed connection (client and upstream).
    let biggest = args.bursts.iter().copied().max().unwrap_or(0) as u64;
    if nofile < 2 * biggest + 64 {
        println!(
            "  note: RLIMIT_NOFILE {nofile} (the servers inherit it) is below the {} fds a proxy \
             relaying a burst of {biggest} needs: expect connections refused or reset when it \
             runs out",
            2 * biggest + 64
        );
    }
    let mut servers = Servers::start(args, dir)?;
    for who in Who::ALL {
        let s = servers.get(who);
        println!("  {:<10} pid {:<7} {}", s.name(), s.pid(), s.command());
    }
    nbd_load::prefill(servers.nbd.addr()).map_err(|e| format!("writing the probe region: {e}"))?;
    std::thread::sleep(Duration::from_secs(1));
    let mut tracks: Vec<Track> = Vec::new();
    for who in Who::ALL {
        let before = procs::usage(servers.get(who).pid()).map_err(|e| e.to_string())?;
        tracks.push(Track {
            before,
            ..Track::default()
        });
    }
    println!(
        "  idle before load: {}",
        Who::ALL
            .iter()
            .zip(&tracks)
            .map(|(w, t)| format!(
                "{} fds {} threads {}",
                w.name(),
                t.before.fds,
                t.before.threads
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  load: {} fio, {} qemu-io, {} idle, {} slowloris, {} resetters, NBD probe; proxy \
         bursts {:?} every {} s, proxy and upstream probes",
        args.fio,
        args.qemu_io,
        args.idle,
        args.slowloris,
        args.resetters,
        args.bursts,
        args.burst_period.as_secs()
    );

    let board = Arc::new(Board::new());
    let cycles = Arc::new(Mutex::new(Vec::<CycleSample>::new()));
    let burst_log = Arc::new(Mutex::new(Vec::<Burst>::new()));
    let threads = spawn_load(args, dir, &servers, &board, &tracks, &cycles, &burst_log);

    // Monitor until the duration passes, a server dies or we are interrupted.
    let t0 = Instant::now();
    let mut next_print = PERIOD;
    let mut dead = Vec::new();
    while t0.elapsed() < args.duration && dead.is_empty() {
        std::thread::sleep(Duration::from_millis(200));
        if INTERRUPTED.load(Ordering::Relaxed) {
            println!("soak: interrupted; stopping");
            break;
        }
        for who in Who::ALL {
            let s = servers.get(who);
            if let Some(status) = s.exited() {
                let msg = format!(
                    "exited during the soak ({}); stderr: {}",
                    describe(status),
                    s.stderr_tail(5)
                );
                board.problem(who, soak::Kind::Error, msg);
                dead.push(who);
            }
        }
        if t0.elapsed() >= next_print {
            next_print += PERIOD;
            print_window(&board, &mut servers, &mut tracks, t0.elapsed());
        }
    }
    let ran = t0.elapsed();
    board.stop();
    println!(
        "[{:>5.0}s] stopping the load",
        board.elapsed().as_secs_f64()
    );
    for t in threads {
        let _ = t.join();
    }

    // Quiet: fds and threads back where they were before the load?
    let mut quiet = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    for (i, who) in Who::ALL.into_iter().enumerate() {
        let before = tracks[i].before;
        let mut now = Usage::default();
        loop {
            if let Ok(u) = procs::usage(servers.get(who).pid()) {
                now = u;
            }
            let settled =
                now.fds <= before.fds + QUIET_FDS && now.threads <= before.threads + QUIET_THREADS;
            if settled || Instant::now() > deadline || dead.contains(&who) {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        quiet.push(now);
    }

    Ok(summary(
        args,
        &board,
        &mut servers,
        &tracks,
        &quiet,
        &cycles,
        &burst_log,
        ran,
        INTERRUPTED.load(Ordering::Relaxed),
    ))
}

fn spawn_load(
    args: &Settings,
    dir: &Path,
    servers: &Servers,
    board: &Arc<Board>,
    tracks: &[Track],
    cycles: &Arc<Mutex<Vec<CycleSample>>>,
    burst_log: &Arc<Mutex<Vec<Burst>>>,
) -> Vec<JoinHandle<()>> {
    let ctx = nbd_load::Ctx {
        addr: servers.nbd.addr(),
        dir: dir.to_owned(),
        board: board.clone(),
        handshake_timeout: HANDSHAKE_TIMEOUT,
    };
    let mut threads = Vec::new();
    let mut go = |name: String, f: Box<dyn FnOnce() + Send>| {
        threads.push(
            std::thread::Builder::new()
                .name(name)
                .spawn(f)
                .expect("spawning a load thread"),
        );
    };
    for k in 0..args.fio {
        let c = ctx.clone();
        go(format!("fio-{k}"), Box::new(move || nbd_load::fio(c, k)));
    }
    for k in 0..args.qemu_io {
        let c = ctx.clone();
        go(
            format!("qemu-io-{k}"),
            Box::new(move || nbd_load::qemu_io(c, k)),
        );
    }
    let (c, n) = (ctx.clone(), args.idle);
    go("idle".into(), Box::new(move || nbd_load::idle_pool(c, n)));
    for k in 0..args.slowloris {
        let c = ctx.clone();
        go(
            format!("slowloris-{k}"),
            Box::new(move || nbd_load::slowloris(c, k)),
        );
    }
    for k in 0..args.resetters {
        let c = ctx.clone();
        go(
            format!("reset-{k}"),
            Box::new(move || nbd_load::resetter(c, k)),
        );
    }
    let (c, lat) = (ctx.clone(), tracks[0].probe.clone());
    go(
        "nbd-probe".into(),
        Box::new(move || nbd_load::probe(c, lat)),
    );
    let proxy: SocketAddr = servers.proxy.addr();
    let upstream: SocketAddr = servers.upstream.addr();
    for (who, addr, lat) in [
        (Who::Proxy, proxy, tracks[1].probe.clone()),
        (Who::Upstream, upstream, tracks[2].probe.clone()),
    ] {
        let b = board.clone();
        go(
            format!("{}-probe", who.name()),
            Box::new(move || net_load::echo_probe(b, who, addr, lat)),
        );
    }
    let plan = net_load::Plan {
        addr: proxy,
        sizes: args.bursts.clone(),
        period: args.burst_period,
        pids: (servers.proxy.pid(), servers.upstream.pid()),
        // Its fds before the load, plus its probe's two connections, plus a little.
        quiet_fds: tracks[1].before.fds + 2 + QUIET_FDS,
    };
    let (b, cy, log) = (board.clone(), cycles.clone(), burst_log.clone());
    go(
        "bursts".into(),
        Box::new(move || net_load::bursts(b, plan, cy, log)),
    );
    threads
}
