//! The socket fd every net type shares with its in-flight ops.
//!
//! A [`Socket`] owns one fd. Net types hold it in an `Rc`, and every op they submit holds a
//! clone in its data, so the fd is closed only when the last op that names it has reaped its
//! final CQE. Dropping a stream while a read is in flight therefore never lets the fd number
//! be reused under an SQE that has not reached the kernel yet.
//!
//! Set-up calls that never wait for the network (`socket`, `bind`, `listen`, `setsockopt`,
//! `getsockname`) are plain syscalls; everything that waits goes through the ring.
//!
//! Sockets are created blocking and close-on-exec: io_uring turns a would-block into an
//! internal poll, so `O_NONBLOCK` buys nothing.

use std::io;
use std::mem::{self, ManuallyDrop};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use super::addr::SockAddr;

/// Backlog of listening sockets (the kernel caps it at `net.core.somaxconn`).
pub(crate) const BACKLOG: libc::c_int = 1024;

/// One owned socket fd (public only so the sealed `HasSocket` can name it; unreachable).
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
}

impl Socket {
    /// `socket(domain, ty | SOCK_CLOEXEC, 0)`.
    pub(crate) fn new(domain: libc::c_int, ty: libc::c_int) -> io::Result<Socket> {
        // SAFETY: plain integer arguments.
        let fd = cvt(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, 0) })?;
        Ok(Socket {
            // SAFETY: `socket` returned a fresh fd that nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub(crate) fn from_fd(fd: OwnedFd) -> Socket {
        Socket { fd }
    }

    /// The fd of the last `Rc`; a duplicate (`F_DUPFD_CLOEXEC`) while an op still holds one,
    /// the original then closing when that op completes.
    pub(crate) fn unshare(sock: Rc<Socket>) -> io::Result<OwnedFd> {
        match Rc::try_unwrap(sock) {
            Ok(sock) => Ok(sock.fd),
            Err(shared) => shared.fd.try_clone(),
        }
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// A TCP listener on `addr`: `SO_REUSEADDR`, optionally `SO_REUSEPORT`, bind, listen.
    pub(crate) fn tcp_listener(addr: &SocketAddr, reuseport: bool) -> io::Result<Socket> {
        let domain = match addr {
            SocketAddr::V4(_) => libc::AF_INET,
            SocketAddr::V6(_) => libc::AF_INET6,
        };
        let s = Socket::new(domain, libc::SOCK_STREAM)?;
        s.set_opt(libc::SOL_SOCKET, libc::SO_REUSEADDR, 1 as libc::c_int)?;
        if reuseport {
            s.set_opt(libc::SOL_SOCKET, libc::SO_REUSEPORT, 1 as libc::c_int)?;
        }
        s.bind(&SockAddr::from_std(addr))?;
        // SAFETY: plain integer arguments on an fd we own.
        cvt(unsafe { libc::listen(s.raw(), BACKLOG) })?;
        Ok(s)
    }

    pub(crate) fn bind(&self, addr: &SockAddr) -> io::Result<()> {
        // SAFETY: `addr` points at `addr.len()` valid bytes for the duration of the call.
        cvt(unsafe { libc::bind(self.raw(), addr.as_ptr(), addr.len()) }).map(drop)
    }

    /// `setsockopt` with a plain-data value.
    pub(crate) fn set_opt<T: Copy>(
        &self,
        level: libc::c_int,
        name: libc::c_int,
        value: T,
    ) -> io::Result<()> {
        // SAFETY: `value` is a live `T` of the size passed; the kernel only reads it.
        cvt(unsafe {
            libc::setsockopt(
                self.raw(),
                level,
                name,
                (&raw const value).cast(),
                mem::size_of::<T>() as libc::socklen_t,
            )
        })
        .map(drop)
    }

    /// `getsockopt` of a `c_int` option.
    pub(crate) fn get_int_opt(&self, level: libc::c_int, name: libc::c_int) -> io::Result<i32> {
        let mut value: libc::c_int = 0;
        let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` and `len` are live and writable; the kernel writes at most `len`
        // bytes into `value`.
        cvt(unsafe {
            libc::getsockopt(self.raw(), level, name, (&raw mut value).cast(), &mut len)
        })?;
        Ok(value)
    }

    /// `getsockname`.
    pub(crate) fn local_addr(&self) -> io::Result<SockAddr> {
        let mut a = SockAddr::empty();
        let mut len = a.len();
        // SAFETY: `a` is writable storage of `len` bytes; the kernel writes at most that many
        // and stores the real length in `len`.
        cvt(unsafe { libc::getsockname(self.raw(), a.as_mut_ptr(), &mut len) })?;
        *a.len_mut() = len;
        Ok(a)
    }

    /// `getpeername`.
    pub(crate) fn peer_addr(&self) -> io::Result<SockAddr> {
        let mut a = SockAddr::empty();
        let mut len = a.len();
        // SAFETY: as for `local_addr`.
        cvt(unsafe { libc::getpeername(self.raw(), a.as_mut_ptr(), &mut len) })?;
        *a.len_mut() = len;
        Ok(a)
    }

    /// Clear `O_NONBLOCK` (sockets adopted from std or another runtime may have it set).
    pub(crate) fn set_blocking(&self) -> io::Result<()> {
        // SAFETY: F_GETFL/F_SETFL on an fd we own; plain integer arguments.
        let flags = cvt(unsafe { libc::fcntl(self.raw(), libc::F_GETFL) })?;
        if flags & libc::O_NONBLOCK != 0 {
            // SAFETY: as above.
            cvt(unsafe { libc::fcntl(self.raw(), libc::F_SETFL, flags & !libc::O_NONBLOCK) })?;
        }
        Ok(())
    }

    /// Run `f` with a std view of the fd (socket options std exposes), never closing it.
    ///
    /// # Safety
    /// `T` must be a socket type matching this fd's kind (TCP stream, listener, UDP, Unix), so
    /// that its methods are meaningful for it; `f` must not close or replace the fd.
    pub(crate) unsafe fn with_std<T: FromRawFd, R>(&self, f: impl FnOnce(&T) -> R) -> R {
        // SAFETY: the fd is open for the whole call (we own it); `ManuallyDrop` keeps the view
        // from closing it; the caller picks a matching `T`.
        let view = ManuallyDrop::new(unsafe { T::from_raw_fd(self.raw()) });
        f(&view)
    }
}

/// `-1` → `Err(last_os_error)`.
pub(crate) fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Resolve `addrs` and try `f` on each in turn; the last error if none works.
pub(crate) fn each_addr<T>(
    addrs: impl std::net::ToSocketAddrs,
    mut f: impl FnMut(&SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in addrs.to_socket_addrs()? {
        match f(&a) {
            Ok(v) => return Ok(v),
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
