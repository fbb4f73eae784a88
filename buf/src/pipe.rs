//! `PipeLease`: a pipe pair whose kernel pages hold data that never enters user memory.
//!
//! `SPLICE` moves data from a socket or file into the pipe and out to another fd; `TEE`
//! duplicates it to several. The pipe's capacity (`F_SETPIPE_SZ`) bounds how much one lease
//! holds. Invariant: both fds stay open as long as the lease; an op that uses them takes the
//! lease (or a [`PipeRef`]) into its op data, so the fds outlive the op's final CQE even if
//! its future is dropped, and are never closed (or their numbers reused) under the kernel.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;

struct Fds {
    read: OwnedFd,
    write: OwnedFd,
}

/// A pipe pair sized to hold `capacity()` bytes in kernel pages.
///
/// ```
/// use ringleader::buf::PipeLease;
/// let p = PipeLease::new(1 << 20).unwrap();
/// assert!(p.capacity() >= 1 << 20);
/// assert_eq!(p.len().unwrap(), 0);
/// ```
pub struct PipeLease {
    fds: Rc<Fds>,
    capacity: usize,
}

/// Keeps a [`PipeLease`]'s fds open; put one in the data of an op that uses them.
#[derive(Clone)]
pub struct PipeRef {
    _fds: Rc<Fds>,
}

impl fmt::Debug for PipeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipeRef").finish_non_exhaustive()
    }
}

impl PipeLease {
    /// A new pipe (`pipe2(O_CLOEXEC)`) grown to at least `capacity` bytes. The kernel rounds
    /// up to a power of two pages; unprivileged processes are limited to
    /// `/proc/sys/fs/pipe-max-size`.
    pub fn new(capacity: usize) -> io::Result<PipeLease> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` has room for the two fds pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("ringleader: pipe2: {e}")));
        }
        // SAFETY: pipe2 succeeded: both fds are open and owned by nobody else.
        let fds = unsafe {
            Fds {
                read: OwnedFd::from_raw_fd(fds[0]),
                write: OwnedFd::from_raw_fd(fds[1]),
            }
        };
        let want = libc::c_int::try_from(capacity).unwrap_or(libc::c_int::MAX);
        // SAFETY: F_SETPIPE_SZ takes an int and touches no user memory.
        let got = unsafe { libc::fcntl(fds.write.as_raw_fd(), libc::F_SETPIPE_SZ, want) };
        if got < 0 {
            let e = io::Error::last_os_error();
            let max = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "?".to_owned());
            return Err(io::Error::new(
                e.kind(),
                format!(
                    "ringleader: F_SETPIPE_SZ {capacity} bytes failed (pipe-max-size is {max} \
                     for unprivileged users; raise fs.pipe-max-size or ask for less): {e}"
                ),
            ));
        }
        Ok(PipeLease {
            fds: Rc::new(fds),
            capacity: got as usize,
        })
    }

    /// Bytes the pipe can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes in the pipe now (`FIONREAD`).
    pub fn len(&self) -> io::Result<usize> {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int to `n`, which is valid and writable.
        if unsafe { libc::ioctl(self.fds.read.as_raw_fd(), libc::FIONREAD, &mut n) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Whether the pipe holds no data.
    pub fn is_empty(&self) -> io::Result<bool> {
        self.len().map(|n| n == 0)
    }

    /// The read end (the source of a `SPLICE`/`TEE` out).
    pub fn read_fd(&self) -> BorrowedFd<'_> {
        self.fds.read.as_fd()
    }

    /// The write end (the target of a `SPLICE` in).
    pub fn write_fd(&self) -> BorrowedFd<'_> {
        self.fds.write.as_fd()
    }

    /// A reference that keeps both fds open.
    pub fn keep_alive(&self) -> PipeRef {
        PipeRef {
            _fds: Rc::clone(&self.fds),
        }
    }
}

impl fmt::Debug for PipeLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipeLease")
            .field("read", &self.fds.read.as_raw_fd())
            .field("write", &self.fds.write.as_raw_fd())
            .field("capacity", &self.capacity)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sized_and_keeps_fds_open() {
        let p = PipeLease::new(256 * 1024).unwrap();
        assert!(p.capacity() >= 256 * 1024);
        // SAFETY: F_GETPIPE_SZ reads no user memory.
        let sz = unsafe { libc::fcntl(p.read_fd().as_raw_fd(), libc::F_GETPIPE_SZ) };
        assert_eq!(sz as usize, p.capacity());
        let w = p.write_fd().as_raw_fd();
        let keep = p.keep_alive();
        drop(p);
        // SAFETY: F_GETFD reads no user memory.
        let flags = unsafe { libc::fcntl(w, libc::F_GETFD) };
        assert!(flags >= 0, "fd closed under a PipeRef");
        drop(keep);
    }
}
