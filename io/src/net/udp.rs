//! [`UdpSocket`]: datagrams through the ring.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use ringleader_buf::{IoBuf, IoBufMut};
use ringleader_executor::Op;

use super::addr::SockAddr;
use super::msg::{self, RecvMsg, SendMsg};
use super::ops::{self, Recv, Send};
use super::socket::{Socket, each_addr};

/// A UDP socket.
///
/// `send_to`/`recv_from` use `SENDMSG`/`RECVMSG` (the header, iovec and address are boxed in
/// the op's data); a connected socket can use the plainer `send`/`recv`.
///
/// ```
/// use ringleader::net::UdpSocket;
///
/// ringleader::block_on(async {
///     let a = UdpSocket::bind("127.0.0.1:0").unwrap();
///     let b = UdpSocket::bind("127.0.0.1:0").unwrap();
///     let (res, _) = a.send_to(b"hello".to_vec(), b.local_addr().unwrap()).await;
///     assert_eq!(res.unwrap(), 5);
///     let (res, buf) = b.recv_from(Vec::with_capacity(64)).await;
///     let (n, from) = res.unwrap();
///     assert_eq!((n, &buf[..], from), (5, &b"hello"[..], a.local_addr().unwrap()));
/// });
/// ```
pub struct UdpSocket {
    sock: Rc<Socket>,
}

impl UdpSocket {
    /// Bind to the first address of `addrs` that works.
    pub fn bind(addrs: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        each_addr(addrs, |a| {
            let domain = match a {
                SocketAddr::V4(_) => libc::AF_INET,
                SocketAddr::V6(_) => libc::AF_INET6,
            };
            let s = Socket::new(domain, libc::SOCK_DGRAM)?;
            s.bind(&SockAddr::from_std(a))?;
            Ok(s)
        })
        .map(|s| UdpSocket { sock: Rc::new(s) })
    }

    /// Set the default peer: `send`/`recv` then talk to it, and datagrams from other
    /// addresses are dropped (`IORING_OP_CONNECT`, Linux 5.5).
    pub async fn connect(&self, addr: SocketAddr) -> io::Result<()> {
        ops::connect(&self.sock, SockAddr::from_std(&addr)).await
    }

    /// Send `buf`'s initialised bytes as one datagram to `addr` (`IORING_OP_SENDMSG`,
    /// Linux 5.3).
    pub fn send_to<B: IoBuf>(&self, buf: B, addr: SocketAddr) -> Op<SendMsg<B>> {
        msg::send_to(&self.sock, buf, &addr)
    }

    /// Receive one datagram into the start of `buf` and the sender's address
    /// (`IORING_OP_RECVMSG`, Linux 5.3). A datagram longer than `buf.bytes_total()` is
    /// truncated, as with `recvfrom(2)`.
    pub fn recv_from<B: IoBufMut>(&self, buf: B) -> Op<RecvMsg<B>> {
        msg::recv_from(&self.sock, buf)
    }

    /// Send one datagram to the connected peer (`IORING_OP_SEND`, Linux 5.6);
    /// `EDESTADDRREQ` if not connected.
    pub fn send<B: IoBuf>(&self, buf: B) -> Op<Send<B>> {
        ops::send(&self.sock, buf, 0, 0)
    }

    /// Receive one datagram from the connected peer (`IORING_OP_RECV`, Linux 5.6).
    pub fn recv<B: IoBufMut>(&self, buf: B) -> Op<Recv<B>> {
        ops::recv(&self.sock, buf, 0, 0)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()?.std_addr()
    }

    /// The connected peer's address (`ENOTCONN` if not connected).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.peer_addr()?.std_addr()
    }

    /// Run `f` on a std view of the socket, for the options std offers (`set_broadcast`,
    /// multicast, TTL, ...). `f` must not close the socket or change its blocking mode.
    pub fn with_std<R>(&self, f: impl FnOnce(&std::net::UdpSocket) -> R) -> R {
        // SAFETY: the fd is a UDP socket; `with_std` never closes it.
        unsafe { self.sock.with_std(f) }
    }

    /// Adopt a std socket (made blocking: the ring does the waiting).
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        let sock = Socket::from_fd(OwnedFd::from(socket));
        sock.set_blocking()?;
        Ok(UdpSocket {
            sock: Rc::new(sock),
        })
    }

    /// Give the socket back as a std socket (a duplicate fd while an op is in flight).
    pub fn into_std(self) -> io::Result<std::net::UdpSocket> {
        Socket::unshare(self.sock).map(std::net::UdpSocket::from)
    }
}

impl From<OwnedFd> for UdpSocket {
    /// Adopt a UDP socket fd as is.
    fn from(fd: OwnedFd) -> UdpSocket {
        UdpSocket {
            sock: Rc::new(Socket::from_fd(fd)),
        }
    }
}

impl FromRawFd for UdpSocket {
    /// # Safety
    /// `fd` must be an open UDP socket that the caller owns.
    unsafe fn from_raw_fd(fd: RawFd) -> UdpSocket {
        // SAFETY: forwarded to the caller.
        UdpSocket::from(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.raw()
    }
}

impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd is owned by `self.sock` and stays open while `self` is borrowed.
        unsafe { BorrowedFd::borrow_raw(self.sock.raw()) }
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("fd", &self.sock.raw())
            .finish()
    }
}
