//! Vectored members (`IORING_OP_WRITEV_FIXED`): one op writing several lease ranges.
//!
//! The SQE points at an iovec array, owned by the member's `Hold` (a `Vec`: its heap memory
//! does not move when the `Hold` moves, and moving a `Vec` does not invalidate pointers into
//! it, as moving a `Box` may), whose entries point into the lease slot.
//! With a leader whose output decides the lengths, the executor's length rule cannot help (an
//! SQE's `len` is the iovec count), so the group's prep hook cuts each iovec to the bytes the
//! leader produced, in the driver, at the leader's CQE, before the member is pushed (G6).
//!
//! The kernel refuses a zero-length iovec in `WRITEV_FIXED` (`EFAULT`), and a short leader
//! empties the ranges past its output: a writev member's non-empty iovecs are packed at the
//! front of its array and its SQE rebuilt with their count, or made a `NOP` (result 0) when
//! none is left, so it writes exactly the bytes produced (G6) instead of failing (G5).
//!
//! Invariant: the prep hook writes an iovec array only between the leader's CQE and its
//! member's push. Until then the array is untouched by the kernel (the member is not in the
//! SQ), and alive: member data lives in the group's `GroupOp` until the member's final CQE,
//! and a dropped group discards the leader's followers, hook included, before it releases
//! any member's data.

use std::os::fd::RawFd;
use std::rc::Rc;

use io_uring::squeue::{Entry, Flags};
use ringleader_executor::{Cqe, MemberPrep};

use super::layout::clamp;
use super::spec::{Member, MemberKind};
use super::sqe;

/// The iovecs of ranges `(start, end)` of the lease at `base`, each cut to the leader's
/// output when `produced` is known.
pub(crate) fn iovecs(
    base: *mut u8,
    ranges: &[(usize, usize)],
    produced: Option<usize>,
) -> Vec<libc::iovec> {
    ranges
        .iter()
        .map(|&(a, b)| libc::iovec {
            iov_base: base.wrapping_add(a).cast(),
            iov_len: produced.map_or(b - a, |n| clamp(n, a, b - a)),
        })
        .collect()
}

/// The SQE of a writev member over the iovecs at `iov` of which the first `n` are in use:
/// `WRITEV(_FIXED)` with `n` iovecs, or a `NOP` when `n` is 0 (the kernel refuses empty
/// iovecs, and a write of nothing is a success of 0 bytes).
pub(crate) fn writev_entry(
    fd: RawFd,
    iov: *const libc::iovec,
    n: usize,
    index: Option<u16>,
    pos: u64,
    force_async: bool,
) -> Entry {
    let entry = if n == 0 {
        sqe::nop()
    } else {
        // `place` allows at most 1024 ranges.
        sqe::writev(fd, iov, n as u32, index, pos)
    };
    if force_async {
        entry.flags(Flags::ASYNC)
    } else {
        entry
    }
}

/// A writev member's target, to rebuild its SQE once its iovecs are packed.
struct Writev {
    fd: RawFd,
    pos: u64,
    index: Option<u16>,
    force_async: bool,
}

/// The ranges that hold at least one byte (the others get no iovec).
pub(crate) fn nonempty(ranges: &[(usize, usize)]) -> Vec<(usize, usize)> {
    ranges.iter().copied().filter(|&(a, b)| a < b).collect()
}

/// What the prep hook needs about one vectored member: its iovec array and ranges.
pub(crate) struct Fixup {
    iov: *mut libc::iovec,
    ranges: Rc<[(usize, usize)]>,
    writev: Option<Writev>,
}

impl Fixup {
    /// Remember `iov`, the start of the array in the member's `Hold`, for the hook: the
    /// member's ranges, or for a prefixed send its one lease range `off..off + max` (its
    /// `iov` is then the lease iovec, after the prefix's). `index`: the lease's fixed-buffer
    /// index, as the member's SQE was built with.
    pub(crate) fn new(
        iov: *mut libc::iovec,
        member: &Member,
        off: usize,
        max: usize,
        index: Option<u16>,
    ) -> Fixup {
        // A writev's array holds only its non-empty ranges (`layout.rs`), in order.
        let ranges = match member.ranges() {
            Some(r) => Rc::from(nonempty(r)),
            None => Rc::from([(off, off + max)]),
        };
        let writev = match &member.kind {
            MemberKind::WritevFixed { .. } => {
                let (fd, pos) = member.vectored_target();
                Some(Writev {
                    fd,
                    pos,
                    index,
                    force_async: member.force_async,
                })
            }
            _ => None,
        };
        Fixup {
            iov,
            ranges,
            writev,
        }
    }
}

/// A prep hook that cuts each vectored member's iovecs to the leader's result.
pub(crate) fn prep(fixups: Vec<Option<Fixup>>) -> MemberPrep {
    Box::new(move |leader: &Cqe, i: usize, entry: &mut Entry| {
        let Some(Some(f)) = fixups.get(i) else { return };
        let produced = leader.result.max(0) as usize;
        let mut used = 0;
        for (k, &(a, b)) in f.ranges.iter().enumerate() {
            let len = clamp(produced, a, b - a);
            if len == 0 && f.writev.is_some() {
                continue; // Packed out: the kernel refuses empty iovecs in a writev.
            }
            // SAFETY: `f.iov` is the member's iovec array, `ranges.len()` entries long, alive
            // and not yet seen by the kernel (module invariant); nothing else reads or writes
            // it while the driver runs this hook. `used <= k < ranges.len()`, and entry `k`
            // is read before entry `used` is written (entries below `k` are done with).
            unsafe {
                let base = (*f.iov.add(k)).iov_base;
                *f.iov.add(used) = libc::iovec {
                    iov_base: base,
                    iov_len: len,
                };
            }
            used += 1;
        }
        if let Some(w) = &f.writev {
            *entry = writev_entry(w.fd, f.iov, used, w.index, w.pos, w.force_async);
        }
    })
}
