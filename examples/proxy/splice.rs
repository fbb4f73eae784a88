//! The splice mode: the data stays in kernel pages, from the source socket to every
//! destination socket; the proxy never maps it.
//!
//! # Client to upstream and mirrors
//!
//! Per connection, one *main* pipe of `P` bytes and, per mirror, a *tap* pipe of `T` bytes
//! and a *drainer*. A round:
//!
//! 1. **fill**: a [`PipeGroup`] leader `SPLICE`s up to `P` bytes from the client into the
//!    (empty) main pipe;
//! 2. **fan out**: a [`PipeGroup`] on the main pipe `TEE`s its `n` bytes into each mirror's
//!    tap (page references, no copy), then `SPLICE`s them to the upstream; a short splice to
//!    the upstream is finished from what is left in the pipe;
//! 3. meanwhile each drainer `SPLICE`s its tap to its mirror, round after round, on its own.
//!
//! **A mirror never holds the client back.** Its tap (`T` bytes: the mirror budget, within
//! `pipe-max-size`) holds what it is behind, and `P <= T / 2`, so a mirror that is a round
//! behind still takes the next one whole. A mirror that falls more than `--mirror-budget`
//! behind the upstream, whose tee comes up short (its tap's slots are full), or that takes
//! nothing for `--mirror-timeout`, is dropped (`mirror.rs`); the upstream path never waits
//! for a tap. `TEE` copies from the *start* of the main pipe and stops when the tap is full,
//! so a short tee cannot be resumed: the mirror would see a hole, hence the drop. With
//! `--mirror-budget off` the fan-out waits instead for each tap to be empty before teeing
//! into it, so the mirror gets everything and slows the client, up to its stall timeout.
//!
//! **Backpressure** is the main pipe: a slow upstream keeps it full, the next fill waits, and
//! the client's bytes stay in its socket. The direction holds at most the main pipe plus the
//! most any tap holds (tees share pages): `P + budget <= --max-buffered`.
//!
//! # No waiting in io-wq
//!
//! The kernel runs every splice and tee in an io-wq worker. On blocking fds a splice blocks
//! its worker until data (or room) comes: a thread per idle connection, and under the
//! runtime's cap on io-wq workers, splices of busy connections queued behind idle ones. So
//! every socket and pipe here is non-blocking (`conn.rs` sets the sockets): a splice moves
//! what it can and returns, `EAGAIN` if nothing; the proxy then waits for readiness with a
//! poll in the ring (`poll.rs`), which takes no thread, and tries again. A fill after one that
//! filled its pipe, and every drain, is tried first and polls only if it finds nothing to do,
//! so a busy stream costs few polls; other fills wait for readiness first, so an idle source
//! costs no splice.
//!
//! # Pipes are lent, not owned
//!
//! A direction takes its main pipe from a small per-core pool when its source has data, and
//! gives it back (empty) when the source has nothing more for now ([`PipeSlot`]): an idle
//! connection holds no pipe, so it costs its two sockets and nothing else (four fds fewer,
//! which is what lets 10,000 connections fit in 20,000 fds). A stream keeps its pipe from
//! round to round. When the process is out of fds, a fill waits for a pipe another
//! connection gives back (or for a connection to end) instead of failing its connection.
//! Taps stay with their mirror: they hold what it is behind.
//!
//! # Upstream to client
//!
//! One pipe: fill it from the upstream, drain it to the client, repeat.

use std::cell::{Cell, RefCell};
use std::future::{IntoFuture, poll_fn};
use std::io;
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Poll, Waker};

use futures::future::{Either, join, join_all, select};
use ringleader::buf::PipeLease;
use ringleader::group::PipeGroup;

use crate::Config;
use crate::conn::Peer;
use crate::mirror::{self, Lag, Lead, Why};
use crate::poll::{self, would_block};
use crate::stats::{self, Budget};

/// What the fan-out and a mirror's drainer share: its lag and the tee target.
struct Tap<'p> {
    peer: &'p Peer,
    /// The fan-out, waiting for the tap to empty (`--mirror-budget off`).
    room_waker: RefCell<Option<Waker>>,
    /// A duplicate of the tap pipe's write end, as the tee's target; taken when the mirror
    /// is dropped, so the pipe (and the pages it holds) goes with the drainer.
    w: RefCell<Option<Rc<OwnedFd>>>,
    lag: Lag<'p>,
    /// A tee put bytes in the tap since the drainer last looked.
    pending: Cell<bool>,
    /// The client's stream ended: the drainer empties the tap, then shuts the mirror down.
    closed: Cell<bool>,
    /// The drainer, waiting for bytes.
    waker: RefCell<Option<Waker>>,
}

impl<'p> Tap<'p> {
    fn new(peer: &'p Peer, pipe: &PipeLease, lag: Lag<'p>) -> io::Result<Tap<'p>> {
        let w = Rc::new(pipe.write_fd().try_clone_to_owned()?);
        Ok(Tap {
            peer,
            room_waker: RefCell::new(None),
            w: RefCell::new(Some(w)),
            lag,
            pending: Cell::new(false),
            closed: Cell::new(false),
            waker: RefCell::new(None),
        })
    }

    fn wake(&self) {
        self.pending.set(true);
        let waker = self.waker.borrow_mut().take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Still in the fan-out: then `n` more bytes are on their way to it.
    fn takes(&self, n: usize) -> bool {
        let live = self.w.borrow().is_some() && !self.lag.is_condemned();
        if live {
            self.lag.give(n);
        }
        live
    }

    /// The drainer moved bytes (or the mirror was dropped): a waiting fan-out looks again.
    fn wake_fan_out(&self) {
        let waker = self.room_waker.borrow_mut().take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// `--mirror-budget off`: wait until the tap is empty or the mirror dropped.
    async fn empty(&self) {
        poll_fn(|cx| {
            if self.lag.waiting() == 0 || self.w.borrow().is_none() || self.lag.is_condemned() {
                return Poll::Ready(());
            }
            *self.room_waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }

    /// The tee of a round of `n` bytes moved `res`.
    fn teed(&self, res: io::Result<usize>, n: usize) {
        match res {
            Ok(k) if k == n => self.wake(),
            // The tap's slots were full: the round does not fit whole, and cannot be resumed.
            Ok(k) => self
                .lag
                .condemn(Why::Failed(self.peer.error("tee", short(k, n)))),
            Err(e) => self.lag.condemn(Why::Failed(self.peer.error("tee", e))),
        }
    }
}

/// Empty pipes kept per core for the next fills.
const IDLE_PIPES: usize = 64;

thread_local! {
    /// (requested size, pipe): every pipe here is empty.
    static PIPES: RefCell<Vec<(usize, PipeLease)>> = const { RefCell::new(Vec::new()) };
    /// Fills waiting for a pipe while the process is out of fds.
    static PIPE_WAITERS: RefCell<Vec<Waker>> = const { RefCell::new(Vec::new()) };
}

/// A direction's main pipe while it moves data: taken from the core's pool when the source
/// has data, given back when it has none (see the module docs).
struct PipeSlot {
    pipe: Option<PipeLease>,
    size: usize,
    /// The last fill filled the pipe: the source likely has more, so the next fill splices
    /// at once instead of waiting for readiness first.
    eager: bool,
}

impl PipeSlot {
    fn new(size: usize) -> PipeSlot {
        PipeSlot {
            pipe: None,
            size,
            eager: false,
        }
    }

    /// The pipe in hand (after a fill).
    fn held(&mut self) -> &mut PipeLease {
        self.pipe
            .as_mut()
            .expect("a fill leaves its pipe in the slot")
    }

    /// Get a pipe if none is in hand: an idle one of this core, or a new one; when the
    /// process is out of fds, wait for one that another connection gives back (or for a
    /// connection to end) instead of failing this one.
    async fn acquire(&mut self) -> io::Result<&mut PipeLease> {
        let size = self.size;
        poll_fn(|cx| {
            if self.pipe.is_some() {
                return Poll::Ready(Ok(()));
            }
            let idle = PIPES.with(|p| {
                let mut pool = p.borrow_mut();
                let i = pool.iter().position(|(s, _)| *s == size)?;
                stats::IDLE_PIPES.fetch_sub(1, Relaxed);
                Some(pool.swap_remove(i).1)
            });
            match idle.map_or_else(|| new_pipe(size), Ok) {
                Ok(p) => {
                    self.pipe = Some(p);
                    Poll::Ready(Ok(()))
                }
                Err(e) if out_of_fds(&e) => {
                    PIPE_WAITERS.with(|w| w.borrow_mut().push(cx.waker().clone()));
                    Poll::Pending
                }
                Err(e) => Poll::Ready(Err(e)),
            }
        })
        .await?;
        Ok(self.held())
    }

    /// Give the pipe back to the pool if it is empty (one with bytes left in it after a
    /// failure is closed instead).
    fn release(&mut self) {
        let Some(pipe) = self.pipe.take() else { return };
        if pipe.is_empty().unwrap_or(false) {
            PIPES.with(|p| {
                let mut pool = p.borrow_mut();
                if pool.len() < IDLE_PIPES {
                    stats::IDLE_PIPES.fetch_add(1, Relaxed);
                    pool.push((self.size, pipe));
                }
            });
        }
        wake_pipe_waiters();
    }
}

impl Drop for PipeSlot {
    fn drop(&mut self) {
        self.release();
        // The direction is over: its connection's fds go too.
        wake_pipe_waiters();
    }
}

/// Wake every fill that waits for a pipe (each tries again; outside any borrow).
fn wake_pipe_waiters() {
    let waiters = PIPE_WAITERS.with(|w| std::mem::take(&mut *w.borrow_mut()));
    for w in waiters {
        w.wake();
    }
}

/// Whether `e` says the process (`EMFILE`) or the system (`ENFILE`) is out of fds. The
/// pipe's constructor keeps the errno only in its message, hence the second look.
fn out_of_fds(e: &io::Error) -> bool {
    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
        return true;
    }
    let text = e.to_string();
    [libc::EMFILE, libc::ENFILE]
        .iter()
        .any(|n| text.contains(&format!("(os error {n})")))
}

/// A pipe of at least `size` bytes whose ends do not block (see the module docs).
fn new_pipe(size: usize) -> io::Result<PipeLease> {
    let pipe = PipeLease::new(size).map_err(|e| io::Error::new(e.kind(), format!("pipe: {e}")))?;
    poll::set_nonblocking(pipe.read_fd())?;
    poll::set_nonblocking(pipe.write_fd())?;
    Ok(pipe)
}

/// Relay `src` (the client) to `upstream` and every mirror until `src` ends, then shut down
/// their write sides. See the module docs.
pub(crate) async fn forward(
    src: &Peer,
    upstream: &Peer,
    mirrors: &[Peer],
    cfg: &Config,
) -> io::Result<()> {
    let size = cfg.pipe_size(!mirrors.is_empty());
    let budget = Budget::new(cfg.max_buffered);
    let mut slot = PipeSlot::new(size);
    let lead = Lead::default();
    let mut pipes = Vec::with_capacity(mirrors.len());
    let mut taps = Vec::with_capacity(mirrors.len());
    for m in mirrors {
        let pipe = new_pipe(cfg.tap_size())?;
        taps.push(Tap::new(m, &pipe, Lag::new(&lead, cfg.mirror_budget))?);
        pipes.push(pipe);
    }
    // What the budget counts for the taps: the most any one holds (tees share pages).
    let in_taps = Cell::new(0);
    let sync = || {
        let now = taps
            .iter()
            .filter(|t| t.w.borrow().is_some())
            .map(|t| t.lag.waiting() as usize)
            .max()
            .unwrap_or(0);
        let was = in_taps.replace(now);
        budget.add(now.saturating_sub(was));
        budget.sub(was.saturating_sub(now));
    };
    let fan_out = async {
        loop {
            let n = fill(&mut slot, src, size).await?;
            if n == 0 {
                break;
            }
            let main = slot.held();
            budget.add(n);
            if cfg.mirror_budget.is_none() {
                join_all(taps.iter().map(Tap::empty)).await;
            }
            let live: Vec<&Tap> = taps.iter().filter(|t| t.takes(n)).collect();
            let mut group = PipeGroup::new(main);
            for t in &live {
                if let Some(w) = &*t.w.borrow() {
                    group = group.tee_to(w);
                }
            }
            let out = group.drain_to(&upstream.sock, None).await;
            let mut results = out.members.into_iter();
            for t in &live {
                let res = results.next().unwrap_or_else(|| Err(short(0, n)));
                t.teed(res, n);
            }
            sync();
            match results.next() {
                Some(Ok(k)) if k == n => upstream.touch(),
                // Short, or the upstream's socket was full: the rest is still in the pipe.
                Some(Ok(_)) => drain(slot.held(), upstream, None).await?,
                Some(Err(e)) if would_block(&e) => drain(slot.held(), upstream, None).await?,
                Some(Err(e)) => return Err(upstream.error("splice to", e)),
                None => return Err(upstream.error("splice to", short(0, n))),
            }
            lead.advance(n);
            budget.sub(n);
        }
        for t in &taps {
            t.closed.set(true);
            t.wake();
        }
        upstream
            .sock
            .shutdown(Shutdown::Write)
            .await
            .map_err(|e| upstream.error("shutdown", e))
    };
    let drainers = join_all(
        taps.iter()
            .zip(pipes)
            .map(|(t, pipe)| drain_tap(t, pipe, cfg, &sync)),
    );
    let (res, _) = join(fan_out, drainers).await;
    res
}

/// A mirror's drainer: splice its tap to it as bytes come, until the stream ends (then shut
/// down its write side) or the mirror is dropped. Never fails the connection.
async fn drain_tap(tap: &Tap<'_>, mut pipe: PipeLease, cfg: &Config, sync: &impl Fn()) {
    let work = async {
        loop {
            // Woken by a tee or the end; each wake-up is used once, so an empty tap (its
            // bytes drained with an earlier round's) just waits again.
            poll_fn(|cx| {
                if tap.pending.replace(false) || tap.closed.get() {
                    return Poll::Ready(());
                }
                *tap.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            })
            .await;
            drain(&mut pipe, tap.peer, Some(&tap.lag)).await?;
            sync();
            tap.wake_fan_out();
            // After the end every tee is done: once the tap is empty, so is the stream.
            if tap.closed.get() && pipe.is_empty()? {
                return tap.peer.sock.shutdown(Shutdown::Write).await;
            }
        }
    };
    let work = pin!(work);
    let over = pin!(tap.lag.over());
    let stalled = pin!(tap.lag.stalled(cfg.mirror_timeout));
    let why = match select(work, select(over, stalled)).await {
        Either::Left((Ok(()), _)) => return,
        Either::Left((Err(e), _)) => Why::Failed(e),
        Either::Right((Either::Left((why, _)) | Either::Right((why, _)), _)) => why,
    };
    tap.lag.condemn(Why::Gone);
    tap.w.borrow_mut().take();
    sync();
    tap.wake_fan_out();
    mirror::drop_mirror(tap.peer, why);
}

/// Relay `src` (the upstream) to `dst` (the client) until `src` ends, then shut down `dst`'s
/// write side.
pub(crate) async fn backward(src: &Peer, dst: &Peer, cfg: &Config) -> io::Result<()> {
    let size = cfg.pipe_size(false);
    let budget = Budget::new(cfg.max_buffered);
    let mut slot = PipeSlot::new(size);
    loop {
        let n = fill(&mut slot, src, size).await?;
        if n == 0 {
            break;
        }
        budget.add(n);
        drain(slot.held(), dst, None).await?;
        budget.sub(n);
    }
    dst.sock
        .shutdown(Shutdown::Write)
        .await
        .map_err(|e| dst.error("shutdown", e))
}

/// Splice up to `len` bytes from `src` into the slot's (empty) pipe; `Ok(0)` at its end of
/// stream. If the last fill filled the pipe, `src` likely has more: splice at once.
/// Otherwise give the pipe back to the pool, wait for `src` to be readable (a poll in the
/// ring, no thread), then take a pipe and splice; `EAGAIN` (nothing after all) waits again.
async fn fill(slot: &mut PipeSlot, src: &Peer, len: usize) -> io::Result<usize> {
    let mut ready = slot.eager && slot.pipe.is_some();
    loop {
        if !ready {
            slot.release();
            poll::readable(&src.sock)
                .await
                .map_err(|e| src.error("poll", e))?;
        }
        let out = PipeGroup::new(slot.acquire().await?)
            .splice_from(&src.sock, None, len)
            .into_future()
            .await;
        match out.leader {
            Ok(n) => {
                slot.eager = n == len;
                src.touch();
                return Ok(n);
            }
            Err(e) if would_block(&e) => ready = false,
            Err(e) => return Err(src.error("splice from", e)),
        }
    }
}

/// Splice everything in `pipe` to `dst`, waiting for room when its socket is full; each move
/// counts in `lag` (a mirror's).
async fn drain(pipe: &mut PipeLease, dst: &Peer, lag: Option<&Lag<'_>>) -> io::Result<()> {
    while pipe.len()? > 0 {
        let out = PipeGroup::new(pipe).drain_to(&dst.sock, None).await;
        match out.members.into_iter().next() {
            Some(Ok(0)) | None => return Err(dst.error("splice to", short(0, 1))),
            Some(Ok(k)) => {
                dst.touch();
                if let Some(lag) = lag {
                    lag.took(k);
                }
            }
            Some(Err(e)) if would_block(&e) => {
                poll::writable(&dst.sock)
                    .await
                    .map_err(|e| dst.error("poll", e))?;
            }
            Some(Err(e)) => return Err(dst.error("splice to", e)),
        }
    }
    Ok(())
}

#[cold] // A tee into a full tap, or a splice that moved nothing from a non-empty pipe.
fn short(k: usize, n: usize) -> io::Error {
    io::Error::new(io::ErrorKind::WriteZero, format!("moved {k} of {n} bytes"))
}
