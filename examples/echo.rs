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
//! - the send (`send_whole`: one `MSG_WAITALL` op, whole or failed) is checked when the next
//!   chunk arrives (or at end of stream), with a waker that does nothing, so its completion
//!   never wakes the task: a request/response round trip wakes it once, not twice. One send
//!   is in flight per connection, so echoed bytes keep their order;
//! - `TCP_NODELAY`, so a small reply leaves at once;
//! - **spin before park** (`--spin-us`, default 50, `Builder::spin_before_park`): a core that
//!   runs out of work keeps polling its ring for that long before it sleeps in
//!   `io_uring_enter`. A core that sleeps
//!   between two requests must be woken by the sender's CPU (a cross-CPU wake-up, expensive
//!   on a VM), and that cost lands on whoever sends, for every chunk that finds it asleep.
//!   The core goes back to sleep once the traffic stops, so an idle server uses no CPU, and
//!   the spin is adaptive: it stops while spins find nothing or lose their CPU to another
//!   thread, so a saturated core does not pay for it.
//!
//! Every SQE pushed while the core runs its ready tasks goes to the kernel in the core's one
//! `io_uring_enter` per tick, together with the receives' deferred task work.
//!
//! The ring is shared by the core's connections. A client that sends without ever reading
//! its echo keeps the buffers holding its unsent data; once the ring is empty every
//! connection on that core waits (`ENOBUFS` backpressure, see `recv_multi`) until buffers
//! come back. `--idle-timeout` bounds how long: such a client makes no progress and is
//! closed.
//!
//! # Limits and stopping (docs/operating.md has the operator's view)
//!
//! - `--max-connections` (default 10,000, over all cores): at the cap new clients wait in the
//!   listen backlog until a connection ends (`common/accept.rs`, which also pauses accepting
//!   when fds run out instead of retrying in a loop);
//! - `--idle-timeout` (default 60 s): a connection on which nothing was received and no echo
//!   was sent for that long is closed;
//! - SIGTERM or SIGINT: stop accepting (the listeners close), keep serving the open
//!   connections, close each once it has been quiet for 1 s, and exit 0 when all are gone or
//!   `--drain-timeout` (default 10 s) has passed.

#[path = "common/listen.rs"]
mod listen;

#[path = "common/flags.rs"]
mod flags;

#[path = "common/duration.rs"]
mod duration;

#[path = "common/stop.rs"]
mod stop;

#[path = "common/accept.rs"]
#[expect(
    dead_code,
    reason = "echo has no handshake: `within` is for the servers that do"
)]
mod accept;

use std::future::{Future, poll_fn};
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::mpsc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::StreamExt;
use ringleader::buf::{BufRing, IoBuf, Lease};
use ringleader::net::ops::Send;
use ringleader::net::{OwnedIo, TcpListener, TcpStream};
use ringleader::{Runtime, ops::Op};

use accept::{Conn, Gate, IdleTimer};
use duration::{parse_duration, parse_optional_duration};
use listen::bind_every_core;
use stop::StopSignals;

/// Buffers in each core's ring. A connection holds one only from its receive until its echo
/// is sent, so this bounds bursts, not connections.
const RING_BUFFERS: u16 = 512;
/// Bytes per ring buffer: the most one receive returns.
const RING_BUF_SIZE: usize = 4096;

/// Default `--max-connections`.
const MAX_CONNECTIONS: usize = 10_000;
/// Default `--idle-timeout`.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `--drain-timeout`.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// While draining, a connection quiet for this long (or its idle timeout, if shorter) is
/// closed: its client has had its echoes.
const DRAIN_QUIET: Duration = Duration::from_secs(1);

struct Args {
    listen: SocketAddr,
    cores: usize,
    spin: Duration,
    max_connections: usize,
    idle: Option<Duration>,
    drain: Duration,
}

const USAGE: &str = "\
echo: a per-core TCP echo server on io_uring

USAGE: echo [OPTIONS]

  --listen ADDR          address to listen on (port 0: the kernel picks one)
                         [default: 127.0.0.1:7878]
  --cores N              cores (threads, rings, SO_REUSEPORT listeners) [default: all CPUs]
  --spin-us US           when a core runs out of work, poll the ring for up to US
                         microseconds before sleeping in the kernel (0: sleep at once);
                         adaptive: no spin while spins find nothing or lose the CPU
                         [default: 50]
  --max-connections N    connections open at once, over all cores; more clients wait in the
                         listen backlog until one ends [default: 10000]
  --idle-timeout DUR     close a connection on which nothing was received and no echo sent
                         for DUR (0 or off: never) [default: 60s]
  --drain-timeout DUR    on SIGTERM or SIGINT: stop accepting, let the open connections
                         finish (each is closed once quiet for 1s) for at most DUR, then
                         exit 0 [default: 10s]
  -h, --help             this text

DUR: a number with ms, s, m or h (a bare number is seconds).
The first stdout line is `echo: listening on ADDR (N cores)`.";

/// `Ok(None)`: help was asked for.
fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut a = Args {
        listen: "127.0.0.1:7878".parse().expect("default address"),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        spin: Duration::from_micros(50),
        max_connections: MAX_CONNECTIONS,
        idle: Some(IDLE_TIMEOUT),
        drain: DRAIN_TIMEOUT,
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
            "--max-connections" => {
                let v = value("--max-connections")?;
                a.max_connections = match v.parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => {
                        return Err(format!(
                            "--max-connections {v:?}: expected a number above 0"
                        ));
                    }
                };
            }
            "--idle-timeout" => {
                let v = value("--idle-timeout")?;
                a.idle = parse_optional_duration(&v).ok_or_else(|| {
                    format!("--idle-timeout {v:?}: expected a duration (60s, off)")
                })?;
            }
            "--drain-timeout" => {
                let v = value("--drain-timeout")?;
                a.drain = parse_duration(&v)
                    .ok_or_else(|| format!("--drain-timeout {v:?}: expected a duration (10s)"))?;
            }
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(Some(a))
}

/// What the connection's task wakes up for.
enum Event {
    /// The next received chunk (`None`: end of stream).
    Chunk(Option<io::Result<Lease>>),
    /// The previous echo completed short or failed (see [`Sent`]).
    SendDone,
}

/// How the previous echo's send ended.
enum Sent {
    /// Whole.
    Done,
    /// Short: this is the rest (copied, so the ring buffer went back at once).
    Rest(Vec<u8>),
    /// Failed: the connection ends.
    Failed,
}

/// Echo until the peer closes its write side (then close ours), the connection fails, or it
/// goes idle (see [`or_idle`]).
///
/// The previous chunk's send is polled while the next receive waits, so its ring buffer goes
/// back to the ring as soon as the echo is sent. Holding it until the next receive would let
/// 512 quiet connections (the ring's size) hold every buffer, and the core would serve
/// nothing more until their idle timeout.
async fn echo(stream: TcpStream, ring: BufRing, conn: Conn, idle: Option<Duration>) {
    let _ = stream.set_nodelay(true);
    let mut timer = IdleTimer::new(idle);
    let mut incoming = stream.recv_multi(&ring);
    let mut sending: Option<Op<Send<Echo>>> = None;
    // The send in flight is of a copy (see `Echo`).
    let mut quiet_send = false;
    // The buffer of the last copied echo, once its send completed: the next copy reuses it.
    let mut spare = Vec::new();
    let mut after: Option<Sent> = None;
    loop {
        let next = poll_fn(|cx| {
            if let Some(op) = sending.as_mut() {
                // A copied echo is checked with a waker that does nothing: its completion
                // alone is no reason to wake this task (the send is whole or failed:
                // `send_whole`), and waking it for every chunk's send would double its
                // wake-ups; the next chunk, end of stream or the idle timer polls the task
                // anyway. A ring buffer sent back as it is must return to the ring as soon
                // as its send completes (the ring is shared by the core's connections), so
                // that completion wakes the task.
                let mut quiet = Context::from_waker(Waker::noop());
                let cx = if quiet_send { &mut quiet } else { &mut *cx };
                if let Poll::Ready((res, chunk)) = Pin::new(op).poll(cx) {
                    sending = None;
                    after = Some(match res {
                        Ok(n) if n >= chunk.len() => Sent::Done,
                        Ok(n) => Sent::Rest(chunk[n..].to_vec()),
                        Err(_) => Sent::Failed,
                    });
                    match chunk {
                        Echo::Copy(v) => spare = v,
                        // Dropped here: its buffer is back in the ring.
                        Echo::Lease(lease) => drop(lease),
                    }
                }
            }
            if matches!(after, Some(Sent::Rest(_) | Sent::Failed)) {
                return Poll::Ready(Event::SendDone);
            }
            incoming.poll_next_unpin(cx).map(Event::Chunk)
        });
        let event = or_idle(next, &mut timer, &conn).await;
        if !finish_send(&stream, &mut sending, &mut after, &mut timer, &conn).await {
            return;
        }
        match event {
            // Idle (or end of stream): the last echo goes out (unless it is stuck too),
            // then FIN.
            None | Some(Event::Chunk(None)) => break,
            Some(Event::SendDone) => {}
            // A reset or other failure ends this connection only.
            Some(Event::Chunk(Some(Err(_)))) => return,
            Some(Event::Chunk(Some(Ok(chunk)))) => {
                timer.touch();
                if let Some(send) = sending.take() {
                    match or_idle(sent(&stream, send), &mut timer, &conn).await {
                        Some(Ok(())) => timer.touch(),
                        _ => return,
                    }
                }
                let echo = Echo::of(chunk, &mut spare);
                quiet_send = matches!(echo, Echo::Copy(_));
                sending = Some(stream.send_whole(echo));
            }
        }
    }
    if let Some(send) = sending.take() {
        if !matches!(
            or_idle(sent(&stream, send), &mut timer, &conn).await,
            Some(Ok(()))
        ) {
            return;
        }
    }
    let _ = stream.shutdown(Shutdown::Write).await;
}

/// Act on how the previous send ended, if it did: `false` ends the connection.
async fn finish_send(
    stream: &TcpStream,
    sending: &mut Option<Op<Send<Echo>>>,
    after: &mut Option<Sent>,
    timer: &mut IdleTimer,
    conn: &Conn,
) -> bool {
    debug_assert!(after.is_none() || sending.is_none());
    match after.take() {
        None => true,
        Some(Sent::Done) => {
            timer.touch();
            true
        }
        Some(Sent::Failed) => false,
        Some(Sent::Rest(rest)) => {
            let ok = matches!(
                or_idle(send_rest(stream, &rest), timer, conn).await,
                Some(Ok(()))
            );
            if ok {
                timer.touch();
            }
            ok
        }
    }
}

/// `fut`'s output, or `None` once the connection has made no progress for its idle limit.
/// When the server stops, the limit drops to [`DRAIN_QUIET`]: a client that has had its
/// echoes is let go.
async fn or_idle<F: Future>(fut: F, timer: &mut IdleTimer, conn: &Conn) -> Option<F::Output> {
    let mut fut = pin!(fut);
    poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        if timer.limit().is_none_or(|l| l > DRAIN_QUIET)
            && Pin::new(&mut conn.stopping()).poll(cx).is_ready()
        {
            timer.set_limit(Some(DRAIN_QUIET));
        }
        timer.poll_expired(cx).map(|()| None)
    })
    .await
}

/// Wait for `send` to complete; send what it left over, if anything.
async fn sent(stream: &TcpStream, send: Op<Send<Echo>>) -> io::Result<()> {
    let (res, chunk) = send.await;
    let n = res?;
    if n < chunk.len() {
        send_rest(stream, &chunk[n..]).await?;
    }
    Ok(())
}

/// Chunks up to this size are echoed from a copy, so their ring buffer goes back at once
/// and the send's completion need not wake the task; larger ones are sent from the ring
/// buffer itself (no copy), and their completion wakes the task to give the buffer back.
const ECHO_COPY_MAX: usize = 2048;

/// The bytes of one echo: a copy, or the ring buffer they arrived in.
enum Echo {
    Copy(Vec<u8>),
    Lease(Lease),
}

impl Echo {
    /// The echo of `chunk`: a copy (into `spare`'s allocation) if it is small.
    fn of(chunk: Lease, spare: &mut Vec<u8>) -> Echo {
        if chunk.len() <= ECHO_COPY_MAX {
            let mut v = std::mem::take(spare);
            v.clear();
            v.extend_from_slice(&chunk);
            Echo::Copy(v)
        } else {
            Echo::Lease(chunk)
        }
    }
}

impl std::ops::Deref for Echo {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Echo::Copy(v) => v,
            Echo::Lease(l) => l,
        }
    }
}

// SAFETY: delegates to the variant's own `IoBuf` impl, whose guarantees (a heap address that
// does not move while the value moves, `bytes_init` initialised bytes) hold for the enum:
// moving the enum moves the `Vec` or `Lease` handle, never the memory it points to.
unsafe impl IoBuf for Echo {
    fn stable_ptr(&self) -> *const u8 {
        match self {
            Echo::Copy(v) => v.stable_ptr(),
            Echo::Lease(l) => l.stable_ptr(),
        }
    }
    fn bytes_init(&self) -> usize {
        match self {
            Echo::Copy(v) => v.bytes_init(),
            Echo::Lease(l) => l.bytes_init(),
        }
    }
    fn bytes_total(&self) -> usize {
        match self {
            Echo::Copy(v) => v.bytes_total(),
            Echo::Lease(l) => l.bytes_total(),
        }
    }
}

/// A short send (the socket's send buffer was full): send the rest from a copy.
#[cold] // Loopback and LAN echoes of request-sized chunks never get here.
async fn send_rest(stream: &TcpStream, rest: &[u8]) -> io::Result<()> {
    stream.write_all_owned(rest.to_vec()).await.0
}

/// Bind on `core` and set up its buffer ring, report the bound address (or the error) on
/// `ready`, then serve until the gate stops.
fn listen_on(
    rt: &Runtime,
    core: usize,
    addr: SocketAddr,
    gate: Gate,
    idle: Option<Duration>,
    ready: mpsc::Sender<io::Result<SocketAddr>>,
) {
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
        gate.serve(listener, |stream, conn| {
            echo(stream, ring.clone(), conn, idle)
        })
        .await;
    })
    .detach();
}

fn run(args: Args) -> Result<(), String> {
    let rt = Runtime::builder()
        .cores(args.cores)
        .spin_before_park(args.spin)
        .build()
        .map_err(|e| format!("starting {} cores: {e}", args.cores))?;
    // Listen for the stop signals before announcing the address, so a signal sent as soon as
    // the address is known stops the server cleanly.
    let stop = StopSignals::listen(&rt).map_err(|e| format!("listening for signals: {e}"))?;
    let gate = Gate::new("echo", args.max_connections);
    let (bound, _) = bind_every_core(args.cores, args.listen, |core, addr, ready| {
        listen_on(&rt, core, addr, gate.clone(), args.idle, ready)
    })?;
    // Ignore a closed stdout: the server does not need it.
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "echo: listening on {bound} ({} cores)", args.cores);
    let _ = out.flush();
    drop(out);
    let sig = stop.wait().map_err(|e| e.to_string())?;
    eprintln!(
        "echo: signal {sig}: stopping: no new connections; draining {} for up to {:?}",
        gate.open(),
        args.drain
    );
    gate.stop();
    match gate.drain(args.drain) {
        0 => eprintln!("echo: drained"),
        n => eprintln!("echo: --drain-timeout passed: closing {n} connections"),
    }
    rt.shutdown();
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
