//! [`TcpListener`]: a listening TCP socket; accepts one at a time or as a multishot stream.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures::Stream;

use super::accept::{self, AcceptStream};
use super::socket::{Socket, each_addr};
use super::tcp_stream::TcpStream;

/// A TCP listener.
///
/// Binding and listening are plain syscalls (they never wait); accepting goes through the
/// ring. [`TcpListener::incoming`] keeps one multishot accept armed, so a burst of clients
/// costs one SQE, not one per connection.
///
/// ```
/// use futures::StreamExt;
/// use ringleader::net::{TcpListener, TcpStream};
///
/// ringleader::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     let mut incoming = listener.incoming();
///     let _a = TcpStream::connect(addr).await.unwrap();
///     let _b = TcpStream::connect(addr).await.unwrap();
///     for _ in 0..2 {
///         let stream = incoming.next().await.unwrap().unwrap();
///         assert_eq!(stream.local_addr().unwrap(), addr);
///     }
/// });
/// ```
pub struct TcpListener {
    sock: Rc<Socket>,
}

impl TcpListener {
    /// Bind to the first address of `addrs` that works, with `SO_REUSEADDR`, and listen.
    pub fn bind(addrs: impl ToSocketAddrs) -> io::Result<TcpListener> {
        each_addr(addrs, |a| Socket::tcp_listener(a, false)).map(Self::from_socket)
    }

    /// As [`TcpListener::bind`], with `SO_REUSEPORT`: several listeners (one per core) may
    /// bind the same address and the kernel spreads incoming connections among them.
    ///
    /// ```
    /// use ringleader::net::TcpListener;
    /// let a = TcpListener::bind_reuseport("127.0.0.1:0").unwrap();
    /// let b = TcpListener::bind_reuseport(a.local_addr().unwrap()).unwrap();
    /// assert_eq!(a.local_addr().unwrap(), b.local_addr().unwrap());
    /// ```
    pub fn bind_reuseport(addrs: impl ToSocketAddrs) -> io::Result<TcpListener> {
        each_addr(addrs, |a| Socket::tcp_listener(a, true)).map(Self::from_socket)
    }

    fn from_socket(sock: Socket) -> TcpListener {
        TcpListener {
            sock: Rc::new(sock),
        }
    }

    /// Accept one connection and its peer's address (`IORING_OP_ACCEPT`, Linux 5.5).
    /// If the future is dropped after the kernel accepted, the new fd is closed.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (fd, addr) = accept::accept(&self.sock).await?;
        let stream = TcpStream::from(fd);
        // An address the kernel did not fill (it always does for TCP) falls back to a query.
        let addr = match addr.std_addr() {
            Ok(a) => a,
            Err(_) => stream.peer_addr()?,
        };
        Ok((stream, addr))
    }

    /// A stream of accepted connections, served by one multishot accept
    /// (`IORING_OP_ACCEPT` with `IORING_ACCEPT_MULTISHOT`, Linux 5.19), armed at once.
    ///
    /// The stream never ends. An error item (`ECONNABORTED` for a client that reset before
    /// it was accepted, `EMFILE`, ...) does not stop it: the next poll re-arms the accept,
    /// after a pause of 10 ms doubling to 1 s when the error says the process is out of fds
    /// or memory (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`), so a loop that logs errors and
    /// polls on does not spin while clients wait in the backlog.
    /// Connections the kernel accepts after the stream is dropped are closed.
    pub fn incoming(&self) -> Incoming {
        Incoming {
            inner: AcceptStream::new(&self.sock),
        }
    }

    /// The local address (with the port the kernel chose for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()?.std_addr()
    }

    /// Run `f` on a std view of the socket, for the options std offers (`set_ttl`, ...).
    /// `f` must not close the socket or change its blocking mode.
    pub fn with_std<R>(&self, f: impl FnOnce(&std::net::TcpListener) -> R) -> R {
        // SAFETY: the fd is a listening TCP socket; `with_std` never closes it.
        unsafe { self.sock.with_std(f) }
    }

    /// Adopt a std listener (made blocking: the ring does the waiting).
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        let sock = Socket::from_fd(OwnedFd::from(listener));
        sock.set_blocking()?;
        Ok(Self::from_socket(sock))
    }

    /// Give the socket back as a std listener (a duplicate fd while an accept is in flight).
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        Socket::unshare(self.sock).map(std::net::TcpListener::from)
    }
}

impl From<OwnedFd> for TcpListener {
    /// Adopt a listening TCP socket fd as is.
    fn from(fd: OwnedFd) -> TcpListener {
        TcpListener::from_socket(Socket::from_fd(fd))
    }
}

impl FromRawFd for TcpListener {
    /// # Safety
    /// `fd` must be an open, listening TCP socket that the caller owns.
    unsafe fn from_raw_fd(fd: RawFd) -> TcpListener {
        // SAFETY: forwarded to the caller.
        TcpListener::from(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.raw()
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd is owned by `self.sock` and stays open while `self` is borrowed.
        unsafe { BorrowedFd::borrow_raw(self.sock.raw()) }
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("fd", &self.sock.raw())
            .finish()
    }
}

/// The stream of [`TcpListener::incoming`]: one multishot accept, re-armed when the kernel
/// ends it. Holds the listening socket open while it lives.
#[must_use = "streams do nothing unless polled"]
#[derive(Debug)]
pub struct Incoming {
    inner: AcceptStream,
}

impl Stream for Incoming {
    type Item = io::Result<TcpStream>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut()
            .inner
            .poll_accept(cx)
            .map(|r| Some(r.map(TcpStream::from)))
    }
}
