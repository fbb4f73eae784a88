//! tokio's I/O traits over ringleader streams (cargo feature `tokio`).
//!
//! [`TokioCompat<T>`](TokioCompat) implements `tokio::io::{AsyncRead, AsyncBufRead,
//! AsyncWrite}` for a futures-io stream (a ringleader [`TcpStream`](crate::net::TcpStream),
//! [`UnixStream`](crate::net::UnixStream), [`File`](crate::fs::File), ...), so crates written
//! against tokio's traits (tokio-util's codecs, `tokio::io::copy`, `AsyncBufReadExt::lines`,
//! ...) run unchanged. Only tokio's traits are used, never its runtime: the futures run on
//! ringleader's cores and every byte still goes through ringleader's ops.
//!
//! It also works the other way round: `TokioCompat<T>` implements futures-io for a `T` that
//! implements tokio's traits.
//!
//! # Cost
//!
//! None beyond futures-io itself. A ringleader stream receives into its own buffer (the
//! buffer moves into the recv op, so the kernel never writes into memory the caller might
//! free), and a read copies from there into the caller's buffer: one copy, the same as
//! futures-io's `poll_read`. The adapter reads through `AsyncBufRead` and tokio's safe
//! `ReadBuf::put_slice`, so unlike `tokio-util`'s `Compat` it never zeroes the caller's
//! uninitialised buffer first (`Compat::poll_read` calls `ReadBuf::initialize_unfilled`,
//! a `memset` of up to the whole spare capacity per read). See `docs/tokio-interop.md`.
//!
//! ```
//! use ringleader::compat::tokio::TokioCompat;
//! use ringleader::net::UnixStream;
//! use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
//!
//! ringleader::block_on(async {
//!     let (a, b) = UnixStream::pair().unwrap();
//!     let (mut a, b) = (TokioCompat::new(a), TokioCompat::new(b));
//!     a.write_all(b"one\ntwo\n").await.unwrap();
//!     a.shutdown().await.unwrap();
//!     let mut lines = b.lines();
//!     assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("one"));
//!     assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("two"));
//!     assert_eq!(lines.next_line().await.unwrap(), None);
//! });
//! ```

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use ::tokio::io::ReadBuf;

/// A futures-io stream seen through tokio's I/O traits, or the reverse (see the module doc).
#[derive(Debug, Default)]
pub struct TokioCompat<T> {
    inner: T,
}

impl<T> TokioCompat<T> {
    /// Wrap `inner`.
    pub fn new(inner: T) -> Self {
        TokioCompat { inner }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The wrapped stream, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Unwrap.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T> From<T> for TokioCompat<T> {
    fn from(inner: T) -> Self {
        TokioCompat::new(inner)
    }
}

impl<T: futures::io::AsyncBufRead + Unpin> ::tokio::io::AsyncRead for TokioCompat<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let inner = &mut self.get_mut().inner;
        let avail = ready!(Pin::new(&mut *inner).poll_fill_buf(cx))?;
        let n = avail.len().min(buf.remaining());
        buf.put_slice(&avail[..n]);
        Pin::new(inner).consume(n);
        Poll::Ready(Ok(()))
    }
}

impl<T: futures::io::AsyncBufRead + Unpin> ::tokio::io::AsyncBufRead for TokioCompat<T> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        Pin::new(&mut self.get_mut().inner).poll_fill_buf(cx)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        Pin::new(&mut self.get_mut().inner).consume(amt);
    }
}

impl<T: futures::io::AsyncWrite + Unpin> ::tokio::io::AsyncWrite for TokioCompat<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

impl<T: ::tokio::io::AsyncRead + Unpin> futures::io::AsyncRead for TokioCompat<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        // `out` is initialised memory, so tokio's safe `ReadBuf::new` can lend it.
        let mut buf = ReadBuf::new(out);
        ready!(Pin::new(&mut self.get_mut().inner).poll_read(cx, &mut buf))?;
        Poll::Ready(Ok(buf.filled().len()))
    }
}

impl<T: ::tokio::io::AsyncWrite + Unpin> futures::io::AsyncWrite for TokioCompat<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ::tokio::io::AsyncWrite::poll_write(Pin::new(&mut self.get_mut().inner), cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ::tokio::io::AsyncWrite::poll_write_vectored(Pin::new(&mut self.get_mut().inner), cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ::tokio::io::AsyncWrite::poll_flush(Pin::new(&mut self.get_mut().inner), cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ::tokio::io::AsyncWrite::poll_shutdown(Pin::new(&mut self.get_mut().inner), cx)
    }
}
