//! futures-io adapters for connected streams (`AsyncRead`, `AsyncBufRead`, `AsyncWrite`).
//!
//! The futures-io traits lend the caller's buffer only for one `poll_*` call, but the kernel
//! may write into a recv buffer until the op's final CQE. So the adapters never hand the
//! kernel the caller's memory: each stream keeps its own buffers, and a buffer in flight is
//! **moved into the op**. Dropping the stream (or the future polling it) mid-read drops the
//! op, whose buffer then stays parked in the op slot until the final CQE: memory-safe,
//! whatever the caller does.
//!
//! Read side: one recv of up to [`READ_BUF`] bytes at a time into the stream's buffer, which
//! then serves `poll_read` copies and `poll_fill_buf` borrows until consumed.
//!
//! Write side: `poll_write` copies up to [`WRITE_BUF`] bytes into the stream's own buffer,
//! submits a send and returns `Pending`; the repeated call returns the send's count once its
//! CQE is in. So a `poll_write` that returned `Ready(Ok(n))` has put `n` bytes into the
//! socket, as `write(2)` would: nothing stays buffered in user space, `poll_flush` has nothing
//! to push, and dropping the stream right after `write_all` loses nothing. `poll_close` shuts
//! the write side down (`SHUTDOWN`), so the peer reads end-of-stream.
//!
//! A caller that abandons a `poll_write` after `Pending` and then writes other bytes gets them
//! sent after the abandoned ones (which went out anyway): the repeated call is recognised by
//! its bytes starting with the ones in flight.

use std::fmt;
use std::future::Future;
use std::io;
use std::mem;
use std::net::Shutdown;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready};

use ringleader_executor::Op;

use super::ops::{self, Recv, Send, ShutdownOp};
use super::socket::Socket;

/// Bytes one adapter recv asks for.
pub(crate) const READ_BUF: usize = 64 * 1024;
/// Most bytes one adapter send takes from one `poll_write`.
pub(crate) const WRITE_BUF: usize = 64 * 1024;

enum ReadSide {
    /// `buf[pos..]` is received and not yet consumed.
    Idle { buf: Vec<u8>, pos: usize },
    /// A recv owns the buffer.
    Busy(Op<Recv<Vec<u8>>>),
}

/// The per-stream state of the futures-io adapters.
pub(crate) struct IoState {
    read: ReadSide,
    /// The send of the last `poll_write` that returned `Pending`.
    sending: Option<Op<Send<Vec<u8>>>>,
    /// An emptied send buffer, reused for the next write.
    spare: Vec<u8>,
    shutdown: Option<Op<ShutdownOp>>,
    closed: bool,
}

impl Default for IoState {
    fn default() -> Self {
        IoState {
            read: ReadSide::Idle {
                buf: Vec::new(),
                pos: 0,
            },
            sending: None,
            spare: Vec::new(),
            shutdown: None,
            closed: false,
        }
    }
}

impl fmt::Debug for IoState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let buffered = match &self.read {
            ReadSide::Idle { buf, pos } => Some(buf.len() - pos),
            ReadSide::Busy(_) => None,
        };
        f.debug_struct("IoState")
            .field("read_buffered", &buffered)
            .field("write_in_flight", &self.sending.is_some())
            .finish()
    }
}

impl IoState {
    pub(crate) fn poll_fill_buf(
        &mut self,
        sock: &Rc<Socket>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<&[u8]>> {
        loop {
            match &mut self.read {
                ReadSide::Idle { buf, pos } if *pos < buf.len() => break,
                ReadSide::Idle { buf, .. } => {
                    let mut buf = mem::take(buf);
                    buf.clear();
                    buf.reserve_exact(READ_BUF);
                    self.read = ReadSide::Busy(ops::recv(sock, buf, 0, 0));
                }
                ReadSide::Busy(op) => {
                    let (res, buf) = ready!(Pin::new(op).poll(cx));
                    self.read = ReadSide::Idle { buf, pos: 0 };
                    // Ok(0) leaves an empty buffer: end of stream. The next call reads again.
                    res?;
                    break;
                }
            }
        }
        match &self.read {
            ReadSide::Idle { buf, pos } => Poll::Ready(Ok(&buf[*pos..])),
            ReadSide::Busy(_) => unreachable!("the loop exits only when idle"),
        }
    }

    pub(crate) fn consume(&mut self, amt: usize) {
        if let ReadSide::Idle { buf, pos } = &mut self.read {
            *pos = (*pos + amt).min(buf.len());
        }
    }

    pub(crate) fn poll_read(
        &mut self,
        sock: &Rc<Socket>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if out.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let avail = ready!(self.poll_fill_buf(sock, cx))?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Poll::Ready(Ok(n))
    }

    /// Submit a send of (a prefix of) `data` from the stream's own buffer.
    fn start_send(&mut self, sock: &Rc<Socket>, data: &[u8]) {
        let mut buf = mem::take(&mut self.spare);
        buf.clear();
        let n = data.len().min(WRITE_BUF);
        buf.reserve_exact(n);
        buf.extend_from_slice(&data[..n]);
        self.sending = Some(ops::send(sock, buf, 0, libc::MSG_WAITALL));
    }

    pub(crate) fn poll_write(
        &mut self,
        sock: &Rc<Socket>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if let Some(op) = &mut self.sending {
            let (res, buf) = ready!(Pin::new(op).poll(cx));
            self.sending = None;
            // The same call again (the usual case after `Pending`) passes the bytes we sent:
            // report the send's result. Anything else means the call that started the send
            // was abandoned; its bytes went out (or failed) and `data` is a new write.
            let repeat = data.starts_with(&buf);
            self.spare = buf;
            match res {
                Ok(n) if repeat => return Poll::Ready(Ok(n)),
                Ok(_) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        self.start_send(sock, data);
        let Some(op) = &mut self.sending else {
            unreachable!("a send was just started")
        };
        // Registers the waker; the result is picked up by the next call.
        match Pin::new(op).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready((res, buf)) => {
                self.sending = None;
                self.spare = buf;
                Poll::Ready(res)
            }
        }
    }

    /// Wait for a send whose `poll_write` was abandoned; its error, if any, is reported.
    pub(crate) fn poll_flush(
        &mut self,
        _sock: &Rc<Socket>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(op) = &mut self.sending {
            let (res, buf) = ready!(Pin::new(op).poll(cx));
            self.sending = None;
            self.spare = buf;
            res?;
        }
        Poll::Ready(Ok(()))
    }

    pub(crate) fn poll_close(
        &mut self,
        sock: &Rc<Socket>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        ready!(self.poll_flush(sock, cx))?;
        if self.closed {
            return Poll::Ready(Ok(()));
        }
        let op = self
            .shutdown
            .get_or_insert_with(|| ops::shutdown(sock, Shutdown::Write));
        let res = ready!(Pin::new(op).poll(cx));
        self.shutdown = None;
        self.closed = res.is_ok();
        Poll::Ready(res)
    }
}
