//! Vectored members (`IORING_OP_WRITEV_FIXED`): one op writing several lease ranges.
//!
//! The SQE points at an iovec array, owned by the member's `Hold` (a `Vec`: its heap memory
//! does not move when the `Hold` moves, and moving a `Vec` does not invalidate pointers into
//! it, as moving a `Box` may), whose entries point into the lease slot.
//! With a leader whose output decides the lengths, the executor's length rule cannot help (an
//! SQE's `len` is the iovec count), so the group's prep hook cuts each iovec to the bytes the
//! leader produced, in the driver, at the leader's CQE, before the member is pushed (G6).
//!
//! Invariant: the prep hook writes an iovec array only between the leader's CQE and its
//! member's push. Until then the array is untouched by the kernel (the member is not in the
//! SQ), and alive: member data lives in the group's `GroupOp` until the member's final CQE,
//! and a dropped group discards the leader's followers, hook included, before it releases
//! any member's data.

use std::rc::Rc;

use io_uring::squeue::Entry;
use ringleader_executor::{Cqe, MemberPrep};

use super::layout::clamp;
use super::spec::Member;

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

/// What the prep hook needs about one vectored member: its iovec array and ranges.
pub(crate) struct Fixup {
    iov: *mut libc::iovec,
    ranges: Rc<[(usize, usize)]>,
}

impl Fixup {
    /// Remember `iov`, the start of the array in the member's `Hold`, for the hook: the
    /// member's ranges, or for a prefixed send its one lease range `off..off + max` (its
    /// `iov` is then the lease iovec, after the prefix's).
    pub(crate) fn new(iov: *mut libc::iovec, member: &Member, off: usize, max: usize) -> Fixup {
        let ranges = match member.ranges() {
            Some(r) => Rc::clone(r),
            None => Rc::from([(off, off + max)]),
        };
        Fixup { iov, ranges }
    }
}

/// A prep hook that cuts each vectored member's iovecs to the leader's result.
pub(crate) fn prep(fixups: Vec<Option<Fixup>>) -> MemberPrep {
    Box::new(move |leader: &Cqe, i: usize, _entry: &mut Entry| {
        let Some(Some(f)) = fixups.get(i) else { return };
        let produced = leader.result.max(0) as usize;
        for (k, &(a, b)) in f.ranges.iter().enumerate() {
            // SAFETY: `f.iov` is the member's iovec array, `ranges.len()` entries long, alive
            // and not yet seen by the kernel (module invariant); nothing else reads or writes
            // it while the driver runs this hook.
            unsafe { (*f.iov.add(k)).iov_len = clamp(produced, a, b - a) };
        }
    })
}
