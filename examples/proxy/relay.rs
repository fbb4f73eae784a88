//! The lease and copy modes: one reader receives chunks, one writer per destination sends
//! them in order.
//!
//! # Lease mode
//!
//! The reader keeps one multishot `IORING_OP_RECV` with buffer select armed on the source
//! ([`TcpStream::recv_multi`]); every CQE hands over a buffer of the direction's own
//! [`BufRing`] as a [`Lease`]. Each destination's writer sends the leases queued for it
//! straight from the ring buffers: one `IORING_OP_SENDMSG` of up to [`MAX_BATCH`] of them
//! (`ringleader::group::sendv`), or, under `--zc`, one `IORING_OP_SEND_ZC` per lease with
//! `IORING_RECVSEND_FIXED_BUF`; it resumes after short sends. A buffer goes back to the ring
//! when the last destination has sent it. No byte is copied in user space.
//!
//! **Backpressure is the ring.** It has `max_buffered / buf_size` buffers (rounded down to a
//! power of two). While a slow destination holds them all, the kernel finds the ring empty
//! (`ENOBUFS`), the receive waits for a buffer to come back and consumes nothing, so the
//! client's bytes stay in its socket and TCP flow control throttles it.
//!
//! **One ring per connection direction**, not one per core. A shared ring lets one connection
//! whose destination stalls take every buffer, and then every connection on the core waits;
//! a per-connection cap would need one single-shot receive at a time, giving up multishot.
//! Rings are mapped, populated and registered once and then reused: a connection that ends
//! with all its buffers back returns its rings to a small per-core idle list.
//!
//! # Copy mode
//!
//! The baseline: the reader receives into a fresh `Vec` of `buf_size` (`IORING_OP_RECV`,
//! one SQE per receive), and each writer sends that same `Vec` with `write_all`. The reader
//! waits before a receive while the direction's chunks in flight would exceed the bound.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::net::Shutdown;
use std::rc::Rc;

use futures::StreamExt;
use futures::future::{try_join, try_join_all};
use ringleader::buf::{BufRing, Lease};
use ringleader::group::{self, LeaseExt};
use ringleader::net::{OwnedIo, TcpStream};

use crate::Config;
use crate::args::Mode;
use crate::conn::{Peer, Role};
use crate::queue::{Chunk, Data, Queue, SharedChunk};
use crate::stats::{self, Budget};

/// At most this many leases per `SENDMSG` (`group::sendv`): enough to amortise the op, few
/// enough that the leases at the front go back to the ring before the whole batch is through.
const MAX_BATCH: usize = 16;

/// Idle rings kept per core for the next connections.
const IDLE_RINGS: usize = 4;

thread_local! {
    static IDLE: RefCell<Vec<BufRing>> = const { RefCell::new(Vec::new()) };
}

/// A ring for one connection direction: an idle one of this core, or a new one.
fn take_ring(cfg: &Config) -> io::Result<BufRing> {
    if let Some(r) = IDLE.with(|i| i.borrow_mut().pop()) {
        return Ok(r);
    }
    let entries = cfg.ring_entries();
    let ring = if cfg.zc {
        BufRing::new_fixed(entries, cfg.buf_size)
    } else {
        BufRing::new(entries, cfg.buf_size)
    };
    ring.map_err(|e| io::Error::new(e.kind(), format!("buffer ring: {e}")))
}

/// Keep `ring` for a later connection if every buffer is back in it. (A buffer still out is
/// held by a send that was cancelled; the ring is then dropped, and unregistered once that
/// send's final CQE releases it.)
fn give_ring(ring: BufRing) {
    if ring.leased() == 0 {
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
/// connection); a failed mirror is detached and the others go on.
pub(crate) async fn relay(src: &Peer, dsts: &[&Peer], cfg: &Config) -> io::Result<()> {
    let budget = Budget::new(cfg.max_buffered);
    let queues: Vec<Queue> = dsts.iter().map(|_| Queue::default()).collect();
    let ring = match cfg.mode {
        Mode::Lease => Some(take_ring(cfg)?),
        _ => None,
    };
    let reader = async {
        let res = match &ring {
            Some(ring) => read_leases(src, ring, &budget, &queues).await,
            None => read_copies(src, cfg.buf_size, &budget, &queues).await,
        };
        for q in &queues {
            q.close();
        }
        res
    };
    let writers = dsts.iter().zip(&queues).map(|(dst, q)| async move {
        match write_queue(dst, q, cfg.mode, cfg.zc).await {
            Err(e) if dst.role == Role::Mirror => {
                q.detach();
                eprintln!("proxy: {e}; this connection goes on without that mirror");
                Ok(())
            }
            r => r,
        }
    });
    let res = try_join(reader, try_join_all(writers)).await.map(drop);
    if let Some(ring) = ring {
        give_ring(ring);
    }
    res
}

/// Lease mode: every received buffer becomes a chunk for every queue.
async fn read_leases(
    src: &Peer,
    ring: &BufRing,
    budget: &Rc<Budget>,
    queues: &[Queue],
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

/// Copy mode: receive into a new `Vec` whenever the window has room for one.
async fn read_copies(
    src: &Peer,
    buf_size: usize,
    budget: &Rc<Budget>,
    queues: &[Queue],
) -> io::Result<()> {
    loop {
        budget.room(buf_size).await;
        let held = budget.hold(buf_size);
        let (res, buf) = src.sock.read(Vec::with_capacity(buf_size)).await;
        match res.map_err(|e| src.error("recv", e))? {
            0 => return Ok(()),
            _ => {
                let chunk = Chunk::new(Data::Owned(buf), held);
                for q in queues {
                    q.push(Rc::clone(&chunk));
                }
            }
        }
    }
}

/// Send every chunk of `q` to `dst` in order, then shut down its write side.
async fn write_queue(dst: &Peer, q: &Queue, mode: Mode, zc: bool) -> io::Result<()> {
    match (mode, zc) {
        (Mode::Lease, false) => write_batches(dst, q).await?,
        _ => {
            while let Some(chunk) = q.pop().await {
                match &chunk.data {
                    Data::Lease(lease) => send_zc(&dst.sock, lease).await,
                    Data::Owned(_) => dst.sock.write_all(SharedChunk(chunk)).await.0,
                }
                .map_err(|e| dst.error("send", e))?;
            }
        }
    }
    dst.sock
        .shutdown(Shutdown::Write)
        .await
        .map_err(|e| dst.error("shutdown", e))
}

/// Lease mode: send what is queued, up to [`MAX_BATCH`] chunks per `SENDMSG`, resuming
/// after short sends; a chunk leaves `pending` (and is released, once every destination has
/// sent it) as soon as its last byte is sent.
async fn write_batches(dst: &Peer, q: &Queue) -> io::Result<()> {
    let mut pending: VecDeque<Rc<Chunk>> = VecDeque::with_capacity(MAX_BATCH);
    // Bytes of `pending[0]` already sent.
    let mut skip = 0;
    loop {
        if pending.is_empty() {
            match q.pop().await {
                Some(c) => pending.push_back(c),
                None => return Ok(()),
            }
        }
        q.take_ready(&mut pending, MAX_BATCH);
        let views = pending.iter().take(MAX_BATCH).enumerate().map(|(i, c)| {
            let Data::Lease(lease) = &c.data else {
                unreachable!("lease mode queues only leases")
            };
            lease.view(if i == 0 { skip } else { 0 }..)
        });
        let n = group::sendv(&dst.sock, views, 0)
            .await
            .map_err(|e| dst.error("send", e))?;
        if n == 0 {
            return Err(dst.error("send", io::ErrorKind::WriteZero.into()));
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
            pending.pop_front();
        }
    }
}

/// Lease mode with `--zc`: `SEND_ZC` of one lease, from the registered ring buffer,
/// resuming after short sends.
async fn send_zc(sock: &TcpStream, lease: &Lease) -> io::Result<()> {
    let mut off = 0;
    while off < lease.len() {
        let n = sock.send_zc_lease(lease.view(off..)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        off += n;
    }
    Ok(())
}
