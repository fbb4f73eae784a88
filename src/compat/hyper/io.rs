//! [`HyperIo`]: hyper's `Read`/`Write` over ringleader's connected streams.
//!
//! # Model
//!
//! - **Read** goes through the stream's futures-io `AsyncBufRead` side: one recv op at a time
//!   into the stream's own buffer (the buffer moves into the op, so the kernel never writes
//!   into memory hyper may free), then one copy into hyper's read buffer with hyper's safe
//!   `put_slice`. Bytes hyper has not taken stay in the stream, so
//!   [`into_inner`](HyperIo::into_inner) loses none.
//! - **Write** is write-behind, like a `BufWriter` whose buffer is owned by the send op:
//!   `poll_write`/`poll_write_vectored` copy hyper's bytes (all slices, gathered) into the
//!   adapter's buffer, push one `IORING_OP_SEND` with it and return `Ready` at once;
//!   `poll_flush` returns `Ready` only once that send has completed (short sends are resumed).
//!   So hyper writes a response, flushes, and goes back to reading in the same poll: the send
//!   and the next recv reach the kernel in one `io_uring_enter`, and the task is not woken
//!   just to learn that the send went out.
//!
//! # Invariants
//!
//! - At most one send is in flight; its buffer holds bytes `poll_write` reported as written.
//!   A later `poll_write`, `poll_flush` or `poll_shutdown` first waits for it and reports its
//!   error, if any.
//! - As with any buffered writer, dropping the adapter (or calling `into_inner`) with a send
//!   in flight cancels that send, so bytes accepted since the last completed flush may not
//!   reach the peer. hyper flushes before it finishes a connection and before
//!   `without_shutdown` returns, so this only bites a caller that drops hyper's connection
//!   future midway.

use std::fmt;
use std::future::Future;
use std::io;
use std::mem;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use ::hyper::rt::{Read, ReadBufCursor, Write};
use futures::io::{AsyncBufRead, AsyncWrite};

use crate::net::OwnedIo;
use crate::net::ops::Send;
use crate::ops::Op;

/// Bytes at most one send takes from one `poll_write`/`poll_write_vectored` call.
const MAX_SEND: usize = 1024 * 1024;

/// A ringleader stream seen through hyper's I/O traits (see the module doc).
///
/// `HyperIo<T>` implements [`hyper::rt::Read`](Read) when `T: AsyncBufRead` and
/// [`hyper::rt::Write`](Write) when `T` is a connected stream (`OwnedIo + AsyncWrite`):
/// [`TcpStream`](crate::net::TcpStream) and [`UnixStream`](crate::net::UnixStream). Wrap one
/// and hand it to hyper. [`into_inner`](HyperIo::into_inner) gives the stream back, for
/// instance after an HTTP upgrade taken with hyper's `without_shutdown` + `into_parts`.
///
/// # Cost
///
/// One copy each way, as futures-io: a read copies from the stream's recv buffer into hyper's
/// buffer (never zeroing hyper's buffer first, and with no `unsafe`); a write copies hyper's
/// slices into the buffer the send op owns. `is_write_vectored` is true, so hyper hands over
/// its header buffer and body chunks as separate slices instead of flattening them into one
/// buffer first (which would be a second copy of every body byte).
///
/// ```
/// use ringleader::compat::hyper::HyperIo;
/// use ringleader::net::TcpStream;
///
/// fn assert_hyper_io<T: hyper::rt::Read + hyper::rt::Write + Unpin>() {}
/// assert_hyper_io::<HyperIo<TcpStream>>();
/// ```
pub struct HyperIo<T> {
    inner: T,
    /// The send of bytes already reported as written.
    sending: Option<Op<Send<Vec<u8>>>>,
    /// An emptied send buffer, reused for the next send.
    spare: Vec<u8>,
}

impl<T> HyperIo<T> {
    /// Wrap `inner`.
    pub fn new(inner: T) -> Self {
        HyperIo {
            inner,
            sending: None,
            spare: Vec::new(),
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The wrapped stream, mutably. Reading from or writing to it directly interleaves with
    /// whatever hyper has buffered or has in flight.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Unwrap. Call it after a completed flush (hyper flushes before `without_shutdown`
    /// returns): a send still in flight is cancelled (see the module doc).
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T> From<T> for HyperIo<T> {
    fn from(inner: T) -> Self {
        HyperIo::new(inner)
    }
}

impl<T: fmt::Debug> fmt::Debug for HyperIo<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HyperIo")
            .field("inner", &self.inner)
            .field("sending", &self.sending.is_some())
            .finish()
    }
}

impl<T: AsyncBufRead + Unpin> Read for HyperIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let inner = &mut self.get_mut().inner;
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let avail = ready!(Pin::new(&mut *inner).poll_fill_buf(cx))?;
        // An empty `avail` is end of stream: hyper reads it as "no bytes filled".
        let n = avail.len().min(buf.remaining());
        buf.put_slice(&avail[..n]);
        Pin::new(inner).consume(n);
        Poll::Ready(Ok(()))
    }
}

impl<T: OwnedIo> HyperIo<T> {
    /// Wait for the send in flight, resuming it after a short send; its error, if any.
    fn poll_sent(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(op) = &mut self.sending {
            let (res, mut buf) = ready!(Pin::new(op).poll(cx));
            self.sending = None;
            match res {
                Ok(n) if n < buf.len() && n > 0 => {
                    // A short send (a signal; `OwnedIo::write_owned` has no MSG_WAITALL): send the
                    // rest. Rare, so the memmove does not matter.
                    buf.drain(..n);
                    self.sending = Some(self.inner.write_owned(buf));
                }
                Ok(n) => {
                    self.spare = buf;
                    if n == 0 {
                        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                    }
                }
                Err(e) => {
                    self.spare = buf;
                    return Poll::Ready(Err(e));
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Copy up to `MAX_SEND` bytes of `bufs` into the send buffer and push the send.
    fn start_send(&mut self, bufs: &[io::IoSlice<'_>]) -> usize {
        let mut buf = mem::take(&mut self.spare);
        buf.clear();
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        buf.reserve(total.min(MAX_SEND));
        for b in bufs {
            let take = b.len().min(MAX_SEND - buf.len());
            buf.extend_from_slice(&b[..take]);
            if buf.len() == MAX_SEND {
                break;
            }
        }
        let n = buf.len();
        if n > 0 {
            self.sending = Some(self.inner.write_owned(buf));
        } else {
            self.spare = buf;
        }
        n
    }
}

impl<T: OwnedIo + AsyncWrite + Unpin> Write for HyperIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_sent(cx))?;
        Poll::Ready(Ok(this.start_send(bufs)))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_sent(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_sent(cx))?;
        // The stream's own close: flush its (idle) futures-io writer, then `SHUTDOWN(WR)`.
        Pin::new(&mut this.inner).poll_close(cx)
    }
}
