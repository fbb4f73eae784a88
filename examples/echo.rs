//! A per-core TCP echo server: one `SO_REUSEPORT` listener per core, each with a multishot
//! accept; one task per connection, receiving with a multishot recv into the core's
//! provided-buffer ring and sending each buffer straight back.
//!
//! Run: `cargo run --release --example echo [-- --listen ADDR --cores N]`
//!
//! The first line on stdout is `echo: listening on ADDR (N cores)`, printed once every core
//! listens; with `--listen 127.0.0.1:0` it carries the port the kernel chose. A client that
//! shuts down its write side gets everything echoed and then end-of-stream; a client that
//! resets only ends its own connection.
//!
//! # The fast path
//!
//! Per received chunk the kernel does the work and the task is polled once:
//!
//! - one multishot `IORING_OP_RECV` per connection stays armed for its whole life
//!   ([`TcpStream::recv_multi`]): data arrival costs no SQE, no re-arm and no poll set-up; the
//!   kernel picks a buffer from the core's [`BufRing`] and the CQE hands it over as a lease;
//! - the lease itself is sent back (`IORING_OP_SEND` from the ring buffer: no copy, no
//!   allocation), and stays owned by the send op until its CQE, so the buffer returns to the
//!   ring only once the kernel is done with it;
//! - the send's completion is collected when the next chunk arrives (or at end of stream),
//!   not awaited on its own: a request/response round trip wakes the task once, not twice.
//!   One send is in flight per connection, so echoed bytes keep their order;
//! - `TCP_NODELAY`, so a small reply leaves at once;
//! - **spin before park** (`--spin-us`, default 50, `Builder::spin_before_park`): a core that
//!   runs out of work keeps polling its ring for that long before it sleeps in
//!   `io_uring_enter`. A core that sleeps
//!   between two requests must be woken by the sender's CPU (a cross-CPU wake-up, expensive
//!   on a VM), and that cost lands on whoever sends, for every chunk that finds it asleep.
//!   The core goes back to sleep once the traffic stops, so an idle server uses no CPU.
//!
//! Every SQE pushed while the core runs its ready tasks goes to the kernel in the core's one
//! `io_uring_enter` per tick, together with the receives' deferred task work.
//!
//! The ring is shared by the core's connections. A client that sends without ever reading
//! its echo keeps the buffers holding its unsent data; once the ring is empty every
//! connection on that core waits (`ENOBUFS` backpressure, see `recv_multi`) until buffers
//! come back.

#[path = "common/listen.rs"]
mod listen;

#[path = "common/flags.rs"]
mod flags;

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::mpsc;
use std::time::Duration;

use futures::StreamExt;
use ringleader::buf::{BufRing, Lease};
use ringleader::net::ops::Send;
use ringleader::net::{OwnedIo, TcpListener, TcpStream};
use ringleader::{Op, Runtime, spawn};

use listen::bind_every_core;

/// Buffers in each core's ring. A connection holds one only from its receive until its echo
/// is sent, so this bounds bursts, not connections.
const RING_BUFFERS: u16 = 512;
/// Bytes per ring buffer: the most one receive returns.
const RING_BUF_SIZE: usize = 4096;

struct Args {
    listen: SocketAddr,
    cores: usize,
    spin: Duration,
}

const USAGE: &str = "\
echo: a per-core TCP echo server on io_uring

USAGE: echo [--listen ADDR] [--cores N] [--spin-us US]

  --listen ADDR  address to listen on (port 0: the kernel picks one) [default: 127.0.0.1:7878]
  --cores N      cores (threads, rings, SO_REUSEPORT listeners) [default: all CPUs]
  --spin-us US   when a core runs out of work, poll the ring for US microseconds before
                 sleeping in the kernel (0: sleep at once) [default: 50]
  -h, --help     this text

The first stdout line is `echo: listening on ADDR (N cores)`.";

/// `Ok(None)`: help was asked for.
fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut a = Args {
        listen: "127.0.0.1:7878".parse().expect("default address"),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        spin: Duration::from_micros(50),
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
            "--cores" => {
                let v = value("--cores")?;
                a.cores = match v.parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(format!("--cores {v:?}: expected a number above 0")),
                };
            }
            "--spin-us" => {
                let v = value("--spin-us")?;
                a.spin = match v.parse::<u64>() {
                    Ok(us) => Duration::from_micros(us),
                    Err(_) => return Err(format!("--spin-us {v:?}: expected microseconds")),
                };
            }
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(Some(a))
}

/// Echo until the peer closes its write side (then close ours) or the connection fails.
async fn echo(stream: TcpStream, ring: BufRing) {
    let _ = stream.set_nodelay(true);
    let mut incoming = stream.recv_multi(&ring);
    // The send of the previous chunk: already submitted, its CQE collected before the next
    // send (or the shutdown), so this task is not woken for it separately.
    let mut sending: Option<Op<Send<Lease>>> = None;
    while let Some(chunk) = incoming.next().await {
        // A reset or other failure ends this connection only.
        let Ok(chunk) = chunk else { return };
        if let Some(send) = sending.take() {
            if sent(&stream, send).await.is_err() {
                return;
            }
        }
        sending = Some(stream.write(chunk));
    }
    if let Some(send) = sending.take() {
        if sent(&stream, send).await.is_err() {
            return;
        }
    }
    let _ = stream.shutdown(Shutdown::Write).await;
}

/// Wait for `send` to complete; send what it left over, if anything.
async fn sent(stream: &TcpStream, send: Op<Send<Lease>>) -> io::Result<()> {
    let (res, chunk) = send.await;
    let n = res?;
    if n < chunk.len() {
        send_rest(stream, &chunk[n..]).await?;
    }
    Ok(())
}

/// A short send (the socket's send buffer was full): send the rest from a copy.
#[cold] // Loopback and LAN echoes of request-sized chunks never get here.
async fn send_rest(stream: &TcpStream, rest: &[u8]) -> io::Result<()> {
    stream.write_all(rest.to_vec()).await.0
}

/// Accept forever on this core's listener, one task per connection.
async fn serve(listener: TcpListener, ring: BufRing) {
    let mut incoming = listener.incoming();
    while let Some(conn) = incoming.next().await {
        match conn {
            Ok(stream) => spawn(echo(stream, ring.clone())).detach(),
            // ECONNABORTED, EMFILE, ...: the stream re-arms; keep serving.
            Err(e) => eprintln!("echo: core {}: accept: {e}", ringleader::current_core()),
        }
    }
}

/// Bind on `core` and set up its buffer ring, report the bound address (or the error) on
/// `ready`, then serve.
fn listen_on(
    rt: &Runtime,
    core: usize,
    addr: SocketAddr,
    ready: mpsc::Sender<io::Result<SocketAddr>>,
) -> ringleader::JoinHandle<()> {
    rt.spawn_on(core, move || async move {
        let set_up = TcpListener::bind_reuseport(addr).and_then(|listener| {
            let ring = BufRing::new(RING_BUFFERS, RING_BUF_SIZE).map_err(|e| {
                io::Error::new(e.kind(), format!("core {core}: provided-buffer ring: {e}"))
            })?;
            Ok((listener, ring))
        });
        let (listener, ring) = match set_up {
            Ok(s) => s,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let _ = ready.send(listener.local_addr());
        drop(ready);
        serve(listener, ring).await;
    })
}

fn run(args: Args) -> Result<(), String> {
    let rt = Runtime::builder()
        .cores(args.cores)
        .spin_before_park(args.spin)
        .build()
        .map_err(|e| format!("starting {} cores: {e}", args.cores))?;
    let (bound, handles) = bind_every_core(args.cores, args.listen, |core, addr, ready| {
        listen_on(&rt, core, addr, ready)
    })?;
    // Ignore a closed stdout: the server does not need it.
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "echo: listening on {bound} ({} cores)", args.cores);
    let _ = out.flush();
    drop(out);
    for h in handles {
        if let Err(e) = futures::executor::block_on(h) {
            return Err(format!("a core's server failed: {e}"));
        }
    }
    Ok(())
}

fn main() {
    let args = match parse(flags::expand(std::env::args().skip(1))) {
        Ok(Some(a)) => a,
        Ok(None) => {
            let _ = writeln!(io::stdout(), "{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("echo: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args) {
        eprintln!("echo: {e}");
        std::process::exit(1);
    }
}
