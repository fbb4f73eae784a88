//! The ring driver: one io_uring per thread, its op table, and the enter/reap cycle.
//!
//! Submission never loses or repeats an SQE: a full SQ is flushed with `io_uring_enter` and the
//! push retried; SQEs the kernel has not consumed stay in the SQ (the kernel advances the SQ
//! head only for what it took), so a failed enter is retried without re-pushing. Because any
//! pushed SQE may already be visible to the kernel, its op's resources stay owned until the
//! final CQE whatever enter returned. A full CQ never drops completions here
//! (`IORING_FEAT_NODROP`): the kernel keeps them on its overflow list, flags
//! `IORING_SQ_CQ_OVERFLOW`, and the next enter with `GETEVENTS` flushes them after a reap.

use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use io_uring::cqueue::CompletionQueue;
use io_uring::opcode::{AsyncCancel, AsyncCancel2, MsgRingData};
use io_uring::squeue::{Entry, Entry128, Flags};
use io_uring::types::{CancelBuilder, Fd, SubmitArgs, Timespec};

use crate::lifecycle::{OpTable, TAG_BIT, TAG_CANCEL, TAG_MSG_SENT, TAG_MSG_WAKE};
use crate::ring::{Push128Error, Ring, Sq};
use crate::setup::{RingConfig, SetupFlags, SetupInfo, build_ring};
use crate::stats::Stats;
use crate::sys;

/// `IORING_ENTER_SQ_WAIT`.
const ENTER_SQ_WAIT: u32 = 1 << 2;

/// Source of driver identities (never reused within a process).
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

pub(crate) struct Driver {
    id: u64,
    /// Shared with closures handed the ring's submitter ([`crate::with_submitter`]), which
    /// run outside the driver borrow. Only the driver touches the SQ and CQ (see `sq`/`cq`).
    ring: Rc<Ring>,
    /// The fd `io_uring_enter` is called with: the registered index, or the raw fd.
    enter_fd: i32,
    enter_flags: u32,
    flags: SetupFlags,
    pub(crate) ops: OpTable,
    pub(crate) stats: Stats,
    info: SetupInfo,
    /// Target rings of `MSG_RING` SQEs not yet consumed by the kernel (see `shared.rs`).
    msg_targets: Vec<std::sync::Arc<std::os::fd::OwnedFd>>,
    /// `ASYNC_CANCEL`s are queued that have not been through an enter with `GETEVENTS` yet:
    /// they go to the kernel on their own before any other SQE (see [`Driver::push_cancel`]).
    cancel_pending: bool,
}

impl Driver {
    pub(crate) fn new(cfg: &RingConfig) -> io::Result<Self> {
        let (ring, mut info) = build_ring(cfg)?;
        let raw = std::os::fd::AsRawFd::as_raw_fd(&ring);
        let (enter_fd, enter_flags) = if cfg.register_ring_fd {
            match sys::register_ring_fd(raw) {
                Ok(index) => {
                    info.ring_fd_registered = true;
                    (index, sys::ENTER_REGISTERED_RING)
                }
                Err(e) => {
                    info.fallbacks.push(format!(
                        "ring fd not registered: IORING_REGISTER_RING_FDS: {e}"
                    ));
                    (raw, 0)
                }
            }
        } else {
            (raw, 0)
        };
        Ok(Driver {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            flags: info.applied,
            ring: Rc::new(ring),
            enter_fd,
            enter_flags,
            ops: OpTable::default(),
            stats: Stats::default(),
            info,
            msg_targets: Vec::new(),
            cancel_pending: false,
        })
    }

    #[inline]
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn info(&self) -> &SetupInfo {
        &self.info
    }

    /// The raw ring fd (the target of `MSG_RING` from other threads).
    pub(crate) fn ring_fd(&self) -> i32 {
        std::os::fd::AsRawFd::as_raw_fd(&self.ring)
    }

    /// The ring, for a submitter used outside the driver borrow.
    pub(crate) fn ring(&self) -> Rc<Ring> {
        Rc::clone(&self.ring)
    }

    /// The submission queue.
    #[inline]
    fn sq(&mut self) -> Sq<'_> {
        // SAFETY: only the driver makes SQ or CQ views of its ring, through `&mut self`, so at
        // most one exists at a time; the `Submitter`s lent to `with_submitter` closures only
        // make syscalls and read the kernel-shared head/tail atomics.
        unsafe { self.ring.sq() }
    }

    /// The completion queue.
    #[inline]
    fn cq(ring: &Ring) -> CompletionQueue<'_> {
        // SAFETY: as for `sq`: called only from `reap` through `&mut Driver`, the one place
        // that reads the CQ.
        unsafe { ring.cq() }
    }

    pub(crate) fn stats(&self) -> Stats {
        let mut s = self.stats;
        s.ops_in_flight = self.ops.in_flight() as u64;
        s.slots_occupied = self.ops.occupied() as u64;
        s
    }

    /// The SQ flags the loop acts on, and the number of SQEs queued.
    fn sq_state(&mut self) -> (u32, u32) {
        // The SQ flags word is shared with the kernel; the crate exposes it bit by bit.
        let sqpoll = self.flags.contains(SetupFlags::SQPOLL);
        let sq = self.sq();
        let mut f = 0;
        // `need_wakeup` costs a full fence: only SQPOLL rings need it.
        if sqpoll && sq.need_wakeup() {
            f |= sys::SQ_NEED_WAKEUP;
        }
        if sq.cq_overflow() {
            f |= sys::SQ_CQ_OVERFLOW;
        }
        if sq.taskrun() {
            f |= sys::SQ_TASKRUN;
        }
        (f, sq.len() as u32)
    }

    /// Push one SQE, flushing the SQ first if it is full.
    ///
    /// # Safety
    /// `entry`'s pointers must stay valid until its final CQE (see [`crate::Op::submit`]).
    ///
    /// An error means the ring is unusable (a non-transient enter error while flushing) and
    /// `entry` did not reach the SQ: the caller must not wait for its CQE.
    #[inline]
    pub(crate) unsafe fn push(&mut self, entry: &Entry) -> io::Result<()> {
        if self.cancel_pending {
            self.flush_cancels();
        }
        // SAFETY: forwarded from the caller.
        unsafe { self.push_raw(entry) }
    }

    /// Push all of `entries` or none: if they do not fit, flush first. Used where a half-queued
    /// group would be wrong (kernel-linked chains).
    ///
    /// # Safety
    /// As for [`Driver::push`], for every entry.
    ///
    /// Errors as for [`Driver::push`]: none of `entries` reached the SQ.
    pub(crate) unsafe fn push_all(&mut self, entries: &[Entry]) -> io::Result<()> {
        if entries.len() > self.info.sq_entries as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} linked SQEs can never fit an SQ of {}",
                    entries.len(),
                    self.info.sq_entries
                ),
            ));
        }
        if self.cancel_pending {
            self.flush_cancels();
        }
        loop {
            // SAFETY: forwarded from the caller; `push_multiple` is all-or-nothing.
            if unsafe { self.sq().push_multiple(entries) }.is_ok() {
                self.stats.sqes_pushed += entries.len() as u64;
                return Ok(());
            }
            self.make_room()?;
        }
    }

    /// The op future for `user_data` was dropped: park its resources and push its cancel, or
    /// hand them back if it is done (see [`OpTable::orphan`](crate::lifecycle::OpTable)).
    pub(crate) fn orphan(
        &mut self,
        user_data: u64,
        data: Box<dyn crate::op::Orphan>,
    ) -> crate::lifecycle::DropOutcome {
        let outcome = self.ops.orphan(user_data, data);
        if matches!(outcome, crate::lifecycle::DropOutcome::Cancel(_)) {
            self.push_cancel(user_data);
        }
        outcome
    }

    /// Push an `ASYNC_CANCEL` for `user_data` (only a failure posts a CQE).
    ///
    /// Cancels go to the kernel in an enter of their own, with `GETEVENTS`, before any SQE
    /// pushed after them (and after the SQEs queued before them): under `DEFER_TASKRUN` a
    /// cancelled accept leaves the listener's wait queue only when the ring's task work runs,
    /// and until then it takes the wake-up of the next connection, which a new accept on the
    /// same listener then never sees (Linux 6.18; docs/kernel-notes.md).
    pub(crate) fn push_cancel(&mut self, user_data: u64) {
        if !self.cancel_pending && !self.sq().is_empty() {
            self.submit_queued(false);
        }
        let entry = AsyncCancel::new(user_data)
            .build()
            .flags(Flags::SKIP_SUCCESS)
            .user_data(TAG_CANCEL);
        self.stats.cancels += 1;
        // SAFETY: ASYNC_CANCEL carries no pointer, only the target's user_data. A failed push
        // (the ring is unusable) leaves the op in flight: its resources stay parked, and the
        // bounded waits of settle and shutdown end with them leaked, never freed.
        let pushed = unsafe { self.push_raw(&entry) };
        if pushed.is_ok() {
            self.cancel_pending = true;
        }
    }

    /// Push without sending queued cancels first (cancels themselves).
    ///
    /// # Safety
    /// As for [`Driver::push`].
    unsafe fn push_raw(&mut self, entry: &Entry) -> io::Result<()> {
        loop {
            // SAFETY: forwarded from the caller; the SQ copies the 64-byte SQE.
            if unsafe { self.sq().push(entry) }.is_ok() {
                self.stats.sqes_pushed += 1;
                return Ok(());
            }
            self.make_room()?;
        }
    }

    /// Push one 128-byte SQE, flushing the SQ first if it is full.
    ///
    /// # Safety
    /// As for [`Driver::push`].
    ///
    /// Errors: `Ok(false)` if the ring has 64-byte SQEs and `entry` uses its upper half
    /// (nothing was pushed); `Err` as for [`Driver::push`].
    pub(crate) unsafe fn push128(&mut self, entry: &Entry128) -> io::Result<bool> {
        if self.cancel_pending {
            self.flush_cancels();
        }
        loop {
            // SAFETY: forwarded from the caller.
            match unsafe { self.sq().push128(entry) } {
                Ok(()) => {
                    self.stats.sqes_pushed += 1;
                    return Ok(true);
                }
                Err(Push128Error::TooWide) => return Ok(false),
                Err(Push128Error::Full) => self.make_room()?,
            }
        }
    }

    /// Send the queued cancels to the kernel and run the task work they cause (see
    /// [`Driver::push_cancel`]).
    #[cold] // Only after a drop of an op in flight.
    fn flush_cancels(&mut self) {
        self.submit_queued(true);
    }

    /// Submit what the SQ holds now, in one enter; with `GETEVENTS` if `task_work` (which
    /// also ends `cancel_pending`). Errors are left to the event loop's next enter.
    #[cold]
    fn submit_queued(&mut self, task_work: bool) {
        if self.flags.contains(SetupFlags::SQPOLL) {
            // The kernel's thread submits on its own schedule: nothing to order here.
            self.cancel_pending = false;
            return;
        }
        let n = self.sq().len() as u32;
        let flags = if task_work { sys::ENTER_GETEVENTS } else { 0 };
        if n > 0 || task_work {
            let _ = self.enter(n, 0, flags);
        }
        if task_work {
            self.cancel_pending = false;
        }
    }

    /// Push a `MSG_RING` that posts a wake-up CQE into the ring `target`, which is kept open
    /// until the SQE has reached the kernel (the kernel resolves the fd number then).
    pub(crate) fn push_msg_wake(&mut self, target: std::sync::Arc<std::os::fd::OwnedFd>) {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&*target);
        self.msg_targets.push(target);
        let entry = MsgRingData::new(Fd(fd), 0, TAG_MSG_WAKE, None)
            .build()
            .flags(Flags::SKIP_SUCCESS)
            .user_data(TAG_MSG_SENT);
        self.stats.msg_ring_sent += 1;
        // SAFETY: MSG_RING with IORING_MSG_DATA carries no pointer. A failed push only loses
        // a wake-up of a ring that is unusable anyway.
        let _ = unsafe { self.push(&entry) };
    }

    #[cold] // The SQ is sized for the common case; being full is the pressure path.
    fn make_room(&mut self) -> io::Result<()> {
        self.stats.sq_full += 1;
        if self.flags.contains(SetupFlags::SQPOLL) {
            let _ = self.enter(0, 0, ENTER_SQ_WAIT | sys::ENTER_SQ_WAKEUP);
        } else {
            let pending = self.sq().len() as u32;
            match self.enter(pending, 0, sys::ENTER_GETEVENTS) {
                Ok(_) => {}
                Err(e) if transient(&e) => {}
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("ringleader: io_uring_enter failed while flushing the SQ: {e}"),
                    ));
                }
            }
        }
        // Completions make room in the CQ; an EBUSY enter needs that before it can go on.
        self.reap();
        Ok(())
    }

    #[inline]
    fn enter(&mut self, to_submit: u32, min_complete: u32, flags: u32) -> io::Result<u32> {
        self.stats.enters += 1;
        if to_submit > 0 {
            self.stats.submits += 1;
        }
        let r = sys::enter(
            self.enter_fd,
            to_submit,
            min_complete,
            flags | self.enter_flags,
        );
        if !self.msg_targets.is_empty() {
            self.release_msg_targets();
        }
        r
    }

    /// Every queued `MSG_RING` the kernel has taken had its fd resolved: let the targets go.
    #[cold]
    #[inline(never)]
    fn release_msg_targets(&mut self) {
        if self.sq().is_empty() {
            self.msg_targets.clear();
        }
    }

    /// Submit what is queued, optionally wait for at least one completion, then reap.
    ///
    /// Transient enter errors (EINTR, EAGAIN, EBUSY) are absorbed: the caller's loop comes
    /// back. Any other error means the ring itself is unusable.
    pub(crate) fn submit_and_wait(&mut self, wait: bool) -> io::Result<()> {
        self.flush_lanes();
        let (sq_flags, to_submit) = self.sq_state();
        let mut flags = 0;
        let mut min = 0;
        if sq_flags & sys::SQ_CQ_OVERFLOW != 0 {
            self.stats.cq_overflow += 1;
        }
        if wait {
            flags |= sys::ENTER_GETEVENTS;
            min = 1;
        } else if self.cancel_pending {
            // Cancels are queued: their task work must run in this enter (see
            // `push_cancel`).
            flags |= sys::ENTER_GETEVENTS;
        } else if sq_flags & (sys::SQ_TASKRUN | sys::SQ_CQ_OVERFLOW) != 0 {
            // Deferred task work or overflowed CQEs wait for an enter with GETEVENTS.
            flags |= sys::ENTER_GETEVENTS;
        } else if self.flags.contains(SetupFlags::DEFER_TASKRUN)
            && !self.flags.contains(SetupFlags::TASKRUN_FLAG)
            && self.ops.in_flight() > 0
        {
            // Without TASKRUN_FLAG we cannot see pending task work: always run it.
            flags |= sys::ENTER_GETEVENTS;
        }
        let mut submit = to_submit;
        if self.flags.contains(SetupFlags::SQPOLL) {
            submit = 0;
            if sq_flags & sys::SQ_NEED_WAKEUP != 0 {
                flags |= sys::ENTER_SQ_WAKEUP;
            }
        }
        if submit > 0 || flags != 0 {
            if wait {
                self.stats.waits += 1;
            }
            match self.enter(submit, min, flags) {
                Ok(_) => {}
                Err(e) if transient(&e) => {}
                Err(e) => return Err(e),
            }
            if flags & sys::ENTER_GETEVENTS != 0 {
                self.cancel_pending = false;
            }
        }
        self.reap();
        Ok(())
    }

    /// Move every available CQE into the op table. Returns how many were reaped.
    pub(crate) fn reap(&mut self) -> usize {
        let Driver {
            ring, ops, stats, ..
        } = self;
        let mut n = 0;
        let mut cq = Driver::cq(ring);
        // CQEs the kernel had to drop (no memory for its overflow list even with
        // `IORING_FEAT_NODROP`): their ops never complete, so their resources stay parked
        // (leaked), never freed. Counted so that it shows.
        stats.cqes_dropped = u64::from(cq.overflow());
        for cqe in &mut cq {
            n += 1;
            let ud = cqe.user_data();
            if ud & TAG_BIT == 0 {
                ops.complete(ud, cqe.result(), cqe.flags());
            } else if ud == TAG_MSG_WAKE {
                stats.msg_ring_received += 1;
            } else if ud == TAG_MSG_SENT {
                stats.msg_ring_failed += 1;
            }
            // TAG_CANCEL: ENOENT/EALREADY, the target finished or is finishing on its own.
        }
        drop(cq);
        stats.cqes_reaped += n as u64;
        if !self.ops.batch_ends.is_empty() {
            self.push_members();
        }
        n
    }

    /// Push the queued ops of every lane that has nothing in the kernel, each lane's as one
    /// linked chain (see `lane.rs`).
    pub(crate) fn flush_lanes(&mut self) {
        let cap = self.info.sq_entries as usize;
        let mut batch = Vec::new();
        // Pushing may reap (a full SQ), which may ready more lanes: go until none is.
        while !self.ops.lanes_ready.is_empty() {
            let ready = std::mem::take(&mut self.ops.lanes_ready);
            for key in ready {
                batch.clear();
                self.ops.take_lane_batch(key, cap, &mut batch);
                if batch.is_empty() {
                    continue;
                }
                // SAFETY: each entry was submitted into the lane under `Op::submit`'s
                // contract (`Op::submit_in`, or a group member under `GroupOp::submit`'s):
                // its data stays in its op future or its slot until the final CQE.
                if let Err(e) = unsafe { self.push_all(&batch) } {
                    // The ring is unusable and nothing of the chain reached the SQ: its slots
                    // must not wait for CQEs that will never come.
                    for entry in &batch {
                        self.ops.abandon(entry.get_user_data());
                    }
                    ring_failed(e);
                }
                self.stats.lane_chains += 1;
                self.stats.lane_ops += batch.len() as u64;
            }
        }
    }

    /// Push the members released by leaders in this reap, each group's all together.
    fn push_members(&mut self) {
        if self.cancel_pending {
            self.flush_cancels();
        }
        let entries = std::mem::take(&mut self.ops.to_push);
        let ends = std::mem::take(&mut self.ops.batch_ends);
        let mut start = 0;
        for end in ends.iter().copied() {
            let batch = &entries[start..end];
            start = end;
            if batch.is_empty() {
                continue;
            }
            let cap = self.info.sq_entries as usize;
            for chunk in batch.chunks(cap) {
                // Not enough room for the whole group: submit what is queued first (no reap
                // here: we are inside one).
                loop {
                    let (cap, pending) = {
                        let sq = self.sq();
                        (sq.capacity(), sq.len())
                    };
                    if cap - pending >= chunk.len() {
                        break;
                    }
                    let pending = pending as u32;
                    match self.enter(pending, 0, sys::ENTER_GETEVENTS) {
                        Ok(_) => {}
                        Err(e) if transient(&e) => {}
                        Err(e) => {
                            // Nothing of this group (nor of the groups after it) reached the
                            // SQ: their slots must not wait for CQEs.
                            for entry in &entries[end - batch.len()..] {
                                self.ops.abandon(entry.get_user_data());
                            }
                            ring_failed(e);
                        }
                    }
                }
                // SAFETY: each member entry was built under `GroupOp::submit`'s contract: its
                // pointers are valid until its final CQE, and its data stays in the group
                // future or its slot until then.
                unsafe { self.sq().push_multiple(chunk) }.expect("room was made above");
                self.stats.sqes_pushed += chunk.len() as u64;
                self.stats.group_members_pushed += chunk.len() as u64;
                self.stats.group_batches += 1;
            }
        }
        // Keep the allocations for the next reap.
        let mut entries = entries;
        entries.clear();
        self.ops.to_push = entries;
        let mut ends = ends;
        ends.clear();
        self.ops.batch_ends = ends;
    }

    /// Drive the ring until the op `user_data` (already cancelled) has seen its final CQE, or
    /// until `deadline`. Other CQEs reaped meanwhile are recorded as usual; their tasks are
    /// woken by the event loop. Returns whether the op finished; if not, its resources stay
    /// parked in its slot until its final CQE (counted in `settle_timeouts`).
    pub(crate) fn settle(&mut self, user_data: u64, deadline: Instant) -> bool {
        while self.ops.is_in_flight(user_data) {
            let now = Instant::now();
            if now >= deadline {
                self.stats.settle_timeouts += 1;
                return false;
            }
            self.flush_lanes();
            let wait = (deadline - now).min(Duration::from_millis(50));
            let ts = Timespec::from(wait);
            let args = SubmitArgs::new().timespec(&ts);
            self.stats.enters += 1;
            match self.ring.submitter().submit_with_args(1, &args) {
                Ok(_) => {}
                Err(e) if transient(&e) => {}
                Err(_) => {
                    self.stats.settle_timeouts += 1;
                    return false;
                }
            }
            self.reap();
        }
        true
    }

    /// Cancel everything still in flight and reap until nothing is, waiting at most `limit`.
    /// Returns the number of ops that did not finish (their resources are leaked).
    pub(crate) fn drain(&mut self, limit: Duration) -> usize {
        if self.ops.in_flight() == 0 {
            return 0;
        }
        let keys: Vec<u64> = self.ops.in_flight_keys().collect();
        for ud in keys {
            self.push_cancel(ud);
        }
        let deadline = Instant::now() + limit;
        while self.ops.in_flight() > 0 && Instant::now() < deadline {
            let ts = Timespec::new().nsec(50_000_000);
            let args = SubmitArgs::new().timespec(&ts);
            let _ = self.ring.submitter().submit_with_args(1, &args);
            self.reap();
            if self.ops.in_flight() > 0 && self.sq().is_empty() {
                // Anything started after the first cancel round: cancel it too.
                let any = AsyncCancel2::new(CancelBuilder::any())
                    .build()
                    .flags(Flags::SKIP_SUCCESS)
                    .user_data(TAG_CANCEL);
                // SAFETY: ASYNC_CANCEL carries no pointer. A failed push: the deadline ends
                // the loop, and what is still in flight is leaked by `teardown`.
                let _ = unsafe { self.push(&any) };
            }
        }
        self.ops.in_flight()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let left = self.drain(Duration::from_secs(10));
        let leaked = self.ops.teardown();
        debug_assert_eq!(left, leaked);
        // Wakers and resources whose final CQE arrived are released normally.
        self.ops.woken.clear();
        self.ops.graveyard.clear();
        self.ops.retired.clear();
    }
}

/// A non-transient `io_uring_enter` error: the ring is unusable, the core cannot go on.
#[cold]
#[track_caller]
pub(crate) fn ring_failed(e: io::Error) -> ! {
    panic!("ringleader: io_uring_enter failed, the ring is unusable: {e}")
}

/// An op's SQE could not be pushed (the ring is unusable); its slot was abandoned.
#[cold]
#[track_caller]
pub(crate) fn push_failed(e: io::Error) -> ! {
    panic!("ringleader: could not submit an op, the ring is unusable: {e}")
}

fn transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINTR | libc::EAGAIN | libc::EBUSY | libc::ETIME)
    )
}
