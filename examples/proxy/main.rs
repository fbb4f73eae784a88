//! `proxy`: a TCP proxy on ringleader that copies every byte a client sends to the upstream
//! *and* to N mirrors, from one received buffer, with a bound on what it holds.
//!
//! Run: `cargo run --release --example proxy -- --upstream 127.0.0.1:5201 [--mirror ADDR]...
//! [--mode lease|splice|copy] [--listen ADDR] [--cores N]`; `--help` lists every flag.
//!
//! The first stdout line is `proxy: listening on ADDR (mode M, upstream U, N mirrors)`,
//! printed once every core listens; with `--listen 127.0.0.1:0` it carries the port the
//! kernel chose. `docs/proxy.md` has the byte paths, costs and measurements.
//!
//! # Model
//!
//! One `SO_REUSEPORT` listener per core, accepting through `common/accept.rs` (the
//! connection cap, back-off when fds run out, the graceful stop); one task per client
//! (`conn.rs`), which connects to the upstream and the mirrors and relays both directions:
//! client → upstream + mirrors, upstream → client (mirrors' replies are discarded). How the
//! bytes move is the `--mode`:
//!
//! - `lease` (`relay.rs`): a multishot recv into the connection's buffer ring; the buffer the
//!   kernel picked is sent to every destination as is, and returns to the ring when the last
//!   send is done. A direction gets its ring only once it carries a stream (a receive filled
//!   a whole buffer); until then it receives into heap buffers, so short connections cost
//!   what they do in copy mode;
//! - `splice` (`splice.rs`): splice into a pipe, tee into each mirror's pipe, splice out; the
//!   data never enters user memory;
//! - `copy` (`relay.rs`): recv into a `Vec`, `write_all` of it to each destination.
//!
//! The upstream → client direction uses the same mode (with one destination).
//!
//! # Invariants
//!
//! - **Bounded**: one connection direction never holds more than `--max-buffered` bytes
//!   (the ring, the pipes, the copy window). A slow destination stops the reader, and TCP
//!   flow control then throttles the sender (`stats.rs` counts it; `--stats` prints it).
//! - **Ordered**: each destination has one writer that sends its chunks one at a time, in
//!   the order they were received, finishing short sends before the next chunk.
//! - **Contained**: an error ends its connection only; a failing mirror only leaves the
//!   fan-out of its connection.
//! - **Mirrors never slow the client**: a mirror more than `--mirror-budget` behind the
//!   upstream, or taking nothing for `--mirror-timeout`, is dropped from its connection
//!   (its TCP connection reset, one stderr line, counted in `--stats`).
//! - **Limited**: at most `--max-connections` clients at once (more wait in the listen
//!   backlog); a connect that gets no answer for `--connect-timeout` gives up; a connection
//!   on which no byte moved either way for `--idle-timeout` is closed; SIGINT/SIGTERM stop
//!   accepting and give open connections `--drain-timeout` to finish. Memory: at most
//!   `2 x --max-buffered` per connection (`--ring-memory` bounds lease mode's rings per core).
//! - **No thread per connection**: splice mode waits for readiness in the ring and splices
//!   only what is there, so io-wq workers (capped per ring by the runtime) never wait on an
//!   idle socket.
//!
//! # Files
//!
//! `args.rs` the command line; `conn.rs` a connection's life; `relay.rs` lease and copy
//! modes; `queue.rs` the per-destination chunk queues; `mirror.rs` mirror budgets, stall
//! timeouts and drops; `splice.rs` splice mode; `poll.rs` readiness for it; `stats.rs` the
//! byte budget and `--stats`.

#[path = "../common/accept.rs"]
#[expect(
    dead_code,
    reason = "the proxy has no handshake phase, and touches its idle timers through `Activity`"
)]
mod accept;
#[path = "../common/duration.rs"]
mod duration;
#[path = "../common/listen.rs"]
mod listen;
#[path = "../common/size.rs"]
mod size;
#[path = "../common/stop.rs"]
mod stop;

mod args;
mod conn;
mod mirror;
mod poll;
mod queue;
mod relay;
mod splice;
mod stats;

#[path = "../common/flags.rs"]
mod flags;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;

use std::time::Duration;

use ringleader::Runtime;
use ringleader::net::TcpListener;

use accept::Gate;
use args::{Args, Mode};
use listen::bind_every_core;
use stop::StopSignals;

/// What every connection needs: the parsed flags plus the sizes derived from them.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub upstream: SocketAddr,
    pub mirrors: Vec<SocketAddr>,
    pub mode: Mode,
    pub max_buffered: usize,
    pub buf_size: usize,
    /// `None`: `--mirror-budget off`.
    pub mirror_budget: Option<usize>,
    pub mirror_timeout: std::time::Duration,
    pub ring_memory: usize,
    pub zc: bool,
    /// `None`: `--idle-timeout off`.
    pub idle: Option<Duration>,
    pub connect_timeout: Duration,
    /// `/proc/sys/fs/pipe-max-size`: the largest pipe an unprivileged process may ask for.
    pipe_max: usize,
}

const PAGE: usize = 4096;

impl Config {
    fn new(a: &Args) -> Config {
        let pipe_max = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20);
        Config {
            upstream: a.upstream,
            mirrors: a.mirrors.clone(),
            mode: a.mode,
            max_buffered: a.max_buffered,
            buf_size: a.buf_size,
            mirror_budget: a.mirror_budget,
            mirror_timeout: a.mirror_timeout,
            ring_memory: a.ring_memory,
            zc: a.zc,
            idle: a.idle,
            connect_timeout: a.connect_timeout,
            pipe_max,
        }
    }

    /// Buffers in a connection direction's ring: `max_buffered / buf_size`, rounded down to
    /// a power of two (the kernel's ring sizes), so the ring never exceeds the bound.
    pub(crate) fn ring_entries(&self) -> u16 {
        let n = (self.max_buffered / self.buf_size).clamp(1, 1 << 15);
        1 << n.ilog2()
    }

    /// Bytes per main pipe in splice mode (the round size): the bound without mirrors; with
    /// them, what the mirror budget leaves of the bound, and at most half a tap, so a mirror
    /// one round behind still takes the next round whole. A power of two (the kernel rounds
    /// pipe sizes up to one), at least a page, at most `pipe-max-size`.
    pub(crate) fn pipe_size(&self, taps: bool) -> usize {
        let want = if taps {
            let budget = self.mirror_budget.unwrap_or(self.max_buffered / 2);
            (self.max_buffered.saturating_sub(budget)).min(self.tap_size() / 2)
        } else {
            self.max_buffered
        };
        pow2_pipe(want.min(self.pipe_max))
    }

    /// Bytes per tap pipe in splice mode: the mirror budget (half the bound with `off`),
    /// within `pipe-max-size` (a tee that does not fit the tap drops the mirror too).
    pub(crate) fn tap_size(&self) -> usize {
        let budget = self.mirror_budget.unwrap_or(self.max_buffered / 2);
        pow2_pipe(budget.min(self.pipe_max))
    }
}

/// The power of two at or below `want`, at least a page.
fn pow2_pipe(want: usize) -> usize {
    1 << want.max(PAGE).ilog2()
}

/// Bind on `core`, report the bound address (or the error) on `ready`, then accept until the
/// gate stops, one task per connection (`common/accept.rs`: the connection cap, back-off when
/// fds run out, the stop).
fn listen_on(
    rt: &Runtime,
    core: usize,
    addr: SocketAddr,
    cfg: Config,
    gate: Gate,
    ready: mpsc::Sender<io::Result<SocketAddr>>,
) {
    rt.spawn_on(core, move || async move {
        let listener = match TcpListener::bind_reuseport(addr) {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let _ = ready.send(listener.local_addr());
        drop(ready);
        let cfg = Rc::new(cfg);
        gate.serve(listener, |stream, conn| {
            conn::serve(stream, Rc::clone(&cfg), conn)
        })
        .await;
    })
    .detach();
}

fn run(args: Args) -> Result<(), String> {
    let cfg = Config::new(&args);
    let rt = Runtime::builder()
        .cores(args.cores)
        .build()
        .map_err(|e| format!("starting {} cores: {e}", args.cores))?;
    // Listen for the stop signals before announcing the address, so a signal sent as soon as
    // the address is known stops the server cleanly.
    let stop = StopSignals::listen(&rt).map_err(|e| format!("listening for signals: {e}"))?;
    let gate = Gate::new("proxy", args.max_connections);
    let (bound, _) = bind_every_core(args.cores, args.listen, |core, addr, ready| {
        listen_on(&rt, core, addr, cfg.clone(), gate.clone(), ready)
    })?;
    let mut out = io::stdout().lock();
    let _ = writeln!(
        out,
        "proxy: listening on {bound} (mode {}, upstream {}, {} mirrors)",
        args.mode,
        args.upstream,
        args.mirrors.len()
    );
    let _ = out.flush();
    drop(out);
    if let Some(period) = args.stats {
        stats::start_printer(period, args.max_buffered);
    }
    let sig = stop.wait().map_err(|e| e.to_string())?;
    eprintln!(
        "proxy: signal {sig}: stopping: no new connections; draining {} for up to {:?}",
        gate.open(),
        args.drain
    );
    gate.stop();
    match gate.drain(args.drain) {
        0 => eprintln!("proxy: drained"),
        n => eprintln!("proxy: --drain-timeout passed: closing {n} connections"),
    }
    rt.shutdown();
    if args.stats.is_some() {
        eprintln!("{}", stats::line(args.max_buffered));
    }
    Ok(())
}

fn main() {
    let args = match args::parse(flags::expand(std::env::args().skip(1))) {
        Ok(Some(a)) => a,
        Ok(None) => {
            let _ = writeln!(io::stdout(), "{}", args::USAGE);
            return;
        }
        Err(e) => {
            eprintln!("proxy: {e}\n\n{}", args::USAGE);
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args) {
        eprintln!("proxy: {e}");
        std::process::exit(1);
    }
}
