//! The ring itself, in one of its two SQE sizes.
//!
//! A ring is set up with 64-byte SQEs (the default) or 128-byte ones
//! ([`Builder::sqe128`](crate::Builder::sqe128), `IORING_SETUP_SQE128`, Linux 5.19), which
//! some `URING_CMD` drivers require (FUSE over io_uring, NVMe passthrough). The kernel of
//! this project's target (6.18) has no mixed-size mode, so a core's ring carries one size
//! for every op. Ops are built as 64-byte [`Entry`]s whatever the ring: on a 128-byte ring
//! the push widens them (zeroed upper half, which is what the kernel reads as "no extra
//! command bytes"). Only ops that need the upper half are built as [`Entry128`]; they go
//! through [`Sq::push128`], which refuses them on a 64-byte ring unless their upper half
//! is all zero.
//!
//! The size is one enum tag per ring, matched once per push: the default path pays a
//! well-predicted branch, no copy and no indirection (measured: bench `core --only nop`).

use std::os::fd::{AsRawFd, RawFd};

use io_uring::cqueue::CompletionQueue;
use io_uring::squeue::{Entry, Entry128, SubmissionQueue};
use io_uring::{IoUring, Parameters, Submitter};

/// A ring of 64-byte or 128-byte SQEs (16-byte CQEs either way).
pub(crate) enum Ring {
    Sqe64(IoUring<Entry>),
    Sqe128(IoUring<Entry128>),
}

impl Ring {
    /// A submitter (syscalls only; it never touches the SQ entries).
    #[inline]
    pub(crate) fn submitter(&self) -> Submitter<'_> {
        match self {
            Ring::Sqe64(r) => r.submitter(),
            Ring::Sqe128(r) => r.submitter(),
        }
    }

    pub(crate) fn params(&self) -> &Parameters {
        match self {
            Ring::Sqe64(r) => r.params(),
            Ring::Sqe128(r) => r.params(),
        }
    }

    /// Whether the SQEs are 128 bytes.
    #[inline]
    pub(crate) fn is_sqe128(&self) -> bool {
        matches!(self, Ring::Sqe128(_))
    }

    /// A view of the submission queue.
    ///
    /// # Safety
    /// No other view of this ring's SQ may exist while the returned one lives.
    #[inline]
    pub(crate) unsafe fn sq(&self) -> Sq<'_> {
        match self {
            // SAFETY: forwarded from the caller.
            Ring::Sqe64(r) => Sq::Sqe64(unsafe { r.submission_shared() }),
            // SAFETY: forwarded from the caller.
            Ring::Sqe128(r) => Sq::Sqe128(unsafe { r.submission_shared() }),
        }
    }

    /// A view of the completion queue.
    ///
    /// # Safety
    /// No other view of this ring's CQ may exist while the returned one lives.
    #[inline]
    pub(crate) unsafe fn cq(&self) -> CompletionQueue<'_> {
        match self {
            // SAFETY: forwarded from the caller.
            Ring::Sqe64(r) => unsafe { r.completion_shared() },
            // SAFETY: forwarded from the caller.
            Ring::Sqe128(r) => unsafe { r.completion_shared() },
        }
    }
}

impl AsRawFd for Ring {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Ring::Sqe64(r) => r.as_raw_fd(),
            Ring::Sqe128(r) => r.as_raw_fd(),
        }
    }
}

/// A view of the submission queue of either size (synced to the kernel when dropped).
pub(crate) enum Sq<'a> {
    Sqe64(SubmissionQueue<'a, Entry>),
    Sqe128(SubmissionQueue<'a, Entry128>),
}

/// The SQ is full.
#[derive(Debug)]
pub(crate) struct SqFull;

/// Why a 128-byte SQE was not pushed.
#[derive(Debug)]
pub(crate) enum Push128Error {
    /// The SQ is full.
    Full,
    /// The ring has 64-byte SQEs and the entry uses its upper half.
    TooWide,
}

impl Sq<'_> {
    #[inline]
    pub(crate) fn len(&self) -> usize {
        match self {
            Sq::Sqe64(q) => q.len(),
            Sq::Sqe128(q) => q.len(),
        }
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Sq::Sqe64(q) => q.is_empty(),
            Sq::Sqe128(q) => q.is_empty(),
        }
    }

    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        match self {
            Sq::Sqe64(q) => q.capacity(),
            Sq::Sqe128(q) => q.capacity(),
        }
    }

    #[inline]
    pub(crate) fn need_wakeup(&self) -> bool {
        match self {
            Sq::Sqe64(q) => q.need_wakeup(),
            Sq::Sqe128(q) => q.need_wakeup(),
        }
    }

    #[inline]
    pub(crate) fn cq_overflow(&self) -> bool {
        match self {
            Sq::Sqe64(q) => q.cq_overflow(),
            Sq::Sqe128(q) => q.cq_overflow(),
        }
    }

    #[inline]
    pub(crate) fn taskrun(&self) -> bool {
        match self {
            Sq::Sqe64(q) => q.taskrun(),
            Sq::Sqe128(q) => q.taskrun(),
        }
    }

    /// Push a 64-byte SQE (widened with a zero upper half on a 128-byte ring).
    ///
    /// # Safety
    /// As for io-uring's `SubmissionQueue::push`: `entry`'s pointers stay valid until its
    /// final CQE.
    #[inline]
    pub(crate) unsafe fn push(&mut self, entry: &Entry) -> Result<(), SqFull> {
        match self {
            // SAFETY: forwarded from the caller.
            Sq::Sqe64(q) => unsafe { q.push(entry) }.map_err(|_| SqFull),
            // SAFETY: forwarded from the caller; the widened entry carries the same pointers
            // and zeros in the upper half, which no op built as a 64-byte entry reads.
            Sq::Sqe128(q) => unsafe { q.push(&Entry128::from(entry.clone())) }.map_err(|_| SqFull),
        }
    }

    /// Push all of `entries` or none.
    ///
    /// # Safety
    /// As for [`Sq::push`], for every entry.
    pub(crate) unsafe fn push_multiple(&mut self, entries: &[Entry]) -> Result<(), SqFull> {
        match self {
            // SAFETY: forwarded from the caller.
            Sq::Sqe64(q) => unsafe { q.push_multiple(entries) }.map_err(|_| SqFull),
            Sq::Sqe128(q) => {
                // Only this thread pushes (the driver owns the one SQ view) and the kernel
                // only makes room: checked once, the room is there for every push below.
                if q.capacity() - q.len() < entries.len() {
                    return Err(SqFull);
                }
                for e in entries {
                    // SAFETY: forwarded from the caller, widened as in `push`.
                    unsafe { q.push(&Entry128::from(e.clone())) }.expect("room checked above");
                }
                Ok(())
            }
        }
    }

    /// Push a 128-byte SQE. On a 64-byte ring only an entry whose upper 64 bytes are zero is
    /// pushed (as its lower half: what the kernel would read from it anyway, since those bytes
    /// are the only ones a 64-byte SQE has); any other is refused with `TooWide`.
    ///
    /// # Safety
    /// As for [`Sq::push`].
    pub(crate) unsafe fn push128(&mut self, entry: &Entry128) -> Result<(), Push128Error> {
        match self {
            // SAFETY: forwarded from the caller.
            Sq::Sqe128(q) => unsafe { q.push(entry) }.map_err(|_| Push128Error::Full),
            Sq::Sqe64(q) => {
                let (low, high) = split128(entry);
                if high.iter().any(|&b| b != 0) {
                    return Err(Push128Error::TooWide);
                }
                // SAFETY: forwarded from the caller; `low` is the entry's own first 64 bytes.
                unsafe { q.push(&low) }.map_err(|_| Push128Error::Full)
            }
        }
    }
}

const _: () = assert!(std::mem::size_of::<Entry>() == 64);
const _: () = assert!(std::mem::size_of::<Entry128>() == 128);

/// An `Entry128`'s two halves: the 64-byte SQE and the extra 64 command bytes.
pub(crate) fn split128(entry: &Entry128) -> (Entry, [u8; 64]) {
    let p = (entry as *const Entry128).cast::<u8>();
    // SAFETY: `Entry128` is `#[repr(C)]` over (`Entry`, `[u8; 64]`), 128 bytes (asserted
    // above), so its first 64 bytes are a valid `Entry` (itself `#[repr(C)]` over the plain
    // integer fields of `io_uring_sqe`) and the next 64 are plain bytes; both are read by
    // value, unaligned reads of initialised memory.
    unsafe {
        (
            p.cast::<Entry>().read_unaligned(),
            p.add(64).cast::<[u8; 64]>().read_unaligned(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split128_gives_both_halves() {
        let mut cmd = [0u8; 80];
        cmd[0] = 7;
        cmd[79] = 9;
        let e = io_uring::opcode::UringCmd80::new(io_uring::types::Fd(3), 0x55)
            .cmd(cmd)
            .build()
            .user_data(42);
        let (low, high) = split128(&e);
        assert_eq!(low.get_user_data(), 42);
        assert_eq!(
            low.get_opcode(),
            u32::from(io_uring::opcode::UringCmd80::CODE)
        );
        assert_eq!(high[63], 9);
        assert!(high[..63].iter().all(|&b| b == 0));
    }
}
