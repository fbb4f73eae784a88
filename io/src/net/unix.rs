//! Unix-domain stream sockets: [`UnixListener`] and [`UnixStream`].
//!
//! The same model as TCP (ops own the buffers and hold the socket open; futures-io adapters
//! with their own buffers). Addresses are std's `std::os::unix::net::SocketAddr`; a path
//! starting with a NUL byte names an abstract socket (Linux).

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures::Stream;
use futures::io::{AsyncBufRead, AsyncRead, AsyncWrite};
use ringleader_executor::Op;

use super::accept::{self, AcceptStream};
use super::addr::SockAddr;
use super::compat::IoState;
use super::ops::{self, ShutdownOp};
use super::owned_io::OwnedIo;
use super::owned_io::sealed::HasSocket;
use super::socket::Socket;

/// A listening Unix-domain stream socket.
///
/// ```
/// use ringleader::net::{OwnedIo, UnixListener, UnixStream};
///
/// ringleader::block_on(async {
///     let path = std::env::temp_dir().join(format!("rl-doc-{}.sock", std::process::id()));
///     let _ = std::fs::remove_file(&path);
///     let listener = UnixListener::bind(&path).unwrap();
///     let client = UnixStream::connect(&path).await.unwrap();
///     let (server, _) = listener.accept().await.unwrap();
///     client.write_all_owned(b"hi".to_vec()).await.0.unwrap();
///     let (res, buf) = server.read_exact_owned(Vec::with_capacity(2)).await;
///     res.unwrap();
///     assert_eq!(buf, b"hi");
///     std::fs::remove_file(&path).unwrap();
/// });
/// ```
pub struct UnixListener {
    sock: Rc<Socket>,
}

impl UnixListener {
    /// Bind to a filesystem path (which must not exist) and listen.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        Self::from_std(std::os::unix::net::UnixListener::bind(path)?)
    }

    /// Bind to an address (pathname or abstract) and listen.
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixListener> {
        Self::from_std(std::os::unix::net::UnixListener::bind_addr(addr)?)
    }

    /// Accept one connection (`IORING_OP_ACCEPT`, Linux 5.5).
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (fd, _) = accept::accept(&self.sock).await?;
        let stream = UnixStream::from(fd);
        let addr = stream.peer_addr()?;
        Ok((stream, addr))
    }

    /// A never-ending stream of accepted connections on one multishot accept (Linux 5.19);
    /// see [`TcpListener::incoming`](super::TcpListener::incoming).
    pub fn incoming(&self) -> UnixIncoming {
        UnixIncoming {
            inner: AcceptStream::new(&self.sock),
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.with_std(|l| l.local_addr())
    }

    /// Run `f` on a std view of the socket. `f` must not close it or change its blocking mode.
    pub fn with_std<R>(&self, f: impl FnOnce(&std::os::unix::net::UnixListener) -> R) -> R {
        // SAFETY: the fd is a listening Unix stream socket; `with_std` never closes it.
        unsafe { self.sock.with_std(f) }
    }

    /// Adopt a std listener (made blocking: the ring does the waiting).
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        let sock = Socket::from_fd(OwnedFd::from(listener));
        sock.set_blocking()?;
        Ok(UnixListener {
            sock: Rc::new(sock),
        })
    }

    /// Give the socket back as a std listener (a duplicate fd while an accept is in flight).
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixListener> {
        Socket::unshare(self.sock).map(Into::into)
    }
}

impl From<OwnedFd> for UnixListener {
    /// Adopt a listening Unix stream socket fd as is.
    fn from(fd: OwnedFd) -> UnixListener {
        UnixListener {
            sock: Rc::new(Socket::from_fd(fd)),
        }
    }
}

impl FromRawFd for UnixListener {
    /// # Safety
    /// `fd` must be an open, listening Unix stream socket that the caller owns.
    unsafe fn from_raw_fd(fd: RawFd) -> UnixListener {
        // SAFETY: forwarded to the caller.
        UnixListener::from(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.raw()
    }
}

impl AsFd for UnixListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd is owned by `self.sock` and stays open while `self` is borrowed.
        unsafe { BorrowedFd::borrow_raw(self.sock.raw()) }
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("fd", &self.sock.raw())
            .finish()
    }
}

/// The stream of [`UnixListener::incoming`].
#[must_use = "streams do nothing unless polled"]
#[derive(Debug)]
pub struct UnixIncoming {
    inner: AcceptStream,
}

impl Stream for UnixIncoming {
    type Item = io::Result<UnixStream>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut()
            .inner
            .poll_accept(cx)
            .map(|r| Some(r.map(UnixStream::from)))
    }
}

/// A connected Unix-domain stream socket: owned-buffer I/O through [`OwnedIo`], and the
/// futures-io traits, as for [`TcpStream`](super::TcpStream).
pub struct UnixStream {
    sock: Rc<Socket>,
    io: IoState,
}

impl UnixStream {
    /// Connect to a filesystem path, or an abstract name if it starts with a NUL byte
    /// (`IORING_OP_CONNECT`, Linux 5.5).
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        Self::connect_sockaddr(SockAddr::from_unix_path(path.as_ref())?).await
    }

    /// Connect to a std Unix address (pathname or abstract).
    pub async fn connect_addr(addr: &SocketAddr) -> io::Result<UnixStream> {
        let a = if let Some(p) = addr.as_pathname() {
            SockAddr::from_unix_path(p)?
        } else if let Some(name) = addr.as_abstract_name() {
            let mut bytes = Vec::with_capacity(name.len() + 1);
            bytes.push(0);
            bytes.extend_from_slice(name);
            SockAddr::from_unix_bytes(&bytes, false)?
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot connect to an unnamed unix address",
            ));
        };
        Self::connect_sockaddr(a).await
    }

    async fn connect_sockaddr(addr: SockAddr) -> io::Result<UnixStream> {
        let sock = Rc::new(Socket::new(libc::AF_UNIX, libc::SOCK_STREAM)?);
        ops::connect(&sock, addr).await?;
        Ok(UnixStream {
            sock,
            io: IoState::default(),
        })
    }

    /// A connected pair (`socketpair(2)`).
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((Self::from_std(a)?, Self::from_std(b)?))
    }

    /// Shut down the read, write or both halves (`IORING_OP_SHUTDOWN`, Linux 5.11).
    pub fn shutdown(&self, how: Shutdown) -> Op<ShutdownOp> {
        ops::shutdown(&self.sock, how)
    }

    /// The peer's address (unnamed for a client that did not bind).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.with_std(|s| s.peer_addr())
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.with_std(|s| s.local_addr())
    }

    /// Run `f` on a std view of the socket (peer credentials, timeouts, ...). `f` must not
    /// close it or change its blocking mode.
    pub fn with_std<R>(&self, f: impl FnOnce(&std::os::unix::net::UnixStream) -> R) -> R {
        // SAFETY: the fd is a Unix stream socket; `with_std` never closes it.
        unsafe { self.sock.with_std(f) }
    }

    /// Adopt a std stream (made blocking: the ring does the waiting).
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        let sock = Socket::from_fd(OwnedFd::from(stream));
        sock.set_blocking()?;
        Ok(UnixStream {
            sock: Rc::new(sock),
            io: IoState::default(),
        })
    }

    /// Give the socket back as a std stream (a duplicate fd while an op is in flight).
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixStream> {
        let UnixStream { sock, io } = self;
        drop(io);
        Socket::unshare(sock).map(Into::into)
    }
}

impl HasSocket for UnixStream {
    fn socket(&self) -> &Rc<Socket> {
        &self.sock
    }
}

impl OwnedIo for UnixStream {}

impl From<OwnedFd> for UnixStream {
    /// Adopt a connected Unix stream socket fd as is.
    fn from(fd: OwnedFd) -> UnixStream {
        UnixStream {
            sock: Rc::new(Socket::from_fd(fd)),
            io: IoState::default(),
        }
    }
}

impl FromRawFd for UnixStream {
    /// # Safety
    /// `fd` must be an open, connected Unix stream socket that the caller owns.
    unsafe fn from_raw_fd(fd: RawFd) -> UnixStream {
        // SAFETY: forwarded to the caller.
        UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

impl AsRawFd for UnixStream {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.raw()
    }
}

impl AsFd for UnixStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd is owned by `self.sock` and stays open while `self` is borrowed.
        unsafe { BorrowedFd::borrow_raw(self.sock.raw()) }
    }
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream")
            .field("fd", &self.sock.raw())
            .field("io", &self.io)
            .finish()
    }
}

impl AsyncRead for UnixStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.io.poll_read(&this.sock, cx, buf)
    }
}

impl AsyncBufRead for UnixStream {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        this.io.poll_fill_buf(&this.sock, cx)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        self.get_mut().io.consume(amt);
    }
}

impl AsyncWrite for UnixStream {
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
