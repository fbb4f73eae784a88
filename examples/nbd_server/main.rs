//! `nbd_server`: a Network Block Device server on ringleader — one `SO_REUSEPORT` listener,
//! ring and registered buffer pool per core, many requests in flight per connection.
//!
//! Run: `cargo run --release --example nbd_server [-- --image PATH --listen ADDR ...]`, then
//! for example `qemu-img info nbd://127.0.0.1:10809` or `nbdinfo nbd://127.0.0.1:10809`.
//!
//! The first stdout line is `nbd_server: listening on ADDR (...)`, printed once every core
//! listens; with `--listen 127.0.0.1:0` it carries the port the kernel chose.
//!
//! # Protocol (doc/proto.md of the NetworkBlockDevice project)
//!
//! Fixed newstyle handshake with `EXPORT_NAME`, `INFO`, `GO`, `LIST`, `ABORT`,
//! `STRUCTURED_REPLY`, `EXTENDED_HEADERS` (32-byte requests and replies, 64-bit lengths, as
//! qemu 8.2+ asks for) and `LIST`/`SET_META_CONTEXT` for `base:allocation` (`handshake/`);
//! one export, the default one (named ""). Transmission flags `HAS_FLAGS`, `SEND_FLUSH`,
//! `SEND_FUA`, `SEND_TRIM`, `SEND_WRITE_ZEROES`, `CAN_MULTI_CONN`, `SEND_DF` with structured
//! replies, `READ_ONLY` with `--readonly`. Commands `READ`, `WRITE` (+FUA), `FLUSH`, `TRIM`
//! (punches a hole), `WRITE_ZEROES`, `BLOCK_STATUS` (holes from `SEEK_DATA`/`SEEK_HOLE`,
//! `status.rs`), `DISC` (`conn.rs`), replied to out of order as they finish, through one
//! writer per connection that batches replies (`reply.rs`). Not offered: TLS, `CACHE`, fast
//! zero, the block-status payload extension, several exports (each is refused as the
//! protocol says, e.g. `NBD_REP_ERR_UNSUP`; clients fall back).
//!
//! # Limits
//!
//! `--handshake-timeout`, `--idle-timeout`, `--stall-timeout`, `--max-connections`,
//! `--max-memory` and the drain on SIGTERM (`--drain-timeout`): `limits.rs`, and
//! docs/operating.md for what a client sees when one trips.
//!
//! # Data path
//!
//! Request data lives in leases of a registered per-core `FixedPool` (heap buffers when a
//! request does not fit or the pool is drained). A READ above 64 KiB is one
//! `ringleader::group`: a `READ_FIXED` leader and a member that sends the reply head and the
//! lease in one `SENDMSG`, pushed by the ring at the read's CQE in the connection's send
//! lane (`conn.rs`, `read_as_group`); smaller READs are read into a lease and batched by the
//! connection's writer, in the same lane (`--read-path` chooses). A WRITE is one
//! `ringleader::group` on its lease that writes the image and every `--mirror` with
//! `WRITE_FIXED` members pushed together, or, on file systems without non-blocking buffered
//! writes, an inline `pwrite` for writes up to 64 KiB (`export.rs` has the measurements and
//! the trade-off). FUA and FLUSH `fdatasync` every file before the reply.
//!
//! # Files
//!
//! - `proto.rs`: wire format; `handshake/`: option haggling (a state machine without I/O);
//! - `status.rs`: block status; `limits.rs`: timeouts, the memory budget, the drain;
//! - `conn.rs`: the transmission phase (reader, per-request tasks); `conn/check.rs`: the
//!   request checks; `conn/window.rs`: per-connection flow control;
//! - `reply.rs`: the reply writer; `export.rs`: the storage ops behind the commands;
//! - `block.rs`: request memory (pool lease or heap) and the file ops on it;
//! - `image.rs`: opening the image, seeding mirrors, the temporary image.

#[path = "../common/accept.rs"]
#[allow(dead_code)] // The server drains through its own limits (limits.rs), not `Conn::stopping`.
mod accept;
#[path = "../common/duration.rs"]
mod duration;
#[path = "../common/listen.rs"]
mod listen;
#[path = "../common/size.rs"]
mod size;
#[path = "../common/stop.rs"]
mod stop;

mod block;
mod conn;
mod export;
mod handshake;
mod image;
mod limits;
mod proto;
mod reply;
mod splice;
mod status;

#[path = "../common/flags.rs"]
mod flags;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, mpsc};

use ringleader::Runtime;
use ringleader::buf::FixedPool;
use ringleader::net::{TcpListener, TcpStream};

use export::Export;
use handshake::Outcome;
use image::Storage;
use limits::CoreLimits;
use listen::bind_every_core;
use size::parse_size;
use stop::StopSignals;

const USAGE: &str = "\
nbd_server: a Network Block Device server on io_uring (ringleader)

USAGE: nbd_server [OPTIONS]

  --listen ADDR         address to listen on (port 0: the kernel picks one)
                        [default: 127.0.0.1:10809]
  --image PATH          image file (or block device) to export; created sparse if missing
                        [default: a sparse image in a new temporary directory, removed on
                        exit, including on Ctrl-C and SIGTERM]
  --size SIZE           size of a new image, bytes or with a K/M/G/T suffix [default: 1G]
  --mirror PATH         also apply every write, trim and flush to PATH (repeatable); each
                        mirror is first made a copy of the image
  --direct              O_DIRECT on the image and mirrors (requests must then be aligned to
                        the file system's direct I/O alignment, advertised to clients)
  --cores N             cores: threads, rings and SO_REUSEPORT listeners [default: all CPUs]
  --readonly            export read-only (writes fail with EPERM)
  --ring-writes         always write through io_uring; by default, where the file system
                        has no non-blocking buffered write (ext4), writes up to 64 KiB are
                        done inline with pwrite, which is faster than io_uring's io-wq
                        hand-off but stalls the core while the kernel throttles writers
  --zc-threshold BYTES  send READ data of at least this size with SEND_ZC from the registered
                        buffer [default: off: on loopback it only adds cost; see reply.rs]
  --read-path PATH      `splice`: a READ splices the image's page-cache pages into a pipe
                        and the pipe into the socket after the reply's head: the data is
                        never copied by the server (not with --direct); `group`: a READ is
                        one group, READ_FIXED into a registered buffer whose reply (head +
                        data, one SENDMSG) the ring sends in the connection's send lane at
                        the read's completion; `batch`: read, then the connection's writer
                        copies replies up to 64 KiB into batched sends; `auto`: batch up to
                        64 KiB (one send for many small replies beats a send each), splice
                        above it, group where splice cannot be used (--direct, reads above
                        1 MiB, no pipe to be had) [default: auto]
  --spin-us US          before a core parks, keep reaping for up to US microseconds, so a
                        client at low queue depth is served without a sleep and wake-up
                        per request (measured at QD 1: 1.5-2x the IOPS of 0); adaptive:
                        the core stops spinning while spins find nothing or lose the CPU
                        to other threads (io-wq writes) [default: 50]

Limits (durations: 10s, 500ms, 5m, 1h; docs/operating.md says what a client sees):
  --handshake-timeout D a client that has not finished the handshake after D is closed
                        [default: 10s]
  --idle-timeout D      close a connection with nothing pending and nothing received for
                        D [default: off: NBD clients sit idle for hours]
  --stall-timeout D     close a connection that made no progress for D while requests were
                        pending (e.g. a client that stopped reading replies) [default: 60s]
  --max-connections N   connections served at once; more wait in the listen backlog
                        [default: 1024]
  --max-memory SIZE     request data in flight, all connections together; a request waits
                        (and its connection stops reading) until its data fits
                        [default: 1/16 of RAM, between 256M and 4G]
  --drain-timeout D     on SIGTERM/SIGINT: stop accepting, answer the requests received
                        (later ones get NBD_ESHUTDOWN), sync the image; exit after at most D
                        [default: 30s]
  -h, --help            this text

The first stdout line is `nbd_server: listening on ADDR (...)`; the next says how to
connect, e.g. `qemu-img info nbd://127.0.0.1:10809`.";

/// Registered buffers per core: (slot size, slots). Requests that do not fit, or find the
/// class exhausted, use heap blocks.
/// Default `--spin-us` (see its help).
const SPIN_US_DEFAULT: u64 = 50;

const POOL_CLASSES: [(usize, usize); 3] = [(4 << 10, 512), (64 << 10, 64), (1 << 20, 16)];

#[derive(Debug)]
struct Args {
    listen: SocketAddr,
    image: Option<PathBuf>,
    size: Option<u64>,
    mirrors: Vec<PathBuf>,
    direct: bool,
    cores: usize,
    readonly: bool,
    ring_writes: bool,
    zc_threshold: usize,
    read_path: conn::ReadPath,
    spin: std::time::Duration,
    limits: limits::Limits,
}

/// `Ok(None)`: help was asked for.
fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut a = Args {
        listen: "127.0.0.1:10809".parse().expect("default address"),
        image: None,
        size: None,
        mirrors: Vec::new(),
        direct: false,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        readonly: false,
        ring_writes: false,
        zc_threshold: usize::MAX,
        read_path: conn::ReadPath::AUTO,
        spin: std::time::Duration::from_micros(SPIN_US_DEFAULT),
        limits: limits::Limits::default(),
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--listen" => {
                let v = value("--listen")?;
                a.listen = v
                    .parse()
                    .map_err(|e| format!("--listen {v:?}: {e} (expected IP:PORT)"))?;
            }
            "--image" => a.image = Some(value("--image")?.into()),
            "--size" => {
                let v = value("--size")?;
                a.size = Some(parse_size(&v).ok_or_else(|| {
                    format!("--size {v:?}: expected bytes above 0, or a number with K/M/G/T")
                })?);
            }
            "--mirror" => a.mirrors.push(value("--mirror")?.into()),
            "--direct" => a.direct = true,
            "--readonly" => a.readonly = true,
            "--ring-writes" => a.ring_writes = true,
            "--cores" => {
                let v = value("--cores")?;
                a.cores = match v.parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(format!("--cores {v:?}: expected a number above 0")),
                };
            }
            "--zc-threshold" => {
                let v = value("--zc-threshold")?;
                a.zc_threshold = parse_size(&v)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| format!("--zc-threshold {v:?}: expected a size"))?;
            }
            "--spin-us" => {
                let v = value("--spin-us")?;
                a.spin = v
                    .parse::<u64>()
                    .map(std::time::Duration::from_micros)
                    .map_err(|_| format!("--spin-us {v:?}: expected microseconds"))?;
            }
            "--read-path" => {
                let v = value("--read-path")?;
                a.read_path = conn::ReadPath::parse(&v).ok_or_else(|| {
                    format!("--read-path {v:?}: expected splice, group, batch or auto")
                })?;
            }
            "--handshake-timeout" | "--stall-timeout" | "--drain-timeout" => {
                let v = value(&flag)?;
                let d = duration::parse_duration(&v)
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| {
                        format!("{flag} {v:?}: expected a duration above 0 (10s, 500ms, 5m)")
                    })?;
                match flag.as_str() {
                    "--handshake-timeout" => a.limits.handshake_timeout = d,
                    "--stall-timeout" => a.limits.stall_timeout = d,
                    _ => a.limits.drain_timeout = d,
                }
            }
            "--idle-timeout" => {
                let v = value("--idle-timeout")?;
                a.limits.idle_timeout = duration::parse_optional_duration(&v)
                    .ok_or_else(|| format!("--idle-timeout {v:?}: expected a duration or off"))?;
            }
            "--max-connections" => {
                let v = value("--max-connections")?;
                a.limits.max_connections = match v.parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => {
                        return Err(format!(
                            "--max-connections {v:?}: expected a number above 0"
                        ));
                    }
                };
            }
            "--max-memory" => {
                let v = value("--max-memory")?;
                a.limits.max_memory = parse_size(&v)
                    .ok_or_else(|| format!("--max-memory {v:?}: expected a size (256M, 2G)"))?;
            }
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if a.readonly && !a.mirrors.is_empty() {
        return Err("--mirror and --readonly exclude each other".into());
    }
    Ok(Some(a))
}

/// What every core needs to build its [`Export`].
struct CoreSetup {
    storage: Arc<Storage>,
    readonly: bool,
    ring_writes: bool,
    zc_threshold: usize,
    read_path: conn::ReadPath,
    limits: limits::Limits,
    gate: accept::Gate,
}

/// One client, from handshake to close.
async fn connection(
    stream: TcpStream,
    export: Rc<Export>,
    zc_threshold: usize,
    read_path: conn::ReadPath,
    core: Rc<CoreLimits>,
    // Holds the connection's slot under `--max-connections` until it ends.
    _admitted: accept::Conn,
) {
    let _ = stream.set_nodelay(true);
    let handshake = handshake::negotiate(&stream, &export);
    let handshake = ringleader::time::timeout(core.limits.handshake_timeout, handshake);
    // Draining: a client still in its handshake is simply closed.
    let Some(outcome) = limits::unless(&core.drain, handshake).await else {
        return;
    };
    match outcome {
        Ok(Ok(Outcome::Transmit {
            framing,
            block_status,
        })) => {
            let session = conn::Session {
                framing,
                block_status,
                zc_threshold,
                read_path,
            };
            conn::transmission(Rc::new(stream), export, session, core).await;
        }
        Ok(Ok(Outcome::Left)) => {}
        Ok(Err(why)) => eprintln!("nbd_server: closing a connection during the handshake: {why}"),
        Err(_) => eprintln!(
            "nbd_server: closing a connection: no handshake within {:?} (--handshake-timeout)",
            core.limits.handshake_timeout
        ),
    }
}

/// This core's export: its own fds and registered pool.
fn core_export(setup: &CoreSetup) -> io::Result<Export> {
    let s = &setup.storage;
    let (image, mirrors) = s.clone_files()?;
    let mut pool = FixedPool::builder();
    for (size, count) in POOL_CLASSES {
        pool = pool.class(size, count);
    }
    let pool = match pool.build() {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!(
                "nbd_server: core {}: no registered buffer pool ({e}); using heap buffers",
                ringleader::current_core()
            );
            None
        }
    };
    let config = export::Config {
        size: s.size,
        readonly: setup.readonly,
        align: s.align,
        description: format!("ringleader nbd_server: {}", s.image_path.display()),
        inline_writes: s.writes_block && !setup.ring_writes,
    };
    Export::new(image, mirrors, config, pool)
}

/// Bind on `core`, report the bound address (or the error) on `ready`, then accept forever,
/// one task per connection.
fn listen_on(
    rt: &Runtime,
    core: usize,
    addr: SocketAddr,
    setup: Arc<CoreSetup>,
    ready: mpsc::Sender<io::Result<SocketAddr>>,
) {
    let cores = rt.cores();
    rt.spawn_on(core, move || async move {
        let core_limits = CoreLimits::new(setup.limits, cores);
        let set_up = core_export(&setup).and_then(|export| {
            let listener = TcpListener::bind_reuseport(addr)?;
            Ok((listener, Rc::new(export)))
        });
        let (listener, export) = match set_up {
            Ok(s) => s,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let _ = ready.send(listener.local_addr());
        drop(ready);
        // Until the stop: the connection cap, back-off when fds run out, rate-limited logs
        // (common/accept.rs).
        let serve = setup.gate.serve(listener, |stream, admitted| {
            connection(
                stream,
                Rc::clone(&export),
                setup.zc_threshold,
                setup.read_path,
                Rc::clone(&core_limits),
                admitted,
            )
        });
        serve.await;
        // The listener is closed: drain this core's connections.
        core_limits.drain.set();
    })
    .detach();
}

fn run(args: Args) -> Result<(), String> {
    let storage = image::open(
        args.image.as_deref(),
        args.size,
        &args.mirrors,
        args.readonly,
        args.direct,
    )?;
    let storage = Arc::new(storage);
    let rt = Runtime::builder()
        .cores(args.cores)
        .spin_before_park(args.spin)
        .build()
        .map_err(|e| format!("starting {} cores: {e}", args.cores))?;
    // Listen for the stop signals before announcing the address, so a signal sent as soon as
    // the address is known stops the server cleanly.
    let stop = StopSignals::listen(&rt).map_err(|e| format!("listening for signals: {e}"))?;
    let setup = Arc::new(CoreSetup {
        storage: Arc::clone(&storage),
        readonly: args.readonly,
        ring_writes: args.ring_writes,
        zc_threshold: args.zc_threshold,
        read_path: args.read_path,
        limits: args.limits,
        gate: accept::Gate::new("nbd_server", args.limits.max_connections),
    });
    let (bound, _) = bind_every_core(args.cores, args.listen, |core, addr, ready| {
        listen_on(&rt, core, addr, Arc::clone(&setup), ready)
    })?;
    let mut out = io::stdout().lock();
    let writes = if args.readonly {
        ", read-only"
    } else if storage.writes_block && !args.ring_writes {
        ", inline writes"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "nbd_server: listening on {bound} ({} bytes, image {}{}{}, {} cores)",
        storage.size,
        storage.image_path.display(),
        writes,
        if args.direct { ", O_DIRECT" } else { "" },
        args.cores,
    );
    let _ = writeln!(out, "nbd_server: connect with: qemu-img info nbd://{bound}");
    let _ = out.flush();
    drop(out);
    let sig = stop.wait().map_err(|e| e.to_string())?;
    drain(&setup.gate, &storage, &args, sig, &stop);
    // The temporary image goes first: removing it must not depend on a clean shutdown.
    if let Some(t) = &storage.temp {
        t.remove();
    }
    rt.shutdown();
    Ok(())
}

/// The graceful stop (see `limits.rs`): every core stops accepting and closes what is idle;
/// wait until no connection is left, `--drain-timeout` passes or a second signal comes;
/// then sync the image and mirrors, so everything acknowledged is on disk.
fn drain(gate: &accept::Gate, storage: &Storage, args: &Args, sig: i32, stop: &StopSignals) {
    let limit = args.limits.drain_timeout;
    eprintln!(
        "nbd_server: signal {sig}: draining {} connections (at most {limit:?}; a second signal stops at once)",
        gate.open()
    );
    gate.stop();
    let deadline = std::time::Instant::now() + limit;
    while gate.open() > 0 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            eprintln!(
                "nbd_server: {} connections still open after {limit:?}: closing them",
                gate.open()
            );
            break;
        }
        if let Some(again) = stop.wait_timeout(left.min(DRAIN_POLL)) {
            eprintln!("nbd_server: signal {again}: stopping now");
            break;
        }
    }
    if !args.readonly {
        for f in std::iter::once(&storage.image).chain(&storage.mirrors) {
            if let Err(e) = f.sync_data() {
                eprintln!("nbd_server: syncing at stop: {e}");
            }
        }
    }
}

/// How often the drain looks at the connection count.
const DRAIN_POLL: std::time::Duration = std::time::Duration::from_millis(20);

fn main() {
    let args = match parse(flags::expand(std::env::args().skip(1))) {
        Ok(Some(a)) => a,
        Ok(None) => {
            let _ = writeln!(io::stdout(), "{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("nbd_server: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args) {
        eprintln!("nbd_server: {e}");
        std::process::exit(1);
    }
}
