//! Chunks of received bytes and the per-destination queues that fan them out.
//!
//! A [`Chunk`] is one receive's bytes: a buffer-ring [`Lease`] (lease mode) or a `Vec`
//! (copy mode), plus the [`Held`] share of its direction's budget. The reader wraps it in an
//! `Rc` and pushes one clone to each destination's [`Queue`]; each destination's writer sends
//! its queue in order. So the chunk — and the ring buffer under a lease — is released, and its
//! bytes leave the budget, when the slowest destination has sent it.
//!
//! Invariants:
//! - one reader pushes, one writer pops, both on the connection's task: a queue is a
//!   `RefCell`, never borrowed across an `.await`;
//! - a detached queue (its destination failed) drops what it holds and every later push, so
//!   a dead mirror never pins chunks.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use ringleader::buf::{IoBuf, Lease};

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
    _held: Held,
}

impl Chunk {
    pub(crate) fn new(data: Data, held: Held) -> Rc<Chunk> {
        Rc::new(Chunk { data, _held: held })
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        match &self.data {
            Data::Lease(l) => l,
            Data::Owned(v) => v,
        }
    }
}

/// A chunk as an owned buffer, for the owned-buffer send ops (`write_all`).
#[derive(Debug)]
pub(crate) struct SharedChunk(pub Rc<Chunk>);

// SAFETY: the bytes live in the chunk's `Vec` heap buffer or ring buffer, which the `Rc` keeps
// alive and which never move or change: a chunk is never mutated after it is made (no `&mut`
// to it is ever handed out), so the pointer covers `len` initialised bytes until the last
// clone is dropped.
unsafe impl IoBuf for SharedChunk {
    fn stable_ptr(&self) -> *const u8 {
        self.0.bytes().as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.0.bytes().len()
    }
    fn bytes_total(&self) -> usize {
        self.0.bytes().len()
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

/// One destination's FIFO of chunks.
#[derive(Default)]
pub(crate) struct Queue {
    st: RefCell<State>,
}

impl Queue {
    pub(crate) fn push(&self, chunk: Rc<Chunk>) {
        let waker = {
            let mut st = self.st.borrow_mut();
            if st.detached {
                return;
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

    /// The destination failed: release what is queued and refuse what comes.
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
