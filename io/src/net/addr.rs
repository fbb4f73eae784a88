//! Socket addresses in owned `sockaddr_storage`, the form the kernel reads (`CONNECT`,
//! `SENDMSG`) and writes (`ACCEPT`, `RECVMSG`).
//!
//! Invariant: `len` never exceeds `size_of::<sockaddr_storage>()`, and the first `len` bytes
//! of `storage` are a valid address of the family stored in `ss_family` (or `len` is the full
//! size and the storage is a zeroed out-buffer the kernel is about to fill).
//!
//! An op that hands the kernel a `SockAddr` keeps it in a `Box` inside the op's data, so its
//! address is stable until the final CQE.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const STORAGE_LEN: usize = mem::size_of::<libc::sockaddr_storage>();

// The casts below read and write `sockaddr_in`, `sockaddr_in6` and `sockaddr_un` through a
// `sockaddr_storage`: it must be large and aligned enough for each.
const _: () = assert!(mem::size_of::<libc::sockaddr_in>() <= STORAGE_LEN);
const _: () = assert!(mem::size_of::<libc::sockaddr_in6>() <= STORAGE_LEN);
const _: () = assert!(mem::size_of::<libc::sockaddr_un>() <= STORAGE_LEN);
const _: () =
    assert!(mem::align_of::<libc::sockaddr_storage>() >= mem::align_of::<libc::sockaddr_in6>());
const _: () =
    assert!(mem::align_of::<libc::sockaddr_storage>() >= mem::align_of::<libc::sockaddr_un>());

/// A socket address with its length, in storage large enough for any family.
#[derive(Clone, Copy)]
pub(crate) struct SockAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl SockAddr {
    /// An all-zero buffer of full length, for the kernel to fill.
    pub(crate) fn empty() -> Self {
        SockAddr {
            // SAFETY: `sockaddr_storage` is plain integers; all-zero is a valid value.
            storage: unsafe { mem::zeroed() },
            len: STORAGE_LEN as libc::socklen_t,
        }
    }

    /// The kernel form of an IPv4 or IPv6 address (same layout as std produces).
    pub(crate) fn from_std(addr: &SocketAddr) -> Self {
        let mut out = Self::empty();
        let len = match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: the storage is large and aligned enough for a `sockaddr_in`
                // (asserted above) and exclusively borrowed.
                unsafe { std::ptr::write(out.as_mut_ptr().cast::<libc::sockaddr_in>(), sin) };
                mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: as above, for `sockaddr_in6`.
                unsafe { std::ptr::write(out.as_mut_ptr().cast::<libc::sockaddr_in6>(), sin6) };
                mem::size_of::<libc::sockaddr_in6>()
            }
        };
        out.len = len as libc::socklen_t;
        out
    }

    /// A Unix-domain address: a filesystem path, or (leading NUL byte) an abstract name.
    pub(crate) fn from_unix_path(path: &Path) -> io::Result<Self> {
        let bytes = path.as_os_str().as_bytes();
        Self::from_unix_bytes(bytes, bytes.first() != Some(&0))
    }

    /// A Unix-domain address from the raw `sun_path` bytes; `nul_terminated` for pathnames.
    pub(crate) fn from_unix_bytes(bytes: &[u8], nul_terminated: bool) -> io::Result<Self> {
        let mut out = Self::empty();
        // SAFETY: the storage is large and aligned enough for a `sockaddr_un` (asserted
        // above), zeroed, and exclusively borrowed.
        let un = unsafe { &mut *out.as_mut_ptr().cast::<libc::sockaddr_un>() };
        let room = un.sun_path.len() - usize::from(nul_terminated);
        if bytes.is_empty() || bytes.len() > room {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "unix socket path must be 1..={room} bytes, got {}",
                    bytes.len()
                ),
            ));
        }
        if nul_terminated && bytes.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "unix socket path contains a NUL byte",
            ));
        }
        un.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (dst, src) in un.sun_path.iter_mut().zip(bytes) {
            *dst = *src as libc::c_char;
        }
        let base = mem::offset_of!(libc::sockaddr_un, sun_path);
        out.len = (base + bytes.len() + usize::from(nul_terminated)) as libc::socklen_t;
        Ok(out)
    }

    /// The address family (`AF_INET`, `AF_INET6`, `AF_UNIX`, or 0 when unset).
    pub(crate) fn family(&self) -> libc::c_int {
        libc::c_int::from(self.storage.ss_family)
    }

    pub(crate) fn as_ptr(&self) -> *const libc::sockaddr {
        (&raw const self.storage).cast()
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut libc::sockaddr {
        (&raw mut self.storage).cast()
    }

    pub(crate) fn len(&self) -> libc::socklen_t {
        self.len
    }

    /// Where the kernel writes the length it filled in (`accept`'s `addrlen`).
    pub(crate) fn len_mut(&mut self) -> &mut libc::socklen_t {
        &mut self.len
    }

    /// Convert an `AF_INET`/`AF_INET6` address to std's type.
    pub(crate) fn std_addr(&self) -> io::Result<SocketAddr> {
        let len = self.len as usize;
        match self.family() {
            libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: family and length say the storage holds a `sockaddr_in`; the
                // storage is aligned for it (asserted above).
                let sin = unsafe { &*self.as_ptr().cast::<libc::sockaddr_in>() };
                let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                Ok(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for a `sockaddr_in6`.
                let sin6 = unsafe { &*self.as_ptr().cast::<libc::sockaddr_in6>() };
                Ok(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            family => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not an IP socket address (family {family}, length {len})"),
            )),
        }
    }
}

impl std::fmt::Debug for SockAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.std_addr() {
            Ok(a) => write!(f, "SockAddr({a})"),
            Err(_) => write!(f, "SockAddr(family {}, len {})", self.family(), self.len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_addresses_round_trip() {
        for s in ["127.0.0.1:7878", "[::1]:9", "[fe80::1%3]:443", "0.0.0.0:0"] {
            let a: SocketAddr = s.parse().unwrap();
            assert_eq!(SockAddr::from_std(&a).std_addr().unwrap(), a, "{s}");
        }
    }

    #[test]
    fn unix_path_length_counts_the_nul() {
        let a = SockAddr::from_unix_path(Path::new("/tmp/x")).unwrap();
        assert_eq!(a.family(), libc::AF_UNIX);
        let base = mem::offset_of!(libc::sockaddr_un, sun_path);
        assert_eq!(a.len() as usize, base + 7);
        let abs = SockAddr::from_unix_bytes(b"\0name", false).unwrap();
        assert_eq!(abs.len() as usize, base + 5);
    }

    #[test]
    fn unix_path_too_long_is_invalid_input() {
        let long = "x".repeat(200);
        let e = SockAddr::from_unix_path(Path::new(&long)).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
