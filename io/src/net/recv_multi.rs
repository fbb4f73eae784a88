//! [`RecvMulti`]: a multishot receive into a provided-buffer ring, as a stream of leases.
//!
//! One `IORING_OP_RECV` with `IORING_RECV_MULTISHOT` and `IOSQE_BUFFER_SELECT` (Linux 6.0)
//! stays armed on the socket: every time data arrives the kernel picks a buffer from the
//! [`BufRing`], fills it and posts a CQE naming it, with no SQE, no re-arm and no poll
//! set-up per receive. Each CQE becomes a [`Lease`] on that buffer; dropping the lease hands
//! the buffer back to the ring.
//!
//! # When the kernel ends the request
//!
//! A multishot request ends with the first CQE that lacks `IORING_CQE_F_MORE`:
//!
//! - **`ENOBUFS`**: the ring was empty when data arrived. No data was consumed; the stream
//!   re-arms as soon as a buffer comes back to the ring (at once if one came back since the
//!   request was armed; otherwise it waits on [`BufRing::wait_returned`], so the ring size is
//!   the backpressure and `ENOBUFS` never reaches the caller);
//! - **end of stream** (result 0): the stream ends (`None`);
//! - **an error** (`ECONNRESET`, ...): yielded once, then the stream ends;
//! - **data without `F_MORE`** (the kernel may stop a request, on CQ overflow for one): the
//!   data is yielded and the next poll arms a new request.
//!
//! # Invariants
//!
//! - every buffer a CQE names is claimed exactly once: as the item's lease, or, for CQEs
//!   that arrive after the stream was dropped, recorded by [`Orphan::orphan_cqe`] and handed
//!   back to the ring when the op's resources are released (after its final CQE);
//! - the socket and the ring stay alive until the final CQE (the op data holds both);
//! - one request at a time per stream, so items arrive in the order the bytes did. Keep one
//!   `RecvMulti` (or other receive) per socket.
//!
//! The ring is shared by everything that receives into it: a connection whose leases are not
//! dropped (its peer sends but never reads the echo) keeps those buffers, and once the ring
//! is empty every stream on it waits for a buffer to return.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready};

use futures::Stream;
use io_uring::{cqueue, opcode, types};
use ringleader_buf::{BufRing, Lease, WaitReturned};
use ringleader_executor::{CQE_F_MORE, Cqe, MultiCompletable, MultiOp, Orphan};

use super::owned_io::sealed::HasSocket;
use super::socket::Socket;
use super::tcp_stream::TcpStream;
use super::unix::UnixStream;

impl TcpStream {
    /// Receive continuously into buffers of `ring` (multishot `IORING_OP_RECV` with buffer
    /// select, Linux 6.0): a stream of [`Lease`]s holding the bytes in arrival order, ending
    /// at end of stream. See [`RecvMulti`].
    ///
    /// ```
    /// use futures::StreamExt;
    /// use ringleader::buf::BufRing;
    /// use ringleader::net::{OwnedIo, UnixStream};
    ///
    /// ringleader::block_on(async {
    ///     let ring = BufRing::new(8, 4096).unwrap();
    ///     let (a, b) = UnixStream::pair().unwrap();
    ///     let mut incoming = b.recv_multi(&ring);
    ///     a.write_all_owned(b"hello".to_vec()).await.0.unwrap();
    ///     drop(a);
    ///     let mut got = Vec::new();
    ///     while let Some(lease) = incoming.next().await {
    ///         got.extend_from_slice(&lease.unwrap());
    ///     }
    ///     assert_eq!(got, b"hello");
    /// });
    /// ```
    pub fn recv_multi(&self, ring: &BufRing) -> RecvMulti {
        RecvMulti::new(self.socket(), ring)
    }
}

impl UnixStream {
    /// As [`TcpStream::recv_multi`].
    pub fn recv_multi(&self, ring: &BufRing) -> RecvMulti {
        RecvMulti::new(self.socket(), ring)
    }
}

/// One CQE of a multishot receive, its buffer already claimed.
#[derive(Debug)]
pub(crate) struct Received {
    result: i32,
    more: bool,
    lease: Option<Lease>,
}

/// Resources of a multishot receive: the socket, the ring, and the buffers of CQEs that
/// arrived after the stream was dropped (returned to the ring when these are dropped).
pub(crate) struct RecvMultiData {
    _sock: Rc<Socket>,
    ring: BufRing,
    orphaned: Vec<u16>,
}

impl Orphan for RecvMultiData {
    fn orphan_cqe(&mut self, cqe: &Cqe) {
        // Only record it: the executor holds its borrow here, and returning a buffer may
        // wake a task. The buffer goes back in `drop`, outside that borrow.
        if let Some(bid) = cqueue::buffer_select(cqe.flags) {
            self.orphaned.push(bid);
        }
    }
}

impl Drop for RecvMultiData {
    fn drop(&mut self) {
        for bid in self.orphaned.drain(..) {
            // SAFETY: the kernel selected `bid` in a CQE of this op that nobody claimed (it
            // reached `orphan_cqe` instead of `next`); dropping the lease returns it.
            drop(unsafe { self.ring.claim(bid, 0) });
        }
    }
}

impl MultiCompletable for RecvMultiData {
    type Item = Received;
    fn next(&mut self, cqe: Cqe) -> Received {
        let lease = cqueue::buffer_select(cqe.flags).map(|bid| {
            let len = usize::try_from(cqe.result).unwrap_or(0);
            // SAFETY: this CQE hands `bid` to this op, and each CQE is converted once; a recv
            // never writes more than the buffer's size.
            unsafe { self.ring.claim(bid, len) }
        });
        Received {
            result: cqe.result,
            more: cqe.flags & CQE_F_MORE != 0,
            lease,
        }
    }
}

impl fmt::Debug for RecvMultiData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvMultiData")
            .field("bgid", &self.ring.bgid())
            .field("orphaned", &self.orphaned.len())
            .finish()
    }
}

/// The stream of [`TcpStream::recv_multi`]: `Ok(lease)` per receive, an `Err` once if the
/// connection fails, `None` at end of stream. Dropping it cancels the request; buffers
/// filled meanwhile go back to the ring.
#[must_use = "streams do nothing unless polled; dropping cancels the receive"]
pub struct RecvMulti {
    sock: Rc<Socket>,
    ring: BufRing,
    /// `ring.returned()` when the current request was armed.
    since: u64,
    state: State,
}

enum State {
    Armed(MultiOp<RecvMultiData>),
    /// The kernel ended the request with data: arm a new one at the next poll.
    Ended,
    /// `ENOBUFS` and no buffer came back since the request was armed.
    Starved(WaitReturned),
    Done,
}

impl RecvMulti {
    /// Arms the request at once, so data is received before the first poll.
    fn new(sock: &Rc<Socket>, ring: &BufRing) -> RecvMulti {
        let mut r = RecvMulti {
            sock: Rc::clone(sock),
            ring: ring.clone(),
            since: 0,
            state: State::Done,
        };
        r.arm();
        r
    }

    fn arm(&mut self) {
        // Read before the push: a buffer returned after this is seen as a change.
        self.since = self.ring.returned();
        let entry =
            opcode::RecvMulti::new(types::Fd(self.sock.raw()), self.ring.select_bgid()).build();
        let data = RecvMultiData {
            _sock: Rc::clone(&self.sock),
            ring: self.ring.clone(),
            orphaned: Vec::new(),
        };
        // SAFETY: the SQE carries no pointer: the kernel writes only into buffers of the
        // ring's group, whose memory the op data keeps alive (a `BufRing` handle) until the
        // final CQE; a selected buffer is not reused until its lease is dropped. The socket
        // fd stays open as long (the data holds it).
        self.state = State::Armed(unsafe { MultiOp::submit(entry, data) });
    }

    /// The request ended with `ENOBUFS`: arm again once a buffer is back.
    #[cold] // The ring is sized for the load; running dry is the backpressure path.
    fn starved(&mut self) {
        if self.ring.returned() != self.since {
            self.arm();
        } else {
            self.state = State::Starved(self.ring.wait_returned(self.since));
        }
    }
}

impl Stream for RecvMulti {
    type Item = io::Result<Lease>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            let op = match &mut this.state {
                State::Armed(op) => op,
                State::Ended => {
                    this.arm();
                    continue;
                }
                State::Starved(wait) => {
                    ready!(Pin::new(wait).poll(cx));
                    this.arm();
                    continue;
                }
                State::Done => return Poll::Ready(None),
            };
            let Some(Received {
                result,
                more,
                lease,
            }) = ready!(Pin::new(op).poll_next(cx))
            else {
                // Ended without an item of its own: arm a new request.
                this.state = State::Ended;
                continue;
            };
            if !more {
                // The request is over; the finished op is dropped without a cancel.
                this.state = State::Ended;
            }
            match (result, lease) {
                (n, Some(lease)) if n > 0 => return Poll::Ready(Some(Ok(lease))),
                (n, None) if n > 0 => {
                    this.state = State::Done;
                    return Poll::Ready(Some(Err(io::Error::other(format!(
                        "ringleader: multishot recv returned {n} bytes without a buffer"
                    )))));
                }
                // End of stream; a selected buffer (none is expected) goes straight back.
                (0, _) => {
                    this.state = State::Done;
                    return Poll::Ready(None);
                }
                (e, _) if e == -libc::ENOBUFS && !more => this.starved(),
                (e, _) => {
                    if !more {
                        this.state = State::Done;
                    }
                    return Poll::Ready(Some(Err(io::Error::from_raw_os_error(-e))));
                }
            }
        }
    }
}

impl fmt::Debug for RecvMulti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Armed(_) => "armed",
            State::Ended => "ended, re-arms on poll",
            State::Starved(_) => "waiting for a buffer",
            State::Done => "done",
        };
        f.debug_struct("RecvMulti")
            .field("fd", &self.sock.raw())
            .field("bgid", &self.ring.bgid())
            .field("state", &state)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use ringleader_buf::BufRing;
    use ringleader_executor::{block_on, nop, spawn};

    use crate::net::{OwnedIo, UnixStream};

    /// Let the event loop run a few ticks (submit, reap, wake).
    async fn ticks(n: usize) {
        for _ in 0..n {
            nop().await.unwrap();
        }
    }

    #[test]
    fn empty_ring_waits_for_a_returned_buffer_and_loses_nothing() {
        block_on(async {
            let ring = BufRing::new(2, 16).unwrap();
            let (a, b) = UnixStream::pair().unwrap();
            let data: Vec<u8> = (0..64u8).collect();
            a.write_all_owned(data.clone()).await.0.unwrap();
            let mut incoming = b.recv_multi(&ring);
            // Hold both buffers: the kernel finds the ring empty (ENOBUFS) for the rest.
            let first = incoming.next().await.unwrap().unwrap();
            let second = incoming.next().await.unwrap().unwrap();
            let mut got = [&first[..], &second[..]].concat();
            let release = spawn(async move {
                ticks(4).await;
                drop((first, second));
            });
            drop(a);
            while let Some(lease) = incoming.next().await {
                got.extend_from_slice(&lease.unwrap());
            }
            release.await.unwrap();
            assert_eq!(got, data, "every byte, in order");
            assert!(ring.starved() > 0, "the ENOBUFS path was taken");
            assert_eq!(ring.leased(), 0);
        });
    }

    #[test]
    fn dropping_the_stream_returns_the_buffers_it_filled() {
        block_on(async {
            let ring = BufRing::new(4, 16).unwrap();
            let (a, b) = UnixStream::pair().unwrap();
            let incoming = b.recv_multi(&ring);
            a.write_all_owned(vec![7u8; 40]).await.0.unwrap();
            // The kernel fills buffers that nobody takes out of the stream.
            ticks(4).await;
            drop(incoming);
            ticks(4).await;
            assert_eq!(ring.leased(), 0, "orphaned buffers are back in the ring");
            // The ring still serves a new stream on the same socket.
            a.write_all_owned(vec![9u8; 8]).await.0.unwrap();
            drop(a);
            let mut incoming = b.recv_multi(&ring);
            let mut total = 0;
            while let Some(lease) = incoming.next().await {
                total += lease.unwrap().len();
            }
            // Bytes received by the dropped stream are gone with it; the rest arrives.
            assert!(total >= 8, "{total}");
        });
    }
}
