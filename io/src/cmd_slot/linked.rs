//! Kernel-linked commits (G10 for command slots): `READ_FIXED`s into the payload, then the
//! commit, as one `IOSQE_IO_LINK` chain pushed all or nothing, so a READ is answered in one
//! enter without a trip through the CQ.
//!
//! The reply header is read by the driver when the commit runs, so the caller writes it
//! before the chain is pushed, with the full length. The kernel runs the commit only if
//! every read before it returned exactly its length (a short or failed read fails the link,
//! and the commit completes with `ECANCELED` without running; the same rule breaks a group's
//! chain, `tests/group_g10_linked_short_read_completes.rs`). So:
//!
//! - every read full: the commit ran (or will) with a header that is right: the commit op
//!   goes to the queue, whose next CQE from it is the slot's next request;
//! - a read short or failed: the commit did not run; the request comes back to the caller
//!   ([`LinkedOutcome::Broken`]) with each read's result, to read the rest or reply the
//!   length it got, and commit. Nothing past what was read is ever committed.
//!
//! Drop and forget keep the commit rule: a dropped [`LinkedCommit`] hands its commit op to
//! the queue, which answers the request with `EINTR` if the chain broke; a forgotten one
//! leaks its slot, as a forgotten [`Fetched`] does.
//!
//! Only a commit that fits a 64-byte SQE can be linked: the executor pushes linked chains
//! of 64-byte SQEs (`submit_linked`), and pushing a 128-byte commit on its own after a chain
//! ending in `IO_LINK` is not safe (a push that must flush first would submit the chain
//! without it). [`Fetched::commit_linked`] hands the request back when the commit does not
//! fit (FUSE: a `qid` above 0 is past the 16 command bytes of a 64-byte SQE).

use std::fmt;
use std::future::Future;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use io_uring::opcode;
use io_uring::squeue::{Entry, Entry128, Flags};
use io_uring::types;
use ringleader_buf::LeaseRef;
use ringleader_executor::{Completable, Cqe, Op, Orphan, submit_linked};

use super::{Armed, Fetched, Shared, Slot, SlotProtocol};
use crate::group::{FdHold, IoFd};
use crate::uring_cmd::Cmd;

/// One read of a linked chain: bytes `range` of the payload from `offset` of a file.
#[derive(Debug)]
pub struct LinkedRead {
    fd: FdHold,
    offset: u64,
    range: Range<usize>,
}

impl LinkedRead {
    /// Read payload bytes `range` from `fd` at `offset`. The op keeps `fd` open until its
    /// final CQE.
    pub fn new(fd: &impl IoFd, offset: u64, range: Range<usize>) -> LinkedRead {
        LinkedRead {
            fd: fd.fd_hold(),
            offset,
            range,
        }
    }
}

/// The data of a chain's op: a read's references, or the commit's slot.
pub(super) enum LinkData {
    Read { _lease: LeaseRef, _fd: FdHold },
    Commit(Slot),
}

impl Orphan for LinkData {}

impl Completable for LinkData {
    type Output = (Cqe, Option<Slot>);
    fn complete(self, cqe: Cqe) -> Self::Output {
        match self {
            LinkData::Read { .. } => (cqe, None),
            LinkData::Commit(slot) => (cqe, Some(slot)),
        }
    }
}

/// How a linked commit ended.
#[expect(
    clippy::large_enum_variant,
    reason = "made once per linked commit, moved once; boxing the request costs an allocation"
)]
pub enum LinkedOutcome<P: SlotProtocol> {
    /// Every read returned its full length: the kernel ran the commit with the header as
    /// written. Each read's byte count.
    Committed(Vec<usize>),
    /// A read was short or failed, which broke the chain: the commit did not run. The
    /// request, to finish and commit, and each read's result (`ECANCELED` for reads after
    /// the one that broke the chain: they did not run either).
    Broken {
        req: Fetched<P>,
        reads: Vec<io::Result<usize>>,
    },
}

impl<P: SlotProtocol> fmt::Debug for LinkedOutcome<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkedOutcome::Committed(n) => f.debug_tuple("Committed").field(n).finish(),
            LinkedOutcome::Broken { reads, .. } => f
                .debug_struct("Broken")
                .field("reads", reads)
                .finish_non_exhaustive(),
        }
    }
}

/// A linked chain in flight (see the module docs).
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct LinkedCommit<P: SlotProtocol> {
    reads: Vec<Option<Op<LinkData>>>,
    results: Vec<Option<Cqe>>,
    wants: Vec<usize>,
    commit: Option<Op<LinkData>>,
    /// The commit command made at the fetch, for the commit after a broken chain.
    cmd: Cmd,
    shared: Rc<Shared<P>>,
}

impl<P: SlotProtocol> fmt::Debug for LinkedCommit<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkedCommit")
            .field("wants", &self.wants)
            .finish_non_exhaustive()
    }
}

/// The 64-byte SQE a 128-byte one is, if its upper half is zero.
fn narrow(e: &Entry128) -> Option<Entry> {
    const _: () = assert!(std::mem::size_of::<Entry128>() == 128);
    const _: () = assert!(std::mem::size_of::<Entry>() == 64);
    let p = (e as *const Entry128).cast::<u8>();
    // SAFETY: `Entry128` is `#[repr(C)]` over (`Entry`, `[u8; 64]`), 128 initialised bytes
    // (sizes asserted above); bytes 64..128 are read as plain bytes.
    let high = unsafe { p.add(64).cast::<[u8; 64]>().read_unaligned() };
    if high.iter().any(|&b| b != 0) {
        return None;
    }
    // SAFETY: the first 64 bytes of an `Entry128` are an `Entry` (see above), a plain
    // `io_uring_sqe` for which any bytes are valid.
    Some(unsafe { p.cast::<Entry>().read_unaligned() })
}

impl<P: SlotProtocol> Fetched<P> {
    /// Read each of `reads` into the payload and commit the reply now in the header, as one
    /// kernel-linked chain (module docs of `cmd_slot`). Write the reply header first, with
    /// the length the reads will produce when they are full.
    ///
    /// The request comes back unchanged (`Err`) when the chain cannot be built: no reads,
    /// ranges out of the payload or overlapping, a payload a kernel op still uses or that is
    /// not registered with this ring, or a commit that does not fit a 64-byte SQE.
    ///
    /// # Panics
    /// Outside the runtime the queue runs on.
    #[allow(
        clippy::result_large_err,
        reason = "the request itself comes back, to be answered another way"
    )]
    pub fn commit_linked(
        mut self,
        reads: Vec<LinkedRead>,
    ) -> Result<LinkedCommit<P>, (Fetched<P>, Vec<LinkedRead>)> {
        let slot = self.slot_mut();
        let cap = slot.payload.len();
        let mut ranges: Vec<&Range<usize>> = reads.iter().map(|r| &r.range).collect();
        ranges.sort_by_key(|r| r.start);
        let disjoint = ranges.windows(2).all(|w| w[0].end <= w[1].start);
        let in_bounds = ranges
            .iter()
            .all(|r| r.start < r.end && r.end <= cap && r.end - r.start <= u32::MAX as usize);
        let idle = slot.payload.writers() == 0 && slot.payload.readers() == 0;
        let index = slot.payload.buf_index();
        let commit = slot
            .commit
            .and_then(|c| Some((narrow(&c.build())?, c)))
            .filter(|_| !reads.is_empty() && disjoint && in_bounds && idle);
        let (Some((commit, cmd)), Some(index)) = (commit, index) else {
            return Err((self, reads));
        };
        let mut slot = self.slot.take().expect("a Fetched holds its slot");
        let base = slot.payload.as_mut_ptr();
        let keep = slot.payload.keep_alive();
        let wants: Vec<usize> = reads.iter().map(|r| r.range.len()).collect();
        let mut entries = Vec::with_capacity(reads.len() + 1);
        for r in reads {
            // SAFETY: `range` lies within the payload (checked above), so the pointer stays
            // inside its allocation.
            let at = unsafe { base.add(r.range.start) };
            let e = opcode::ReadFixed::new(types::Fd(r.fd.raw), at, r.range.len() as u32, index)
                .offset(r.offset)
                .build()
                .flags(Flags::IO_LINK);
            let data = LinkData::Read {
                _lease: keep.kernel_writer(),
                _fd: r.fd,
            };
            entries.push((e, data));
        }
        entries.push((commit, LinkData::Commit(slot)));
        // SAFETY: each read points into the payload slot (`base` plus a range checked to lie
        // within it, registered as buffer `index`), which its `LeaseRef` keeps from reuse
        // and, as a kernel writer, from safe access until its final CQE; it names an fd its
        // `FdHold` keeps open. The commit points only into the slot (`SlotProtocol`'s
        // contract), which is its op's data. `submit_linked` pushes the chain all or
        // nothing, in order, so the commit is linked after the last read.
        let mut ops = unsafe { submit_linked(entries) };
        let commit = ops.pop().expect("the commit was pushed last");
        self.shared.count(|s| s.committed += 1);
        Ok(LinkedCommit {
            // The reads write the payload: dropping one waits for the kernel (bounded).
            reads: ops
                .into_iter()
                .map(|op| Some(op.settle_on_drop()))
                .collect(),
            results: vec![None; wants.len()],
            wants,
            commit: Some(commit),
            cmd,
            shared: Rc::clone(&self.shared),
        })
    }
}

impl<P: SlotProtocol> Future for LinkedCommit<P> {
    type Output = LinkedOutcome<P>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<LinkedOutcome<P>> {
        let this = self.get_mut();
        let mut pending = false;
        for (op, res) in this.reads.iter_mut().zip(this.results.iter_mut()) {
            if let Some(o) = op {
                match Pin::new(o).poll(cx) {
                    Poll::Ready((cqe, _)) => {
                        *res = Some(cqe);
                        *op = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            return Poll::Pending;
        }
        let cqes: Vec<Cqe> = this.results.iter().map(|c| c.expect("completed")).collect();
        let full = cqes
            .iter()
            .zip(&this.wants)
            .all(|(c, &want)| c.result >= 0 && c.result as usize == want);
        if full {
            // The kernel runs the commit: its next CQE is the slot's next request, which
            // the queue yields.
            let op = this.commit.take().expect("polled after completion");
            this.shared.pushed.borrow_mut().push(Armed::Linked(op));
            this.shared.count(|s| s.linked += 1);
            this.shared.wake();
            return Poll::Ready(LinkedOutcome::Committed(
                cqes.iter().map(|c| c.result as usize).collect(),
            ));
        }
        // A read broke the chain: the commit completes with ECANCELED, at once.
        let op = this.commit.as_mut().expect("polled after completion");
        let Poll::Ready((cqe, slot)) = Pin::new(op).poll(cx) else {
            return Poll::Pending;
        };
        this.commit = None;
        let slot = slot.expect("a linked commit's data is its slot");
        let reads = cqes
            .iter()
            .map(|c| c.into_result().map(|n| n as usize))
            .collect();
        if cqe.result != -libc::ECANCELED {
            // It ran after all (not a chain this kernel breaks): the queue takes it as any
            // commit's completion.
            this.shared
                .ready
                .borrow_mut()
                .push((cqe.into_result(), slot));
            this.shared.count(|s| s.linked += 1);
            this.shared.wake();
            let counts = cqes.iter().map(|c| c.result.max(0) as usize).collect();
            return Poll::Ready(LinkedOutcome::Committed(counts));
        }
        this.shared.count(|s| {
            s.link_broken += 1;
            s.committed -= 1;
        });
        let mut slot = slot;
        slot.commit = Some(this.cmd);
        Poll::Ready(LinkedOutcome::Broken {
            req: Fetched {
                slot: Some(slot),
                shared: Rc::clone(&this.shared),
            },
            reads,
        })
    }
}

impl<P: SlotProtocol> Drop for LinkedCommit<P> {
    fn drop(&mut self) {
        // The queue takes the commit; if the chain broke it answers with an error.
        if let Some(op) = self.commit.take() {
            self.shared.pushed.borrow_mut().push(Armed::Linked(op));
            self.shared.wake();
        }
    }
}
