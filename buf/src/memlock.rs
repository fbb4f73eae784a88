//! The error of a registration refused for want of locked memory.
//!
//! Registering fixed buffers pins their pages and charges them to the user's
//! `RLIMIT_MEMLOCK`, unless the ring was created by a process holding `CAP_IPC_LOCK` (the
//! kernel decides at `io_uring_setup`). When the charge does not fit, the kernel answers
//! `ENOMEM`; [`registration_error`] turns that into a [`MemlockError`] that says which limit,
//! how much was asked, and what to do.

use std::fmt;
use std::io;

/// A pool's registration needed more locked memory than `RLIMIT_MEMLOCK` allows.
///
/// Carried inside the `io::Error` (kind [`io::ErrorKind::OutOfMemory`]) that pool creation
/// returns; reach it with `err.get_ref()` and `downcast_ref`. Its [`source`] is the kernel's
/// error (`ENOMEM`, errno preserved).
///
/// [`source`]: std::error::Error::source
#[derive(Debug)]
pub struct MemlockError {
    asked: usize,
    soft: Option<u64>,
    hard: Option<u64>,
    source: io::Error,
}

impl MemlockError {
    /// Bytes the registration needed to lock.
    pub fn asked(&self) -> usize {
        self.asked
    }
    /// The soft `RLIMIT_MEMLOCK` in bytes when the error happened (`None`: unlimited).
    pub fn limit(&self) -> Option<u64> {
        self.soft
    }
}

impl fmt::Display for MemlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show =
            |v: Option<u64>| v.map_or_else(|| "unlimited".to_owned(), |b| format!("{b} bytes"));
        write!(
            f,
            "ringleader: registering {} bytes of fixed buffers needs that much locked memory, but \
             RLIMIT_MEMLOCK is {} (hard limit {}) and the ring was created without \
             CAP_IPC_LOCK; other registrations of this user count against the same limit. \
             Raise the limit (`ulimit -l`, LimitMEMLOCK= in a systemd unit, `memlock` in \
             /etc/security/limits.conf) or run with CAP_IPC_LOCK, or shrink the pool (fewer or \
             smaller slots): {}",
            self.asked,
            show(self.soft),
            show(self.hard),
            self.source
        )
    }
}

impl std::error::Error for MemlockError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Give a failed registration of `asked` bytes its context: the memlock explanation for
/// `ENOMEM`, the plain operation name otherwise.
#[cold] // Registration happens once per pool; failing it is the exception.
pub(crate) fn registration_error(e: io::Error, asked: usize, what: &str) -> io::Error {
    if e.raw_os_error() != Some(libc::ENOMEM) {
        return io::Error::new(
            e.kind(),
            format!("ringleader: registering {asked} bytes of {what} failed: {e}"),
        );
    }
    let (soft, hard) = memlock_limit();
    io::Error::new(
        io::ErrorKind::OutOfMemory,
        MemlockError {
            asked,
            soft,
            hard,
            source: e,
        },
    )
}

/// The current soft and hard `RLIMIT_MEMLOCK` (`None`: unlimited or unknown).
fn memlock_limit() -> (Option<u64>, Option<u64>) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return (None, None);
    }
    let v = |x: libc::rlim_t| (x != libc::RLIM_INFINITY).then_some(x);
    (v(lim.rlim_cur), v(lim.rlim_max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enomem_names_limit_amount_and_remedy() {
        let e = registration_error(io::Error::from_raw_os_error(libc::ENOMEM), 1 << 20, "x");
        assert_eq!(e.kind(), io::ErrorKind::OutOfMemory);
        let msg = e.to_string();
        for needle in [
            "RLIMIT_MEMLOCK",
            "1048576 bytes",
            "ulimit -l",
            "shrink the pool",
        ] {
            assert!(msg.contains(needle), "{needle:?} missing from {msg}");
        }
        let inner = e
            .get_ref()
            .and_then(|i| i.downcast_ref::<MemlockError>())
            .unwrap();
        assert_eq!(inner.asked(), 1 << 20);
        let src = std::error::Error::source(inner).unwrap();
        let src = src.downcast_ref::<io::Error>().unwrap();
        assert_eq!(src.raw_os_error(), Some(libc::ENOMEM));
    }

    #[test]
    fn other_errors_keep_their_kind() {
        let e = registration_error(io::Error::from_raw_os_error(libc::EFAULT), 10, "x");
        assert!(e.to_string().contains("EFAULT") || e.to_string().contains("Bad address"));
        assert!(
            e.get_ref()
                .unwrap()
                .downcast_ref::<MemlockError>()
                .is_none()
        );
    }
}
