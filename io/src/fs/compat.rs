//! The `futures::io` view of a [`File`]: `AsyncRead`, `AsyncBufRead`, `AsyncWrite` and
//! `AsyncSeek` at an internal position, through internal owned buffers.
//!
//! Model: a [`Stream`] keeps a position `pos`, a read-ahead buffer, a write buffer and at most
//! one op in flight. The in-flight op *owns* the buffer it reads into or writes from (the
//! `Vec` is moved into the op's data), so dropping the `File` or abandoning a poll while the op
//! is in flight is memory safe: the op is cancelled and the buffer is freed at its final CQE.
//!
//! Invariants:
//! - `rbuf[rpos..]` are the bytes of the file at `pos - (rbuf.len() - rpos) ..pos`, not yet
//!   consumed; `wbuf` holds accepted bytes that go to the file at `pos`. At most one of them is
//!   non-empty: writing discards the read-ahead (moving `pos` back to the logical position),
//!   reading first submits the write buffer and waits for it.
//! - A write is submitted with its offset and `pos` moves past it at once; a short write is
//!   resubmitted for its remaining bytes before anything else runs. Its error is reported by the
//!   next `poll_write`, `poll_flush`, `poll_close` or `poll_seek` (write-behind, as tokio's
//!   `File`): bytes accepted by `poll_write` are only known to be written after a flush.
//! - A read is submitted only when the read-ahead is consumed, at `pos`.
//!
//! Positional ops (`read_at`, `write_at`) neither use nor move this position. On a file opened
//! with `append`, Linux appends every write whatever its offset, so the position after writes
//! does not track the end of file: seek before reading such a file back.

use std::fmt;
use std::future::Future;
use std::io::{self, SeekFrom};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::io::{AsyncBufRead, AsyncRead, AsyncSeek, AsyncWrite};
use ringleader_buf::{IoBuf, Slice};
use ringleader_executor::Op;

use super::File;
use super::SharedFd;
use super::metadata::{Statx, statx_fd};
use super::ops::{self, ReadAt, WriteAt};

/// Size of the read-ahead and write buffers: one op moves up to this many bytes.
const CAP: usize = 64 * 1024;

/// State of a file's `futures::io` view (see the module doc).
#[derive(Default)]
pub(crate) struct Stream {
    pos: u64,
    rbuf: Vec<u8>,
    rpos: usize,
    wbuf: Vec<u8>,
    /// A buffer back from a completed op, reused for the next one.
    spare: Vec<u8>,
    busy: Busy,
}

#[derive(Default)]
enum Busy {
    #[default]
    Idle,
    /// A read into the (taken) read-ahead buffer at `pos`.
    Read(Op<ReadAt<Vec<u8>>>),
    /// A write of a range of a buffer that left the write buffer; `at` is the file offset
    /// of the buffer's first byte.
    Write {
        op: Op<WriteAt<Slice<Vec<u8>>>>,
        at: u64,
    },
    /// A statx for `SeekFrom::End`.
    Stat(Op<Statx>),
}

impl Stream {
    fn recycle(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        if buf.capacity() > self.spare.capacity() {
            self.spare = buf;
        }
    }

    fn take_buf(&mut self) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.spare);
        buf.reserve_exact(CAP);
        buf
    }

    fn discard_read_ahead(&mut self) {
        self.pos -= (self.rbuf.len() - self.rpos) as u64;
        self.rbuf.clear();
        self.rpos = 0;
    }

    /// Move the write buffer into a write op at `pos`. Only when idle.
    fn submit_write(&mut self, fd: &SharedFd) {
        debug_assert!(matches!(self.busy, Busy::Idle));
        // The next write buffer grows (to `CAP`) only if more bytes come.
        let next = std::mem::take(&mut self.spare);
        let buf = std::mem::replace(&mut self.wbuf, next);
        let at = self.pos;
        self.pos += buf.len() as u64;
        let op = ops::write_at(fd, buf.slice(..), at);
        self.busy = Busy::Write { op, at };
    }

    /// Drive the op in flight to its end. Write errors are returned; a read's result
    /// becomes read-ahead (its error is dropped: the caller is not reading); a stat's result
    /// is dropped (its seek was abandoned).
    fn poll_idle(&mut self, fd: &SharedFd, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match &mut self.busy {
                Busy::Idle => return Poll::Ready(Ok(())),
                Busy::Read(op) => {
                    let (res, buf) = ready!(Pin::new(op).poll(cx));
                    self.busy = Busy::Idle;
                    self.finish_read(res, buf).ok();
                }
                Busy::Stat(op) => {
                    let _ = ready!(Pin::new(op).poll(cx));
                    self.busy = Busy::Idle;
                }
                Busy::Write { op, at } => {
                    let (res, slice) = ready!(Pin::new(op).poll(cx));
                    let at = *at;
                    let begin = slice.begin();
                    let buf = slice.into_inner();
                    self.busy = Busy::Idle;
                    let done = match res {
                        Ok(0) if begin < buf.len() => Err(io::Error::new(
                            io::ErrorKind::WriteZero,
                            format!("write: wrote 0 bytes at offset {}", at + begin as u64),
                        )),
                        Ok(n) => Ok(begin + n),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(begin),
                        Err(e) => Err(e),
                    };
                    match done {
                        Ok(begin) if begin < buf.len() => {
                            let op = ops::write_at(fd, buf.slice(begin..), at + begin as u64);
                            self.busy = Busy::Write { op, at };
                        }
                        Ok(_) => self.recycle(buf),
                        Err(e) => {
                            self.recycle(buf);
                            return Poll::Ready(Err(e));
                        }
                    }
                }
            }
        }
    }

    /// Install a completed read's buffer as read-ahead; `Ok(n)` bytes.
    fn finish_read(&mut self, res: io::Result<usize>, buf: Vec<u8>) -> io::Result<usize> {
        match res {
            Ok(n) => {
                debug_assert_eq!(buf.len(), n);
                self.rbuf = buf;
                self.rpos = 0;
                self.pos += n as u64;
                Ok(n)
            }
            Err(e) => {
                self.recycle(buf);
                Err(e)
            }
        }
    }

    fn poll_fill_buf(&mut self, fd: &SharedFd, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        while self.rpos == self.rbuf.len() {
            match &mut self.busy {
                Busy::Read(op) => {
                    let (res, buf) = ready!(Pin::new(op).poll(cx));
                    self.busy = Busy::Idle;
                    if self.finish_read(res, buf)? == 0 {
                        break; // end of file
                    }
                }
                Busy::Idle if !self.wbuf.is_empty() => self.submit_write(fd),
                Busy::Idle => {
                    let old = std::mem::take(&mut self.rbuf);
                    self.recycle(old);
                    self.rpos = 0;
                    let buf = self.take_buf();
                    self.busy = Busy::Read(ops::read_at(fd, buf, self.pos));
                }
                Busy::Write { .. } | Busy::Stat(_) => ready!(self.poll_idle(fd, cx))?,
            }
        }
        Poll::Ready(Ok(&self.rbuf[self.rpos..]))
    }

    fn consume(&mut self, amt: usize) {
        self.rpos = (self.rpos + amt).min(self.rbuf.len());
    }

    fn poll_write(
        &mut self,
        fd: &SharedFd,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            if matches!(self.busy, Busy::Read(_) | Busy::Stat(_)) {
                ready!(self.poll_idle(fd, cx))?;
            }
            self.discard_read_ahead();
            if self.wbuf.len() < CAP {
                if self.wbuf.capacity() < CAP {
                    self.wbuf.reserve_exact(CAP - self.wbuf.len());
                }
                let n = data.len().min(CAP - self.wbuf.len());
                self.wbuf.extend_from_slice(&data[..n]);
                if self.wbuf.len() == CAP && matches!(self.busy, Busy::Idle) {
                    self.submit_write(fd); // write-behind: the kernel writes while we fill
                }
                return Poll::Ready(Ok(n));
            }
            match self.busy {
                Busy::Idle => self.submit_write(fd),
                _ => ready!(self.poll_idle(fd, cx))?,
            }
        }
    }

    fn poll_flush(&mut self, fd: &SharedFd, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match self.busy {
                Busy::Idle if self.wbuf.is_empty() => return Poll::Ready(Ok(())),
                Busy::Idle => self.submit_write(fd),
                _ => ready!(self.poll_idle(fd, cx))?,
            }
        }
    }

    fn poll_seek(
        &mut self,
        fd: &SharedFd,
        cx: &mut Context<'_>,
        target: SeekFrom,
    ) -> Poll<io::Result<u64>> {
        let size = loop {
            match (&mut self.busy, target) {
                (Busy::Stat(op), SeekFrom::End(_)) => {
                    let res = ready!(Pin::new(op).poll(cx));
                    self.busy = Busy::Idle;
                    break Some(res?.len());
                }
                (Busy::Idle, _) if !self.wbuf.is_empty() => self.submit_write(fd),
                (Busy::Idle, SeekFrom::End(_)) => self.busy = Busy::Stat(statx_fd(fd)),
                (Busy::Idle, _) => break None,
                _ => ready!(self.poll_idle(fd, cx))?,
            }
        };
        let logical = self.pos - (self.rbuf.len() - self.rpos) as u64;
        let new = match target {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => logical.checked_add_signed(d),
            SeekFrom::End(d) => size.and_then(|s| s.checked_add_signed(d)),
        };
        let Some(new) = new else {
            return Poll::Ready(Err(io::Error::from_raw_os_error(libc::EINVAL)));
        };
        if new != logical {
            self.rbuf.clear();
            self.rpos = 0;
            self.pos = new;
        }
        Poll::Ready(Ok(new))
    }
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let busy = match &self.busy {
            Busy::Idle => "idle",
            Busy::Read(_) => "read",
            Busy::Write { .. } => "write",
            Busy::Stat(_) => "statx",
        };
        f.debug_struct("Stream")
            .field("pos", &self.pos)
            .field("read_ahead", &(self.rbuf.len() - self.rpos))
            .field("write_buffered", &self.wbuf.len())
            .field("busy", &busy)
            .finish()
    }
}

impl File {
    fn stream(&mut self) -> (&SharedFd, &mut Stream) {
        let stream = self.stream.get_or_insert_with(Default::default);
        (&self.fd, stream)
    }
}

impl AsyncRead for File {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let (fd, s) = self.get_mut().stream();
        let n = {
            let data = ready!(s.poll_fill_buf(fd, cx))?;
            let n = data.len().min(buf.len());
            buf[..n].copy_from_slice(&data[..n]);
            n
        };
        s.consume(n);
        Poll::Ready(Ok(n))
    }
}

impl AsyncBufRead for File {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let (fd, s) = self.get_mut().stream();
        s.poll_fill_buf(fd, cx)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        self.get_mut().stream().1.consume(amt);
    }
}

impl AsyncWrite for File {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let (fd, s) = self.get_mut().stream();
        s.poll_write(fd, cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match &mut this.stream {
            Some(s) => s.poll_flush(&this.fd, cx),
            None => Poll::Ready(Ok(())),
        }
    }

    /// Flushes; the fd stays open until the `File` is dropped or [`File::close`]d.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl AsyncSeek for File {
    fn poll_seek(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        pos: SeekFrom,
    ) -> Poll<io::Result<u64>> {
        let (fd, s) = self.get_mut().stream();
        s.poll_seek(fd, cx, pos)
    }
}
