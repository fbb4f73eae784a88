//! [`TcpStream::into_split`]: owned read and write halves of one connection, usable from
//! two tasks (tokio's `OwnedReadHalf`/`OwnedWriteHalf`).
//!
//! Both halves hold the same socket (an `Rc`, so they stay on the core that made them:
//! `!Send`, like every ringleader socket) and each has its own futures-io state, so a
//! read in one task never waits for a write in another. The socket is closed when both
//! halves are gone (and every op naming it has completed).

use std::error::Error;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures::io::{AsyncBufRead, AsyncRead, AsyncWrite};

use super::compat::IoState;
use super::owned_io::OwnedIo;
use super::owned_io::sealed::HasSocket;
use super::socket::Socket;
use super::tcp_stream::TcpStream;

impl TcpStream {
    /// Split the stream into a read half and a write half that two tasks on this core can
    /// use at once (tokio's `into_split`). Bytes the stream had already received and not
    /// yet handed out (futures-io buffering) go with the read half.
    ///
    /// Dropping the write half shuts the connection's write side down (`shutdown(2)` with
    /// `SHUT_WR`, at once), as tokio does, so the peer reads end-of-stream even while the
    /// read half lives on; [`OwnedWriteHalf::forget`] drops it without that.
    ///
    /// ```
    /// use futures::{AsyncReadExt, AsyncWriteExt};
    /// use ringleader::net::{TcpListener, TcpStream};
    ///
    /// ringleader::block_on(async {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     let client = TcpStream::connect(listener.local_addr()?).await?;
    ///     let (server, _) = listener.accept().await?;
    ///
    ///     // An echo server: one task reads, another writes.
    ///     let (mut rd, mut wr) = server.into_split();
    ///     let (tx, mut rx) = futures::channel::mpsc::unbounded::<Vec<u8>>();
    ///     let reader = ringleader::spawn(async move {
    ///         let mut buf = [0u8; 64];
    ///         loop {
    ///             let n = rd.read(&mut buf).await?;
    ///             if n == 0 { return Ok::<_, std::io::Error>(()); }
    ///             tx.unbounded_send(buf[..n].to_vec()).unwrap();
    ///         }
    ///     });
    ///     let writer = ringleader::spawn(async move {
    ///         use futures::StreamExt;
    ///         while let Some(chunk) = rx.next().await {
    ///             wr.write_all(&chunk).await?;
    ///         }
    ///         Ok::<_, std::io::Error>(()) // wr dropped: the client reads EOF
    ///     });
    ///
    ///     let (mut crd, mut cwr) = client.into_split();
    ///     cwr.write_all(b"echo me").await?;
    ///     drop(cwr); // EOF to the server's read half
    ///     let mut back = Vec::new();
    ///     crd.read_to_end(&mut back).await?;
    ///     assert_eq!(back, b"echo me");
    ///     reader.await.unwrap()?;
    ///     writer.await.unwrap()
    /// }).unwrap();
    /// ```
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        let (sock, io) = self.into_parts();
        (
            OwnedReadHalf {
                sock: Rc::clone(&sock),
                io,
            },
            OwnedWriteHalf {
                sock,
                io: IoState::default(),
                shutdown_on_drop: true,
            },
        )
    }
}

/// The read half of a [`TcpStream`] (from [`TcpStream::into_split`]): `AsyncRead`,
/// `AsyncBufRead`, and the owned-buffer reads of [`OwnedIo`].
///
/// `OwnedIo` is implemented for both halves because its methods come as one trait; its
/// writes on a read half go to the same socket (nothing unsafe, only not what the half is
/// for).
pub struct OwnedReadHalf {
    sock: Rc<Socket>,
    io: IoState,
}

/// The write half of a [`TcpStream`] (from [`TcpStream::into_split`]): `AsyncWrite` and the
/// owned-buffer writes of [`OwnedIo`]. Dropping it shuts the write side down.
///
/// Cancellation: a write whose future was dropped while in flight may still be in the
/// kernel when the half is dropped; the shutdown then makes it fail (`EPIPE`) rather than
/// wait for it.
pub struct OwnedWriteHalf {
    sock: Rc<Socket>,
    io: IoState,
    shutdown_on_drop: bool,
}

impl OwnedReadHalf {
    /// Put the stream back together; fails (giving both halves back) if they are not halves
    /// of the same stream.
    #[expect(
        clippy::result_large_err,
        reason = "tokio's shape (both halves back in the error); taken only on misuse"
    )]
    pub fn reunite(self, other: OwnedWriteHalf) -> Result<TcpStream, ReuniteError> {
        reunite(self, other)
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.peer_addr()?.std_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()?.std_addr()
    }
}

impl OwnedWriteHalf {
    /// Put the stream back together (see [`OwnedReadHalf::reunite`]).
    #[expect(
        clippy::result_large_err,
        reason = "tokio's shape (both halves back in the error); taken only on misuse"
    )]
    pub fn reunite(self, other: OwnedReadHalf) -> Result<TcpStream, ReuniteError> {
        reunite(other, self)
    }

    /// Drop the half without shutting the write side down.
    pub fn forget(mut self) {
        self.shutdown_on_drop = false;
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.peer_addr()?.std_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()?.std_addr()
    }
}

#[expect(
    clippy::result_large_err,
    reason = "tokio's shape (both halves back in the error); taken only on misuse"
)]
fn reunite(read: OwnedReadHalf, mut write: OwnedWriteHalf) -> Result<TcpStream, ReuniteError> {
    if !Rc::ptr_eq(&read.sock, &write.sock) {
        return Err(ReuniteError(read, write));
    }
    write.shutdown_on_drop = false;
    drop(write);
    Ok(TcpStream::from_parts(read.sock, read.io))
}

impl Drop for OwnedWriteHalf {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            // SAFETY: shutdown(2) on the fd `self.sock` keeps open; it touches no memory.
            // An error (the peer is gone, already shut down) changes nothing worth reporting.
            unsafe { libc::shutdown(self.sock.raw(), libc::SHUT_WR) };
        }
    }
}

/// [`OwnedReadHalf::reunite`] was given halves of two different streams; both come back.
pub struct ReuniteError(pub OwnedReadHalf, pub OwnedWriteHalf);

impl fmt::Debug for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReuniteError(..)")
    }
}

impl fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tried to reunite halves of different TCP streams")
    }
}

impl Error for ReuniteError {}

macro_rules! half_common {
    ($t:ident) => {
        impl HasSocket for $t {
            fn socket(&self) -> &Rc<Socket> {
                &self.sock
            }
        }

        impl OwnedIo for $t {}

        impl AsRawFd for $t {
            fn as_raw_fd(&self) -> RawFd {
                self.sock.raw()
            }
        }

        impl AsFd for $t {
            fn as_fd(&self) -> BorrowedFd<'_> {
                // SAFETY: the fd is owned by `self.sock`, open while `self` is borrowed.
                unsafe { BorrowedFd::borrow_raw(self.sock.raw()) }
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($t))
                    .field("fd", &self.sock.raw())
                    .field("io", &self.io)
                    .finish()
            }
        }
    };
}
half_common!(OwnedReadHalf);
half_common!(OwnedWriteHalf);

impl AsyncRead for OwnedReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.io.poll_read(&this.sock, cx, buf)
    }
}

impl AsyncBufRead for OwnedReadHalf {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        this.io.poll_fill_buf(&this.sock, cx)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        self.get_mut().io.consume(amt);
    }
}

impl AsyncWrite for OwnedWriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.io.poll_write(&this.sock, cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.io.poll_flush(&this.sock, cx)
    }

    /// Shut the write side down (`IORING_OP_SHUTDOWN`); the read half keeps reading.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.io.poll_close(&this.sock, cx)
    }
}
