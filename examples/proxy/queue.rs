//! Chunks of received bytes and the per-destination queues that fan them out.
//!
//! A [`Chunk`] is one receive's bytes: a buffer-ring [`Lease`] (lease mode) or a `Vec`
//! (copy mode), plus the [`Held`] share of its direction's budget. The reader wraps it in an
//! `Rc` and pushes one clone to each destination's [`Queue`]; each destination's writer sends
//! its queue in order. So the chunk — and the ring buffer under a lease — is released, and its
//! bytes leave the budget, when the slowest destination has sent it.
//!
//! The upstream's queue advances the direction's [`Lead`] as its chunks are sent, a mirror's
//! queue its [`Lag`]; a mirror that falls too far behind is dropped by its writer, which
//! detaches its queue (`mirror.rs`).
//!
//! Invariants:
//! - one reader pushes, one writer pops, both on the connection's task: a queue is a
//!   `RefCell`, never borrowed across an `.await`;
//! - a detached queue (its destination failed or fell behind) drops what it holds and every
//!   later push, so a dead or slow mirror never pins chunks;
//! - progress is counted in chunk `size`s (whole receive buffers: the memory a chunk holds),
//!   once per chunk, when its writer has sent its last byte ([`Queue::sent`]).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use ringleader::buf::{IoBuf, Lease};

use crate::mirror::{Lag, Lead};
use crate::stats::Held;

/// Where a chunk's bytes are.
#[derive(Debug)]
pub(crate) enum Data {
    /// A buffer the kernel picked from the direction's ring.
    Lease(Lease),
    /// A heap buffer a plain recv filled.
    Owned(Vec<u8>),
}

/// One receive's bytes, shared by every destination's queue; immutable once made.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub data: Data,
    held: Held,
}

impl Chunk {
    pub(crate) fn new(data: Data, held: Held) -> Rc<Chunk> {
        Rc::new(Chunk { data, held })
    }

    /// The memory it holds (the whole receive buffer), what budgets count.
    pub(crate) fn size(&self) -> usize {
        self.held.bytes()
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        match &self.data {
            Data::Lease(l) => l,
            Data::Owned(v) => v,
        }
    }
}

/// A chunk's bytes from an offset on, as an owned buffer for the owned-buffer send ops.
#[derive(Debug)]
pub(crate) struct SharedChunk {
    chunk: Rc<Chunk>,
    off: usize,
}

impl SharedChunk {
    /// `chunk.bytes()[off..]` (`off` at most its length).
    pub(crate) fn new(chunk: Rc<Chunk>, off: usize) -> SharedChunk {
        let off = off.min(chunk.bytes().len());
        SharedChunk { chunk, off }
    }
}

// SAFETY: the bytes live in the chunk's `Vec` heap buffer or ring buffer, which the `Rc` keeps
// alive and which never move or change: a chunk is never mutated after it is made (no `&mut`
// to it is ever handed out), so the pointer covers `len - off` initialised bytes until the
// last clone is dropped.
unsafe impl IoBuf for SharedChunk {
    fn stable_ptr(&self) -> *const u8 {
        self.chunk.bytes()[self.off..].as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.chunk.bytes().len() - self.off
    }
    fn bytes_total(&self) -> usize {
        self.bytes_init()
    }
}

#[derive(Default)]
struct State {
    items: VecDeque<Rc<Chunk>>,
    /// The reader is done: pop returns `None` once the queue is empty.
    closed: bool,
    /// The writer is gone: pushes are dropped.
    detached: bool,
    waker: Option<Waker>,
}

/// Whose queue it is, for the progress it reports.
enum Kind<'l> {
    /// The upstream (or, backward, the client): it sets the pace.
    Lead(&'l Lead),
    /// A mirror, measured against the lead.
    Mirror(Lag<'l>),
}

/// One destination's FIFO of chunks.
pub(crate) struct Queue<'l> {
    st: RefCell<State>,
    kind: Kind<'l>,
}

impl<'l> Queue<'l> {
    /// The queue of the destination that sets the pace.
    pub(crate) fn lead(lead: &'l Lead) -> Queue<'l> {
        Queue {
            st: RefCell::default(),
            kind: Kind::Lead(lead),
        }
    }

    /// The queue of a mirror.
    pub(crate) fn mirror(lag: Lag<'l>) -> Queue<'l> {
        Queue {
            st: RefCell::default(),
            kind: Kind::Mirror(lag),
        }
    }

    /// The mirror's lag (`None` for the lead).
    pub(crate) fn lag(&self) -> Option<&Lag<'l>> {
        match &self.kind {
            Kind::Mirror(lag) => Some(lag),
            Kind::Lead(_) => None,
        }
    }

    pub(crate) fn push(&self, chunk: Rc<Chunk>) {
        let waker = {
            let mut st = self.st.borrow_mut();
            if st.detached {
                return;
            }
            if let Some(lag) = self.lag() {
                lag.give(chunk.size());
            }
            st.items.push_back(chunk);
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// No more pushes: the writer finishes what is queued, then sees the end.
    pub(crate) fn close(&self) {
        let waker = {
            let mut st = self.st.borrow_mut();
            st.closed = true;
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The writer sent the last byte of `chunk`.
    pub(crate) fn sent(&self, chunk: &Chunk) {
        match &self.kind {
            Kind::Lead(lead) => lead.advance(chunk.size()),
            Kind::Mirror(lag) => lag.took(chunk.size()),
        }
    }

    /// The destination failed or fell behind: release what is queued and refuse what comes.
    pub(crate) fn detach(&self) {
        let dropped = {
            let mut st = self.st.borrow_mut();
            st.detached = true;
            std::mem::take(&mut st.items)
        };
        // Dropped outside the borrow: a chunk's drop may wake the reader.
        drop(dropped);
    }

    /// Move queued chunks to the end of `into` until it holds `max`, without waiting.
    pub(crate) fn take_ready(&self, into: &mut VecDeque<Rc<Chunk>>, max: usize) {
        let mut st = self.st.borrow_mut();
        while into.len() < max {
            match st.items.pop_front() {
                Some(c) => into.push_back(c),
                None => return,
            }
        }
    }

    /// The next chunk, or `None` once the queue is closed and empty.
    pub(crate) async fn pop(&self) -> Option<Rc<Chunk>> {
        poll_fn(|cx| {
            let mut st = self.st.borrow_mut();
            if let Some(c) = st.items.pop_front() {
                return Poll::Ready(Some(c));
            }
            if st.closed {
                return Poll::Ready(None);
            }
            st.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}
