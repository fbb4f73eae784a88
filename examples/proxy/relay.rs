//! The lease and copy modes: one reader receives chunks, one writer per destination sends
//! them in order.
//!
//! # Lease mode
//!
//! A connection direction starts **without a buffer ring**: single-shot `IORING_OP_RECV`s
//! into heap buffers of `buf_size`, sent from those same buffers (as copy mode does). Most
//! connections are short — a request and a response — and a ring for each would cost more
//! than it saves: a ring's buffers are mapped and populated up front (`2 x max_buffered` per
//! connection, 8 MiB with the defaults), which made a burst of 1,000 short connections take
//! 11-34 s where copy mode took 1.2 s (`docs/proxy.md`, "Short connections").
//!
//! A receive that **fills its whole buffer** shows a stream: the sender had more queued than
//! one buffer holds. The direction then waits until what it holds has been sent (so the
//! bound holds across the switch), takes a ring and keeps one multishot `IORING_OP_RECV` with
//! buffer select armed on the source (`TcpStream::recv_multi`); every CQE hands over a
//! buffer of the direction's own [`BufRing`] as a `Lease`. Each destination's writer sends
//! the leases queued for it straight from the ring buffers: one `IORING_OP_SENDMSG` of up to
//! [`MAX_BATCH`] of them (`ringleader::group::sendv`), or, under `--zc`, one
//! `IORING_OP_SEND_ZC` per lease with `IORING_RECVSEND_FIXED_BUF`; it resumes after short
//! sends. A buffer goes back to the ring when the last destination has sent it. No byte is
//! copied in user space, in either phase.
//!
//! **Backpressure is the ring.** It has `max_buffered / buf_size` buffers (rounded down to a
//! power of two). While slow destinations hold them all, the kernel finds the ring empty
//! (`ENOBUFS`), the receive waits for a buffer to come back and consumes nothing, so the
//! client's bytes stay in its socket and TCP flow control throttles it. Before the switch the
//! reader waits for room in the direction's budget, as copy mode does.
//!
//! **One ring per streaming connection direction**, not one per core. A shared ring lets one
//! connection whose destination stalls take every buffer, and then every connection on the
//! core waits; a per-connection cap would need one single-shot receive at a time, giving up
//! multishot. Rings are reused: a connection that ends with all its buffers back returns its
//! ring to a small per-core idle list. A core maps at most `--ring-memory` of rings; a
//! stream that finds none left stays on heap buffers (copy mode's speed, not an error).
//!
//! # Copy mode
//!
//! The baseline: the reader receives into a fresh `Vec` of `buf_size` (`IORING_OP_RECV`,
//! one SQE per receive), and each writer sends that same `Vec` with `write_all`. The reader
//! waits before a receive while the direction's chunks in flight would exceed the bound.
//!
//! # Mirrors
//!
//! A mirror may fall `--mirror-budget` behind the upstream, and stall for `--mirror-timeout`
//! (`mirror.rs`): a mirror past either is dropped, its chunks released, and the connection
//! goes on. Sends to a mirror are plain (partial) sends, so every byte it takes counts as
//! progress.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::net::Shutdown;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;

use futures::StreamExt;
use futures::future::{Either, select, try_join, try_join_all};
use ringleader::buf::BufRing;
use ringleader::group::{self, LeaseExt};
use ringleader::net::OwnedIo;

use crate::Config;
use crate::args::Mode;
use crate::conn::{Peer, Role};
use crate::mirror::{self, Lag, Lead, Why};
use crate::queue::{Chunk, Data, Queue, SharedChunk};
use crate::stats::{self, Budget};

/// At most this many leases per `SENDMSG` (`group::sendv`): enough to amortise the op, few
/// enough that the leases at the front go back to the ring before the whole batch is through.
const MAX_BATCH: usize = 16;

/// Idle rings kept per core for the next streams.
const IDLE_RINGS: usize = 4;

thread_local! {
    static IDLE: RefCell<Vec<Ring>> = const { RefCell::new(Vec::new()) };
    /// Rings of this core alive now (in use, idle, or waiting for a cancelled send's CQE).
    static LIVE: Cell<usize> = const { Cell::new(0) };
}

/// A ring of this core's budget: counted in [`LIVE`] and `--stats` while it lives.
struct Ring(BufRing);

impl Drop for Ring {
    fn drop(&mut self) {
        LIVE.with(|l| l.set(l.get() - 1));
        stats::RINGS.fetch_sub(1, Relaxed);
    }
}

/// A ring for one connection direction: an idle one of this core, a new one, or `None` if
/// the core's rings already use `--ring-memory`.
fn take_ring(cfg: &Config) -> io::Result<Option<Ring>> {
    if let Some(r) = IDLE.with(|i| i.borrow_mut().pop()) {
        return Ok(Some(r));
    }
    let entries = cfg.ring_entries();
    let bytes = usize::from(entries) * cfg.buf_size;
    if (LIVE.with(Cell::get) + 1) * bytes > cfg.ring_memory {
        return Ok(None);
    }
    let ring = if cfg.zc {
        BufRing::new_fixed(entries, cfg.buf_size)
    } else {
        BufRing::new(entries, cfg.buf_size)
    };
    let ring = ring.map_err(|e| io::Error::new(e.kind(), format!("buffer ring: {e}")))?;
    LIVE.with(|l| l.set(l.get() + 1));
    stats::RINGS.fetch_add(1, Relaxed);
    Ok(Some(Ring(ring)))
}

/// Keep `ring` for a later stream if every buffer is back in it. (A buffer still out is
/// held by a send that was cancelled; the ring is then dropped, and unregistered once that
/// send's final CQE releases it.)
fn give_ring(ring: Ring) {
    if ring.0.leased() == 0 {
        IDLE.with(|i| {
            let mut idle = i.borrow_mut();
            if idle.len() < IDLE_RINGS {
                idle.push(ring);
            }
        });
    }
}

/// Relay `src` to every peer of `dsts` until `src` ends, then shut down their write sides.
///
/// An error of the source or of a non-mirror destination ends the direction (and so the
/// connection); a mirror that fails or falls behind is dropped and the others go on.
pub(crate) async fn relay(src: &Peer, dsts: &[&Peer], cfg: &Config) -> io::Result<()> {
    let budget = Budget::new(cfg.max_buffered);
    let lead = Lead::default();
    let queues: Vec<Queue> = dsts
        .iter()
        .map(|d| match d.role {
            Role::Mirror => Queue::mirror(Lag::new(&lead, cfg.mirror_budget)),
            _ => Queue::lead(&lead),
        })
        .collect();
    let reader = async {
        let res = match cfg.mode {
            Mode::Lease => read_leases(src, cfg, &budget, &queues).await,
            _ => read_copies(src, cfg.buf_size, &budget, &queues, false)
                .await
                .map(drop),
        };
        for q in &queues {
            q.close();
        }
        res
    };
    let writers = dsts.iter().zip(&queues).map(|(dst, q)| async move {
        match q.lag() {
            Some(lag) => {
                let work = pin!(write_queue(dst, q, cfg));
                let over = pin!(lag.over());
                let stalled = pin!(lag.stalled(cfg.mirror_timeout));
                let why = match select(work, select(over, stalled)).await {
                    Either::Left((Ok(()), _)) => return Ok(()),
                    Either::Left((Err(e), _)) => Why::Failed(e),
                    Either::Right((Either::Left((why, _)) | Either::Right((why, _)), _)) => why,
                };
                q.detach();
                mirror::drop_mirror(dst, why);
                Ok(())
            }
            None => write_queue(dst, q, cfg).await,
        }
    });
    try_join(reader, try_join_all(writers)).await.map(drop)
}

/// Lease mode: heap buffers until a receive fills one, then the direction's ring.
async fn read_leases(
    src: &Peer,
    cfg: &Config,
    budget: &Rc<Budget>,
    queues: &[Queue<'_>],
) -> io::Result<()> {
    if read_copies(src, cfg.buf_size, budget, queues, true).await? == Phase::Ended {
        return Ok(());
    }
    let Some(ring) = take_ring(cfg)? else {
        // No ring memory left on this core: go on as copy mode does.
        return read_copies(src, cfg.buf_size, budget, queues, false)
            .await
            .map(drop);
    };
    // The ring holds up to the bound by itself: let what the heap phase holds go first.
    budget.drained().await;
    let res = read_ring(src, &ring.0, budget, queues).await;
    give_ring(ring);
    res
}

/// How a run of heap-buffer receives ended.
#[derive(Debug, PartialEq, Eq)]
enum Phase {
    /// The source's end of stream.
    Ended,
    /// A receive filled its whole buffer (asked to stop there).
    Stream,
}

/// Receive into a new `Vec` of `buf_size` whenever the budget has room for one, and queue it
/// for every destination; with `until_full`, stop after a receive that fills its buffer.
async fn read_copies(
    src: &Peer,
    buf_size: usize,
    budget: &Rc<Budget>,
    queues: &[Queue<'_>],
    until_full: bool,
) -> io::Result<Phase> {
    loop {
        budget.room(buf_size).await;
        let held = budget.hold(buf_size);
        let (res, buf) = src.sock.read(Vec::with_capacity(buf_size)).await;
        let n = res.map_err(|e| src.error("recv", e))?;
        if n == 0 {
            return Ok(Phase::Ended);
        }
        let chunk = Chunk::new(Data::Owned(buf), held);
        for q in queues {
            q.push(Rc::clone(&chunk));
        }
        if until_full && n == buf_size {
            return Ok(Phase::Stream);
        }
    }
}

/// Every buffer the multishot receive fills becomes a chunk for every queue.
async fn read_ring(
    src: &Peer,
    ring: &BufRing,
    budget: &Rc<Budget>,
    queues: &[Queue<'_>],
) -> io::Result<()> {
    let mut incoming = src.sock.recv_multi(ring);
    let mut starved = ring.starved();
    while let Some(lease) = incoming.next().await {
        let lease = lease.map_err(|e| src.error("recv", e))?;
        // Buffers the ring ran out of since the last one: each was a backpressure stop.
        let now = ring.starved();
        stats::throttled(now - starved);
        starved = now;
        let chunk = Chunk::new(Data::Lease(lease), budget.hold(ring.buf_size()));
        for q in queues {
            q.push(Rc::clone(&chunk));
        }
    }
    stats::throttled(ring.starved() - starved);
    Ok(())
}

/// Send every chunk of `q` to `dst` in order, then shut down its write side.
async fn write_queue(dst: &Peer, q: &Queue<'_>, cfg: &Config) -> io::Result<()> {
    let mirror = q.lag().is_some();
    let mut pending: VecDeque<Rc<Chunk>> = VecDeque::with_capacity(MAX_BATCH);
    // Bytes of `pending[0]` already sent.
    let mut skip = 0;
    loop {
        if pending.is_empty() {
            match q.pop().await {
                Some(c) => pending.push_back(c),
                None => break,
            }
        }
        q.take_ready(&mut pending, MAX_BATCH);
        let n = match &pending[0].data {
            // Copy mode and the first chunks of lease mode. The upstream and the client get
            // `write_all` (one op however the socket drains); a mirror plain sends, so each
            // byte it takes shows as progress.
            Data::Owned(_) if !mirror => {
                let front = SharedChunk::new(Rc::clone(&pending[0]), skip);
                let len = pending[0].bytes().len() - skip;
                dst.sock.write_all(front).await.0.map(|()| len)
            }
            Data::Owned(_) => {
                let front = SharedChunk::new(Rc::clone(&pending[0]), skip);
                dst.sock.write(front).await.0
            }
            Data::Lease(lease) if cfg.zc => dst.sock.send_zc_lease(lease.view(skip..)).await,
            Data::Lease(_) => {
                // Up to MAX_BATCH leases from the front, in one SENDMSG.
                let views = pending
                    .iter()
                    .take(MAX_BATCH)
                    .map_while(|c| match &c.data {
                        Data::Lease(l) => Some(l),
                        Data::Owned(_) => None,
                    })
                    .enumerate()
                    .map(|(i, l)| l.view(if i == 0 { skip } else { 0 }..));
                group::sendv(&dst.sock, views, 0).await
            }
        }
        .map_err(|e| dst.error("send", e))?;
        if n == 0 {
            return Err(dst.error("send", io::ErrorKind::WriteZero.into()));
        }
        if let Some(lag) = q.lag() {
            lag.progressed();
        }
        let mut done = skip + n;
        skip = 0;
        while let Some(front) = pending.front() {
            let len = front.bytes().len();
            if done < len {
                skip = done;
                break;
            }
            done -= len;
            q.sent(front);
            pending.pop_front();
        }
    }
    dst.sock
        .shutdown(Shutdown::Write)
        .await
        .map_err(|e| dst.error("shutdown", e))
}
