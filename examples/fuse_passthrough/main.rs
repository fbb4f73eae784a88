//! `fuse_passthrough`: a FUSE file system that mirrors a directory (`--source`) at a mount
//! point (`--mount`), served by ringleader — one ring per core.
//!
//! Run as root: `cargo run --release --example fuse_passthrough -- --source DIR --mount DIR`.
//! The first stdout line, `fuse_passthrough: serving SOURCE at MOUNT (...)`, comes once the
//! mount is up and the stop signals are taken. Ctrl-C or SIGTERM unmounts and exits 0;
//! unmounting from outside (`umount MOUNT`) ends the server too.
//!
//! # Files
//!
//! - `abi.rs`: the FUSE kernel ABI (protocol 7.45, Linux 6.18);
//! - `fs.rs`, `fs/`: the file system, transport-independent (`Fs::dispatch`; `fs/mirror.rs`
//!   repeats each change in the `--mirror` directories);
//! - `classic.rs`: the /dev/fuse transport (read requests, write replies, as ring ops);
//! - `mount.rs`: mount(2), /dev/fuse clones, umount2(2).
//!
//! docs/fuse.md describes the server.

#[path = "../common/flags.rs"]
mod flags;

mod abi;
mod classic;
mod fs;
mod mount;
mod uring;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use ringleader::Runtime;
use ringleader::signal::unix::{SignalKind, signal};

const USAGE: &str = "\
fuse_passthrough: a FUSE passthrough file system on io_uring (ringleader)

USAGE: fuse_passthrough --source DIR --mount DIR [OPTIONS]

  --source DIR      the directory to serve
  --mount DIR       where to mount it (an empty directory)
  --cores N         cores: threads, rings and /dev/fuse fds [default: all CPUs]
  --readonly        mount read-only (changes fail with EROFS)
  --mirror DIR      make every change in DIR too (repeatable); DIR must already be a copy
                    of the source (e.g. `cp -a SRC/. DIR/`): see docs/fuse.md
  -h, --help        this text

Needs root (mount(2) and allow_other) and /dev/fuse. Ctrl-C or SIGTERM unmounts and exits;
so does `umount DIR` from outside. If the mount is busy at the stop, it is detached
(umount -l) and open files get ENOTCONN.";

#[derive(Debug)]
struct Args {
    source: PathBuf,
    mount: PathBuf,
    cores: usize,
    readonly: bool,
    mirrors: Vec<PathBuf>,
}

/// `Ok(None)`: help was asked for.
fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let (mut source, mut mount) = (None, None);
    let mut cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut readonly = false;
    let mut mirrors = Vec::new();
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--source" => source = Some(PathBuf::from(value("--source")?)),
            "--mount" => mount = Some(PathBuf::from(value("--mount")?)),
            "--cores" => {
                let v = value("--cores")?;
                cores = match v.parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(format!("--cores {v:?}: expected a number above 0")),
                };
            }
            "--readonly" => readonly = true,
            "--mirror" => mirrors.push(PathBuf::from(value("--mirror")?)),
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    let source = source.ok_or("--source DIR is required (try --help)")?;
    let mount = mount.ok_or("--mount DIR is required (try --help)")?;
    Ok(Some(Args {
        source,
        mount,
        cores,
        readonly,
        mirrors,
    }))
}

/// Why serving ended.
enum Stop {
    Signal,
    /// Every core's /dev/fuse reported the mount gone (or failed: the first error).
    Unmounted(Result<(), String>),
}

fn run(args: Args) -> Result<(), String> {
    // The kernel applies the caller's umask to a new file's mode before it asks the
    // server; the server's own must not apply a second time.
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0) };
    raise_fd_limit();
    block_stop_signals();
    // The transport: io_uring where the kernel allows it (uring.rs), else /dev/fuse.
    let uring = uring::availability();
    let on = uring.is_ok();
    let opts = fs::Options {
        readonly: args.readonly,
        extra_init_flags: if on { abi::init::OVER_IO_URING } else { 0 },
        mirrors: args.mirrors.clone(),
        ..fs::Options::default()
    };
    let fs = Arc::new(fs::Fs::new(&args.source, opts).map_err(|e| e.to_string())?);
    let rt = Runtime::builder()
        .cores(args.cores)
        .sqe128(on)
        .build()
        .map_err(|e| format!("starting {} cores: {e}", args.cores))?;
    let fuse = mount::mount(&args.source, &args.mount, args.readonly).map_err(|e| e.to_string())?;
    let mut fds = Vec::with_capacity(args.cores);
    for _ in 1..args.cores {
        match mount::clone_dev(&fuse) {
            Ok(fd) => fds.push(fd),
            Err(e) => {
                let _ = mount::unmount(&args.mount, libc::MNT_DETACH);
                return Err(e.to_string());
            }
        }
    }
    fds.insert(0, fuse);
    let init = Arc::new(uring::Init::new(uring::connection(&args.mount)));
    let cores = args.cores;
    let served: Vec<_> = fds
        .into_iter()
        .enumerate()
        .map(|(core, fd)| {
            let fs = Arc::clone(&fs);
            let init = Arc::clone(&init);
            rt.spawn_on(core, move || async move {
                if on {
                    uring::serve(fs, fd, core, cores, init).await
                } else {
                    classic::serve(fs, fd).await
                }
            })
        })
        .collect();
    let transport = match uring {
        Err(why) => format!("classic /dev/fuse: {why}"),
        Ok(()) => "io_uring, or /dev/fuse if the kernel declines it at INIT".to_owned(),
    };
    let banner = format!(
        "fuse_passthrough: serving {} at {} ({transport}, {} cores{})",
        args.source.display(),
        args.mount.display(),
        args.cores,
        if args.readonly { ", read-only" } else { "" }
    );
    let stop = rt.block_on(move || async move {
        let (mut int, mut term) = match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(i), Ok(t)) => (i, t),
            (Err(e), _) | (_, Err(e)) => return Stop::Unmounted(Err(format!("signals: {e}"))),
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{banner}");
        let _ = out.flush();
        drop(out);
        let all_served = async move {
            // In the order the cores end: the first error is the cause (a core that cannot
            // set up its queues aborts the connection, and the others end after it).
            let mut served: futures::stream::FuturesUnordered<_> = served.into_iter().collect();
            let mut result = Ok(());
            while let Some(r) = served.next().await {
                let e = match r {
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => format!("a core's server failed: {e}"),
                };
                if result.is_ok() {
                    result = Err(e);
                }
            }
            Stop::Unmounted(result)
        };
        futures::select! {
            _ = int.recv().fuse() => Stop::Signal,
            _ = term.recv().fuse() => Stop::Signal,
            s = Box::pin(all_served).fuse() => s,
        }
    });
    match stop {
        Stop::Unmounted(Ok(())) => {
            eprintln!(
                "fuse_passthrough: {} was unmounted; exiting",
                args.mount.display()
            );
            Ok(())
        }
        Stop::Unmounted(Err(e)) => {
            // /dev/fuse failed under a live mount: leave no dead mount point behind.
            let _ = mount::unmount(&args.mount, libc::MNT_DETACH);
            Err(e)
        }
        Stop::Signal => {
            // The cores keep serving while the kernel unmounts (it may still send requests).
            match mount::unmount(&args.mount, 0) {
                Ok(()) => eprintln!("fuse_passthrough: unmounted {}", args.mount.display()),
                Err(e) => {
                    eprintln!(
                        "fuse_passthrough: unmounting {}: {e}; detaching it instead (open files \
                         get ENOTCONN)",
                        args.mount.display()
                    );
                    let conn = uring::connection(&args.mount);
                    mount::unmount(&args.mount, libc::MNT_DETACH)
                        .map_err(|e| format!("detaching {}: {e}", args.mount.display()))?;
                    if on {
                        // The ring's commands keep the connection open past the close of
                        // /dev/fuse: end it here (uring.rs).
                        uring::abort(conn.as_deref());
                    }
                }
            }
            // Dropping the runtime closes the /dev/fuse fds, which ends the connection.
            drop(rt);
            Ok(())
        }
    }
}

/// Block SIGINT and SIGTERM in this thread before any core starts, so every thread
/// inherits the mask: a signal that comes before the listeners exist (during the mount)
/// stays pending and is read by them, instead of killing the server with the mount up.
fn block_stop_signals() {
    // SAFETY: `set` is plain data, initialised by sigemptyset before use; pthread_sigmask
    // only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Every node the kernel knows holds an `O_PATH` fd (fs/inodes.rs), so a tree of a few
/// thousand files needs more than the usual soft limit of 1,024: raise it to the hard limit.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a writable rlimit; setrlimit only reads it.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn main() {
    match parse(flags::expand(std::env::args().skip(1))) {
        Ok(None) => println!("{USAGE}"),
        Ok(Some(args)) => {
            if let Err(e) = run(args) {
                eprintln!("fuse_passthrough: {e}");
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("fuse_passthrough: {e}");
            std::process::exit(2);
        }
    }
}
