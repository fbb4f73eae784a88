//! [`TcpStream`]: a connected TCP socket whose reads and writes are ring ops.

use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures::io::{AsyncBufRead, AsyncRead, AsyncWrite};
use ringleader_buf::IoBuf;
use ringleader_executor::Op;

use crate::group::{self, LeaseIo, LeaseSlice, LeaseSliceMut};

use super::addr::SockAddr;
use super::compat::IoState;
use super::ops::{self, SendZc, ShutdownOp};
use super::owned_io::OwnedIo;
use super::owned_io::sealed::HasSocket;
use super::socket::Socket;

/// A TCP connection.
///
/// Two ways to do I/O on it:
///
/// - owned buffers, through [`OwnedIo`] (`read`, `write`, `read_exact`, `write_all`) and the
///   inherent [`send_zc`](TcpStream::send_zc) and [`shutdown`](TcpStream::shutdown): each op
///   takes the buffer and gives it back ([`BufResult`](ringleader_buf::BufResult)); no copy;
/// - `futures::io::{AsyncRead, AsyncBufRead, AsyncWrite}`, so `futures::io::copy`, the
///   `AsyncReadExt`/`AsyncWriteExt` helpers and crates written against them work unchanged
///   (one copy through the stream's own buffers).
///
/// Each op holds the socket open until its final CQE, so dropping the stream while an op is
/// in flight is safe: the op is cancelled (or finishes), then the fd is closed.
///
/// ```
/// use ringleader::net::{OwnedIo, TcpListener, TcpStream};
///
/// ringleader::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     let client = TcpStream::connect(addr).await.unwrap();
///     let (server, _) = listener.accept().await.unwrap();
///
///     let (res, _) = client.write_all_owned(b"ping".to_vec()).await;
///     res.unwrap();
///     let (res, buf) = server.read_exact_owned(Vec::with_capacity(4)).await;
///     res.unwrap();
///     assert_eq!(buf, b"ping");
/// });
/// ```
pub struct TcpStream {
    sock: Rc<Socket>,
    io: IoState,
}

impl TcpStream {
    pub(crate) fn from_socket(sock: Socket) -> TcpStream {
        TcpStream {
            sock: Rc::new(sock),
            io: IoState::default(),
        }
    }

    /// Connect to the first address of `addrs` that accepts (`IORING_OP_CONNECT`, Linux 5.5).
    ///
    /// Resolving a host name blocks (std's resolver); pass a `SocketAddr` or an IP literal to
    /// avoid it. The error is the last address's, errno preserved (`ECONNREFUSED`, ...).
    pub async fn connect(addrs: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let mut last = None;
        for addr in addrs.to_socket_addrs()? {
            match Self::connect_addr(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "could not resolve to any address",
            )
        }))
    }

    /// Connect to one address (`IORING_OP_CONNECT`, Linux 5.5).
    pub async fn connect_addr(addr: SocketAddr) -> io::Result<TcpStream> {
        let domain = match addr {
            SocketAddr::V4(_) => libc::AF_INET,
            SocketAddr::V6(_) => libc::AF_INET6,
        };
        let sock = Rc::new(Socket::new(domain, libc::SOCK_STREAM)?);
        ops::connect(&sock, SockAddr::from_std(&addr)).await?;
        Ok(TcpStream {
            sock,
            io: IoState::default(),
        })
    }

    /// Zero-copy send of `buf`'s initialised bytes (`IORING_OP_SEND_ZC`, Linux 6.0). The
    /// buffer comes back only after the kernel's notification, when no page of it is
    /// referenced any more. On loopback the kernel copies anyway; it is still correct.
    pub fn send_zc<B: IoBuf>(&self, buf: B) -> Op<SendZc<B>> {
        ops::send_zc(&self.sock, buf)
    }

    /// Send a lease's data (or a [`LeaseSlice`] view) (`IORING_OP_SEND`, Linux 5.6); may
    /// send fewer bytes. The future borrows the lease shared.
    pub fn send_lease<'a>(&self, src: impl Into<LeaseSlice<'a>>) -> LeaseIo<'a> {
        group::send(self, src)
    }

    /// Zero-copy send of a lease's data (`IORING_OP_SEND_ZC`, Linux 6.0, with
    /// `IORING_RECVSEND_FIXED_BUF` from a registered lease). Resolves at the kernel's
    /// notification; the lease slot is held until then even if the future is dropped, and
    /// the lease refuses `&mut` access meanwhile (a kernel reader, see
    /// [`group`](crate::group)).
    pub fn send_zc_lease<'a>(&self, src: impl Into<LeaseSlice<'a>>) -> LeaseIo<'a> {
        group::send_zc(self, src)
    }

    /// Receive into a lease (or a [`LeaseSliceMut`] view) (`IORING_OP_RECV`, Linux 5.6);
    /// given a whole `&mut Lease`, sets its `len` to the bytes received. Until its final CQE
    /// the op is a kernel writer: if the future is forgotten, the lease refuses every access
    /// to its bytes for good (see [`group`](crate::group)).
    pub fn recv_lease<'a>(&self, dst: impl Into<LeaseSliceMut<'a>>) -> LeaseIo<'a> {
        group::recv(self, dst)
    }

    /// Shut down the read, write or both halves (`IORING_OP_SHUTDOWN`, Linux 5.11).
    pub fn shutdown(&self, how: Shutdown) -> Op<ShutdownOp> {
        ops::shutdown(&self.sock, how)
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.peer_addr()?.std_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()?.std_addr()
    }

    /// Set `TCP_NODELAY` (disable Nagle's algorithm).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.sock.set_opt(
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            libc::c_int::from(nodelay),
        )
    }

    /// Set `SO_LINGER`: with `Some(Duration::ZERO)`, closing the socket aborts the
    /// connection with a reset and drops unsent data at once, instead of leaving the kernel
    /// to deliver it (a peer that stopped reading would otherwise hold the socket and its
    /// buffers open); `None` restores the default graceful close.
    pub fn set_linger(&self, linger: Option<std::time::Duration>) -> io::Result<()> {
        let value = libc::linger {
            l_onoff: libc::c_int::from(linger.is_some()),
            l_linger: linger.map_or(0, |d| d.as_secs().min(i32::MAX as u64) as libc::c_int),
        };
        self.sock.set_opt(libc::SOL_SOCKET, libc::SO_LINGER, value)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(self
            .sock
            .get_int_opt(libc::IPPROTO_TCP, libc::TCP_NODELAY)?
            != 0)
    }

    /// Run `f` on a std view of the socket, for the options std offers (`set_ttl`, ...).
    /// `f` must not close the socket or change its blocking mode.
    pub fn with_std<R>(&self, f: impl FnOnce(&std::net::TcpStream) -> R) -> R {
        // SAFETY: the fd is a TCP stream socket; `with_std` never closes it.
        unsafe { self.sock.with_std(f) }
    }

    /// Adopt a std stream (made blocking: the ring does the waiting).
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        let sock = Socket::from_fd(OwnedFd::from(stream));
        sock.set_blocking()?;
        Ok(Self::from_socket(sock))
    }

    /// Give the socket back as a std stream. If an op the stream started is still in flight
    /// (a cancelled futures-io read, say), the fd is duplicated and the original closes when
    /// that op completes.
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        Ok(std::net::TcpStream::from(self.into_owned_fd()?))
    }

    /// The socket and the futures-io state, for [`TcpStream::into_split`].
    pub(super) fn into_parts(self) -> (Rc<Socket>, IoState) {
        (self.sock, self.io)
    }

    /// Reassemble what [`TcpStream::into_parts`] gave (`OwnedReadHalf::reunite`).
    pub(super) fn from_parts(sock: Rc<Socket>, io: IoState) -> TcpStream {
        TcpStream { sock, io }
    }

    /// The socket's fd, owned (see [`TcpStream::into_std`]).
    pub fn into_owned_fd(self) -> io::Result<OwnedFd> {
        let TcpStream { sock, io } = self;
        drop(io);
        Socket::unshare(sock)
    }
}

impl HasSocket for TcpStream {
    fn socket(&self) -> &Rc<Socket> {
        &self.sock
    }
}

impl OwnedIo for TcpStream {}

impl From<OwnedFd> for TcpStream {
    /// Adopt a connected TCP socket fd as is.
    fn from(fd: OwnedFd) -> TcpStream {
        TcpStream::from_socket(Socket::from_fd(fd))
    }
}

impl FromRawFd for TcpStream {
    /// # Safety
    /// `fd` must be an open, connected TCP socket that the caller owns.
    unsafe fn from_raw_fd(fd: RawFd) -> TcpStream {
        // SAFETY: forwarded to the caller.
        TcpStream::from(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.raw()
    }
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd is owned by `self.sock` and stays open while `self` is borrowed.
        unsafe { BorrowedFd::borrow_raw(self.sock.raw()) }
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("fd", &self.sock.raw())
            .field("io", &self.io)
            .finish()
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.io.poll_read(&this.sock, cx, buf)
    }
}

impl AsyncBufRead for TcpStream {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        this.io.poll_fill_buf(&this.sock, cx)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        self.get_mut().io.consume(amt);
    }
}

impl AsyncWrite for TcpStream {
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

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.io.poll_close(&this.sock, cx)
    }
}
