//! The reply writer: one task per connection that puts whole reply frames on the wire, in
//! the order requests finished.
//!
//! Request tasks finish in any order (the protocol allows replies out of order) and push a
//! [`Frame`] each. Frames must never interleave on the wire, and concurrent sends on one TCP
//! socket may (a send that meets a full socket buffer is resumed later, after another op's
//! bytes). So every send of the connection goes through its [`Lane`]: the writer's, and
//! those of READ groups (`conn.rs`, `read_as_group`), which the ring pushes at the read's
//! completion without this task. The lane runs them one after another, whole. The writer
//! takes every frame queued since its last send and:
//!
//! - copies small frames (heads, error messages, data up to [`COPY_MAX`]) into one batch
//!   buffer sent with one `IORING_OP_SEND`: at queue depth 32, the replies that completed in
//!   one tick of the core leave in one op;
//! - sends larger data straight from its block after the batch so far (`IORING_OP_SEND`, or
//!   `IORING_OP_SEND_ZC` with the lease's fixed buffer from `--zc-threshold` bytes up), so
//!   big reads are never copied in user space. That reply is two sends, the batch ending in
//!   its head and then its data, so both go in one [`Lane::frame`]: a READ group's reply,
//!   which enters the lane whenever its read completes, can never come between them.
//!
//! # Thresholds, measured
//!
//! `qemu-img bench` reads through this server on loopback (Linux 6.18, 2-vCPU VM, noisy
//! host; server CPU time per I/O, three interleaved runs each):
//!
//! - 64 KiB reads, QD 16: copying the data into the batch costs 28-34 µs of server CPU per
//!   read, sending it on its own 38-48 µs: one large send of several replies beats a send per
//!   reply, so [`COPY_MAX`] is 64 KiB.
//! - 1 MiB reads, QD 8: a plain send from the block 300-500 µs/read and 1.2-1.9 GB/s;
//!   copying into the batch 360-580 µs; `SEND_ZC` from the fixed buffer 500-630 µs and half
//!   the throughput. On loopback the kernel copies zero-copy sends anyway and adds the
//!   notification, so `SEND_ZC` never wins there: it is off unless `--zc-threshold` is given
//!   (for a real NIC, where it avoids the copy; measure there).
//!
//! A frame's [`Permit`](crate::conn::Permit) is released when the frame has been sent (or
//! dropped), which is what bounds a connection's memory. If a send fails the peer is gone:
//! the writer shuts the socket down (ending the reader too) and drops every later frame.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io;
use std::net::Shutdown;
use std::rc::Rc;
use std::task::{Poll, Waker};

use ringleader::net::{OwnedIo, TcpStream};
use ringleader::ops::Lane;

use crate::block::Block;
use crate::conn::Permit;
use crate::limits::Signal;
use crate::proto::Head;
use crate::splice::Spliced;

/// Data up to this size is copied into the batch instead of being sent on its own: a
/// 64 KiB copy costs less than an extra send op and its wake-up (see `bench/src/bin/nbd.rs`).
pub const COPY_MAX: usize = 64 << 10;
/// Flush the batch once it holds this much.
const BATCH_MAX: usize = 256 << 10;

/// One reply: a head, an optional short static tail (an error message), optional data.
pub struct Frame {
    pub head: Head,
    pub tail: &'static [u8],
    pub data: Option<Data>,
    pub permit: Option<Permit>,
}

/// A reply's data: in memory, or in a pipe's pages (`splice.rs`).
pub enum Data {
    Block(Block),
    Pipe(Spliced),
}

impl From<Block> for Data {
    fn from(block: Block) -> Data {
        Data::Block(block)
    }
}

impl Data {
    /// Sent on its own after the head (else copied into the batch).
    fn sent_alone(&self) -> bool {
        match self {
            Data::Block(b) => b.len() > COPY_MAX,
            Data::Pipe(_) => true,
        }
    }

    /// Send it whole in `frame` (see [`Block::send_all`] and [`Spliced::send`]).
    async fn send(self, stream: &TcpStream, frame: Lane, zc_threshold: usize) -> io::Result<()> {
        match self {
            Data::Block(b) => b.send_all(stream, frame, zc_threshold).await,
            Data::Pipe(p) => p.send(stream, frame).await,
        }
    }
}

/// The queue between request tasks and the writer.
#[derive(Default)]
pub struct Replies {
    queue: RefCell<Vec<Frame>>,
    waker: Cell<Option<Waker>>,
    closed: Cell<bool>,
    failed: Cell<bool>,
    /// Orders every send of the connection.
    lane: Lane,
    /// Set once the peer is gone (a send failed) or the connection is being closed: queued
    /// work is cancelled (see `limits.rs`).
    closing: Signal,
}

impl Replies {
    /// Set once nobody will read the replies any more.
    pub fn closing(&self) -> &Signal {
        &self.closing
    }

    /// The connection's send lane.
    pub fn lane(&self) -> &Lane {
        &self.lane
    }

    /// Queue a frame (dropped at once if the connection already failed).
    pub fn push(&self, frame: Frame) {
        if self.failed.get() {
            return;
        }
        self.queue.borrow_mut().push(frame);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// No more frames will come: the writer ends once the queue is empty.
    pub fn close(&self) {
        self.closed.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// Wait for frames; swap them into `out` (empty). `false`: closed and drained.
    async fn next_batch(&self, out: &mut Vec<Frame>) -> bool {
        poll_fn(|cx| {
            let mut q = self.queue.borrow_mut();
            if !q.is_empty() {
                std::mem::swap(&mut *q, out);
                return Poll::Ready(true);
            }
            if self.closed.get() {
                return Poll::Ready(false);
            }
            self.waker.set(Some(cx.waker().clone()));
            Poll::Pending
        })
        .await
    }

    #[cold] // The peer went away.
    fn fail(&self) {
        self.failed.set(true);
        self.closing.set();
        let dropped = std::mem::take(&mut *self.queue.borrow_mut());
        drop(dropped);
    }
}

/// The writer task of one connection; ends when the queue is closed and drained, or at the
/// first failed send.
pub async fn run(stream: Rc<TcpStream>, replies: Rc<Replies>, zc_threshold: usize) {
    let mut frames = Vec::new();
    let mut batch = Vec::with_capacity(BATCH_MAX + COPY_MAX + 64);
    while replies.next_batch(&mut frames).await {
        match send_frames(&stream, &replies.lane, &mut frames, batch, zc_threshold).await {
            Some(b) => batch = b,
            None => {
                frames.clear();
                replies.fail();
                let _ = stream.shutdown(Shutdown::Both).await;
                return;
            }
        }
    }
}

/// Send `frames` in order; the batch buffer comes back empty, or `None` if a send failed.
async fn send_frames(
    stream: &TcpStream,
    lane: &Lane,
    frames: &mut Vec<Frame>,
    mut batch: Vec<u8>,
    zc_threshold: usize,
) -> Option<Vec<u8>> {
    for frame in frames.drain(..) {
        let Frame {
            head,
            tail,
            data,
            permit,
        } = frame;
        batch.extend_from_slice(head.as_bytes());
        batch.extend_from_slice(tail);
        match data {
            Some(data) if data.sent_alone() => {
                // One reply, two sends: a frame keeps them together in the lane. Both take
                // their places in it at their first poll (below, in one `join`); the frame
                // closes once the data's last op has its place (a pipe may take several
                // splices).
                let frame = lane.frame();
                let want = batch.len();
                let head_sent = stream.send_in(&frame, batch);
                let data_sent = data.send(stream, frame, zc_threshold);
                let ((res, b), sent) = futures::join!(head_sent, data_sent);
                if res.ok()? != want {
                    return None;
                }
                sent.ok()?;
                batch = b;
                batch.clear();
            }
            Some(Data::Block(data)) => batch.extend_from_slice(&data),
            Some(Data::Pipe(_)) => unreachable!("a pipe's data is always sent alone"),
            None => {}
        }
        if batch.len() >= BATCH_MAX {
            batch = flush(stream, lane, batch).await?;
        }
        // This frame's bytes are on their way: its share of the window is free.
        drop(permit);
    }
    flush(stream, lane, batch).await
}

/// Send the batch whole in the lane (a short send fails the lane, and this).
async fn flush(stream: &TcpStream, lane: &Lane, batch: Vec<u8>) -> Option<Vec<u8>> {
    if batch.is_empty() {
        return Some(batch);
    }
    let want = batch.len();
    let (res, mut batch) = stream.send_in(lane, batch).await;
    if res.ok()? != want {
        return None;
    }
    batch.clear();
    Some(batch)
}
