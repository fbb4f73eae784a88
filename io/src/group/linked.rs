//! Kernel-linked mode (G10): the leader and the members as one `IOSQE_IO_LINK` chain, pushed
//! all or nothing ([`ringleader_executor::submit_linked`]), so the whole group reaches the
//! kernel in one `io_uring_enter` and runs there without a trip through the CQ.
//!
//! The chain is built with every member at its full length, which is right when the leader
//! fills the lease. When it does not, the kernel breaks the chain: a short read (or a short
//! member write) fails the link, and every later op completes with `ECANCELED` without
//! running. That `ECANCELED` is the kernel's bookkeeping, not a failure of the group, so once
//! the chain has finished and the leader succeeded, every member the kernel cancelled is
//! submitted again, now with the length the leader really produced (zero-filling the tail
//! first in zero-fill mode). The group's results are therefore those of the default mode.
//! A failed leader leaves the members cancelled (G4: they never ran).
//!
//! Only leaders whose short result breaks a chain are allowed here (reads, and NOPs, which
//! are never short); a plain recv is refused at build time (`group.rs`).

use std::task::{Context, Poll};

use io_uring::squeue::{Entry, Flags};
use ringleader_buf::{Lease, LeaseRef};
use ringleader_executor::{Cqe, Op, submit_linked};

use super::hold::Hold;
use super::layout::{Placed, Shape};

/// A linked group in flight.
pub(crate) struct Run {
    /// Index 0 is the leader; then the members in order. `None` once completed.
    ops: Vec<Option<Op<Hold>>>,
    cqes: Vec<Option<Cqe>>,
    members: Vec<Placed>,
    base: *mut u8,
    index: Option<u16>,
    keep: LeaseRef,
    resubmitted: bool,
}

impl Run {
    pub(crate) fn start(
        leader: Entry,
        leader_hold: Hold,
        members: Vec<Placed>,
        base: *mut u8,
        index: Option<u16>,
        keep: &LeaseRef,
    ) -> Run {
        let n = members.len();
        let link = |e: Entry, last: bool| if last { e } else { e.flags(Flags::IO_LINK) };
        let mut entries = Vec::with_capacity(n + 1);
        entries.push((link(leader, n == 0), leader_hold));
        for (k, p) in members.iter().enumerate() {
            let built = p.build(base, index, keep, None);
            entries.push((link(built.entry, k + 1 == n), built.hold));
        }
        // SAFETY: as for the default mode (`Plan::submit`): each entry points into the lease
        // slot within its capacity and names an fd, and its `Hold` keeps both until its final
        // CQE. `submit_linked` pushes the chain all or nothing, so it is never half-queued.
        let ops = unsafe { submit_linked(entries) };
        Run {
            // Dropping the chain waits for the kernel on the ops that write into the lease
            // (the leader, read/recv members); the others are held by the lease count.
            ops: ops
                .into_iter()
                .enumerate()
                .map(|(k, op)| {
                    let writes = k == 0 || members[k - 1].member.writes_lease();
                    Some(if writes { op.settle_on_drop() } else { op })
                })
                .collect(),
            cqes: vec![None; n + 1],
            members,
            base,
            index,
            keep: keep.clone(),
            resubmitted: false,
        }
    }

    /// Poll every op; at the end of the chain, resubmit what the kernel cancelled.
    pub(crate) fn poll(
        &mut self,
        cx: &mut Context<'_>,
        lease: &mut Lease,
        shape: Shape,
    ) -> Poll<(Cqe, Vec<Cqe>)> {
        loop {
            let mut pending = false;
            for (op, cqe) in self.ops.iter_mut().zip(self.cqes.iter_mut()) {
                if let Some(o) = op {
                    match std::pin::Pin::new(o).poll(cx) {
                        Poll::Ready(c) => {
                            *cqe = Some(c);
                            *op = None;
                        }
                        Poll::Pending => pending = true,
                    }
                }
            }
            if pending {
                return Poll::Pending;
            }
            let leader = self.cqes[0].expect("leader completed");
            if !self.resubmitted && leader.result >= 0 {
                self.resubmitted = true;
                zero_fill(leader, lease, shape);
                if self.resubmit(leader) {
                    continue;
                }
            }
            let members = self.cqes[1..]
                .iter()
                .map(|c| c.expect("member completed"))
                .collect();
            return Poll::Ready((leader, members));
        }
    }

    /// Submit again, in one all-or-nothing push and unlinked, every member the kernel
    /// cancelled when the chain broke. Returns whether there was any.
    #[cold] // Only when a short result broke the chain.
    fn resubmit(&mut self, leader: Cqe) -> bool {
        let broken: Vec<usize> = (1..self.cqes.len())
            .filter(|&i| self.cqes[i].is_some_and(|c| c.result == -libc::ECANCELED))
            .collect();
        if broken.is_empty() {
            return false;
        }
        let entries = broken
            .iter()
            .map(|&i| {
                let p = &self.members[i - 1];
                let built = p.build(self.base, self.index, &self.keep, Some(leader.result));
                (built.entry, built.hold)
            })
            .collect();
        // SAFETY: the same entries as the chain's (pointers into the lease slot, within the
        // capacity, or at iovecs that do and that the `Hold` owns), with shorter lengths;
        // each `Hold` keeps the slot, the iovecs and the fd.
        let ops = unsafe { submit_linked(entries) };
        for (i, op) in broken.into_iter().zip(ops) {
            self.cqes[i] = None;
            let writes = self.members[i - 1].member.writes_lease();
            self.ops[i] = Some(if writes { op.settle_on_drop() } else { op });
        }
        true
    }
}

/// Zero-fill mode: zero the tail a short leader left unwritten (G6), whether or not members
/// follow (with no member in the chain, nothing else would).
fn zero_fill(leader: Cqe, lease: &mut Lease, shape: Shape) {
    let produced = leader.result.max(0) as usize;
    if shape.zero_fill && produced < shape.cap {
        // Every op of the chain has completed: nothing in the kernel touches the lease.
        lease.set_len(shape.cap);
        lease[produced..].fill(0);
    }
}
