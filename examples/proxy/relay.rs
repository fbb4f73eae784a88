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
//! one buffer holds. The direction switches once everything it holds has been sent (so the
//! ring and the heap buffers never hold more than the bound together): it waits for the
//! upstream to send it — the upstream's pace is the client's anyway — but never for a
//! mirror; while only mirrors hold chunks it keeps receiving into heap buffers and tries
//! again after the next receive. Then it takes a ring and keeps one multishot `IORING_OP_RECV` with
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
use std::future::poll_fn;
use std::io;
use std::net::Shutdown;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::Poll;

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
    // The direction's ring, once it has one: given back when every send from it is done.
    let ring = RefCell::new(None);
    let reader = async {
        let res = match cfg.mode {
            Mode::Lease => read_leases(src, cfg, &budget, &lead, &queues, &ring).await,
            _ => read_copies(src, cfg.buf_size, &budget, &queues).await,
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
    let res = try_join(reader, try_join_all(writers)).await.map(drop);
    if let Some(r) = ring.into_inner() {
        give_ring(r);
    }
    res
}

/// Lease mode: heap buffers until the direction carries a stream, then its ring.
///
/// A receive that fills its buffer marks a stream. The ring holds up to the bound by itself,
/// so it is armed only once the heap chunks are all sent (`held == 0`). Waiting for that
/// waits for the upstream (whose pace the client goes at anyway), never for a mirror: if
/// the upstream has sent everything and only mirrors still hold chunks, the reader goes on
/// with heap buffers and tries again after its next receive.
async fn read_leases(
    src: &Peer,
    cfg: &Config,
    budget: &Rc<Budget>,
    lead: &Lead,
    queues: &[Queue<'_>],
    slot: &RefCell<Option<Ring>>,
) -> io::Result<()> {
    let mut pushed = 0;
    let mut stream = false;
    loop {
        if stream && settled(budget, lead, pushed).await {
            break;
        }
        match read_copy(src, cfg.buf_size, budget, queues, &mut pushed).await? {
            Read::Ended => return Ok(()),
            Read::Chunk { full } => stream |= full,
        }
    }
    let Some(ring) = take_ring(cfg)? else {
        // No ring memory left on this core: go on as copy mode does.
        return read_copies(src, cfg.buf_size, budget, queues).await;
    };
    let ring = slot.borrow_mut().insert(ring).0.clone();
    read_ring(src, &ring, budget, queues).await
}

/// Wait until the direction holds nothing (`true`: arm the ring), or until the lead has
/// sent all `pushed` bytes and only mirrors hold chunks (`false`: do not wait for them).
async fn settled(budget: &Budget, lead: &Lead, pushed: u64) -> bool {
    poll_fn(|cx| {
        if budget.is_drained() {
            return Poll::Ready(true);
        }
        if lead.taken() >= pushed {
            return Poll::Ready(false);
        }
        budget.wake_on_change(cx.waker());
        lead.wake_on_advance(cx.waker());
        Poll::Pending
    })
    .await
}

/// How a heap receive ended.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    /// The source's end of stream.
    Ended,
    /// Bytes, queued for every destination; `full` if they filled the buffer.
    Chunk { full: bool },
}

/// Copy mode: heap receives until the source ends.
async fn read_copies(
    src: &Peer,
    buf_size: usize,
    budget: &Rc<Budget>,
    queues: &[Queue<'_>],
) -> io::Result<()> {
    let mut pushed = 0;
    while read_copy(src, buf_size, budget, queues, &mut pushed).await? != Read::Ended {}
    Ok(())
}

/// Once the budget has room for a buffer, receive into a new `Vec` of `buf_size` and queue
/// it for every destination (adding its size to `pushed`).
async fn read_copy(
    src: &Peer,
    buf_size: usize,
    budget: &Rc<Budget>,
    queues: &[Queue<'_>],
    pushed: &mut u64,
) -> io::Result<Read> {
    budget.room(buf_size).await;
    let held = budget.hold(buf_size);
    let (res, buf) = src.sock.read_owned(Vec::with_capacity(buf_size)).await;
    let n = res.map_err(|e| src.error("recv", e))?;
    if n == 0 {
        return Ok(Read::Ended);
    }
    src.touch();
    let chunk = Chunk::new(Data::Owned(buf), held);
    *pushed += chunk.size() as u64;
    for q in queues {
        q.push(Rc::clone(&chunk));
    }
    Ok(Read::Chunk {
        full: n == buf_size,
    })
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
        src.touch();
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
                dst.sock.write_all_owned(front).await.0.map(|()| len)
            }
            Data::Owned(_) => {
                let front = SharedChunk::new(Rc::clone(&pending[0]), skip);
                dst.sock.write_owned(front).await.0
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
        dst.touch();
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
