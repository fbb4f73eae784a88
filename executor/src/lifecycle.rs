//! The op table: one slot per operation the kernel may still be working on.
//!
//! A slot is created when an op's SQE is pushed and removed only after the op's *final* CQE
//! (one without `IORING_CQE_F_MORE`) has been reaped **and** nobody needs the result any more.
//! `user_data` is `generation << 32 | index`; the generation makes a stale key harmless.
//!
//! Invariants this module keeps:
//! - a slot in `Submitted`, `Streaming { done: false }` or `Orphaned` counts in `in_flight`;
//!   nothing it references is released while it does;
//! - `Orphaned` holds the resources of an op whose future was dropped; they are released after
//!   the final CQE, never earlier (moved to `graveyard` and dropped outside the driver borrow);
//! - wakers are collected into `woken` and woken by the event loop outside the driver borrow,
//!   so user code never runs while the driver is borrowed;
//! - a lane (`lane.rs`) has at most one chain of ops in the kernel; its other ops wait in
//!   `Queued` slots, outside the SQ, and a lane lives while a handle or a slot refers to it;
//!   nothing behind an open frame's mark in a lane's queue leaves it.

use std::collections::VecDeque;
use std::task::Waker;

use io_uring::squeue::Entry;
use slab::Slab;

use crate::group::{Followers, MemberLen};
use crate::lane::{self, LaneState, NO_LANE, expected_result, is_mark, is_send, mark_ready};
use crate::op::Orphan;
use crate::sys::{self, CQE_F_MORE, CQE_F_NOTIF};

/// `user_data` values at or above this carry a tag, not a slot key.
pub(crate) const TAG_BIT: u64 = 1 << 63;
/// CQE of an `ASYNC_CANCEL` the runtime issued (only failures arrive: `CQE_SKIP_SUCCESS`).
pub(crate) const TAG_CANCEL: u64 = TAG_BIT;
/// A cross-core wake-up posted into this ring by `MSG_RING`.
pub(crate) const TAG_MSG_WAKE: u64 = TAG_BIT | 1;
/// CQE of a `MSG_RING` this ring sent (only failures arrive).
pub(crate) const TAG_MSG_SENT: u64 = TAG_BIT | 2;

/// One completion queue entry, as the op sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cqe {
    /// `cqe.res`: a count, an fd, or `-errno`.
    pub result: i32,
    /// `cqe.flags` (`IORING_CQE_F_*`) of the CQE that carried `result`.
    pub flags: u32,
    /// For ops that post a notification after their result (SEND_ZC): the notification's
    /// `res` (`IORING_NOTIF_USAGE_ZC_COPIED` when the kernel copied after all).
    pub notif: Option<i32>,
}

impl Cqe {
    /// The result as an `io::Result`, errno preserved.
    pub fn into_result(self) -> std::io::Result<u32> {
        if self.result < 0 {
            Err(std::io::Error::from_raw_os_error(-self.result))
        } else {
            Ok(self.result as u32)
        }
    }
}

pub(crate) enum Lifecycle {
    /// SQE pushed; waiting for the final CQE. `first` keeps the result of a multi-CQE op.
    Submitted {
        waker: Option<Waker>,
        first: Option<Cqe>,
        /// A group leader's members, pushed by the driver when this op succeeds.
        followers: Option<Box<Followers>>,
        /// The lane the op runs in, or `NO_LANE`.
        lane: u32,
    },
    /// A group member whose leader has not completed: its SQE is not in the SQ yet.
    Deferred {
        entry: Box<Entry>,
        len: MemberLen,
        waker: Option<Waker>,
        lane: u32,
        /// The leader's key: a leader releases only its own members, never a later slot
        /// that reused a dropped member's index and (after 2^31 ops) its generation.
        leader: u64,
    },
    /// A lane op waiting for the lane's earlier ops: its SQE is not in the SQ yet.
    Queued {
        entry: Box<Entry>,
        waker: Option<Waker>,
        lane: u32,
    },
    /// Final CQE reaped; the result waits for the op future.
    Completed(Cqe),
    /// A multishot op: every CQE is an item.
    Streaming {
        waker: Option<Waker>,
        #[expect(
            clippy::box_collection,
            reason = "keeps every slot within one cache line; multishot streams are rare"
        )]
        queue: Box<VecDeque<Cqe>>,
        done: bool,
    },
    /// The op future was dropped while in flight: its resources wait for the final CQE.
    Orphaned(Box<dyn Orphan>, u32),
}

impl Lifecycle {
    fn in_flight(&self) -> bool {
        match self {
            Lifecycle::Submitted { .. } | Lifecycle::Orphaned(..) => true,
            Lifecycle::Streaming { done, .. } => !done,
            Lifecycle::Completed(_) | Lifecycle::Deferred { .. } | Lifecycle::Queued { .. } => {
                false
            }
        }
    }
}

struct Slot {
    generation: u32,
    state: Lifecycle,
}

// Slots are touched on every op: keep them within one cache line.
const _: () = assert!(std::mem::size_of::<Slot>() <= 64);

/// What dropping an op future decided; the caller acts on it outside the borrow.
#[must_use]
pub(crate) enum DropOutcome {
    /// The op had completed (or was never submitted): its resources come back to be dropped
    /// by the caller, with the slot's waker.
    Release(Box<dyn Orphan>, Option<Waker>),
    /// The op is in flight: resources parked in the slot; an `ASYNC_CANCEL` must be pushed.
    /// The slot's waker comes back to be dropped by the caller.
    Cancel(Option<Waker>),
}

/// What polling a slot found.
#[must_use]
pub(crate) enum OpPoll<T> {
    /// The result.
    Ready(T),
    /// Not yet; the slot holds a waker that wakes this task.
    Pending,
    /// Not yet, and the slot holds no waker for this task: clone the task's waker outside
    /// the driver borrow and store it with [`OpTable::set_waker`].
    Register,
}

#[derive(Default)]
pub(crate) struct OpTable {
    slots: Slab<Slot>,
    generation: u32,
    in_flight: usize,
    /// Wakers to wake once the driver borrow ends.
    pub(crate) woken: Vec<Waker>,
    /// Orphaned resources whose final CQE arrived; dropped once the driver borrow ends.
    pub(crate) graveyard: Vec<Box<dyn Orphan>>,
    /// Wakers taken out of slots and not to be woken; dropped once the driver borrow ends (a
    /// waker's drop is user code).
    pub(crate) retired: Vec<Waker>,
    /// Group members released by their leader's CQE, waiting to be pushed (all of a group
    /// together: `batch_ends` marks where each group's members end).
    pub(crate) to_push: Vec<Entry>,
    pub(crate) batch_ends: Vec<usize>,
    /// Lanes, by key (see `lane.rs`).
    lanes: Slab<LaneState>,
    /// Lanes with queued ops and nothing in the kernel: the driver pushes them before its
    /// next enter.
    pub(crate) lanes_ready: Vec<u32>,
}

impl OpTable {
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub(crate) fn occupied(&self) -> usize {
        self.slots.len()
    }

    /// Whether the op `user_data` still waits for a CQE.
    pub(crate) fn is_in_flight(&mut self, user_data: u64) -> bool {
        self.slot_mut(user_data)
            .is_some_and(|s| s.state.in_flight())
    }

    /// Reserve a slot for a new op; returns its `user_data`.
    #[inline]
    pub(crate) fn insert(&mut self, streaming: bool) -> u64 {
        self.generation = (self.generation + 1) & 0x7fff_ffff;
        let generation = self.generation;
        let state = if streaming {
            Lifecycle::Streaming {
                waker: None,
                queue: Box::default(),
                done: false,
            }
        } else {
            Lifecycle::Submitted {
                waker: None,
                first: None,
                followers: None,
                lane: NO_LANE,
            }
        };
        let index = self.slots.insert(Slot { generation, state });
        self.in_flight += 1;
        (u64::from(generation) << 32) | index as u64
    }

    /// Reserve a slot for a group member whose SQE waits for its leader (and then, with a
    /// `lane` other than `NO_LANE`, for its turn in that lane).
    pub(crate) fn insert_deferred(
        &mut self,
        entry: Entry,
        len: MemberLen,
        lane: u32,
        leader: u64,
    ) -> u64 {
        self.generation = (self.generation + 1) & 0x7fff_ffff;
        let generation = self.generation;
        if lane != NO_LANE {
            // It may still add an op to the lane (a frame stays open for it).
            lane::join(&mut self.lanes, lane);
        }
        let state = Lifecycle::Deferred {
            entry: Box::new(entry),
            len,
            waker: None,
            lane,
            leader,
        };
        let index = self.slots.insert(Slot { generation, state });
        (u64::from(generation) << 32) | index as u64
    }

    /// Attach members to the (just inserted) leader `user_data`.
    pub(crate) fn set_followers(&mut self, user_data: u64, f: Box<Followers>) {
        if let Some(Slot {
            state: Lifecycle::Submitted { followers, .. },
            ..
        }) = self.slot_mut(user_data)
        {
            *followers = Some(f);
        }
    }

    /// The leader succeeded with `result`: queue its members' SQEs, all together.
    fn release_members(&mut self, leader_ud: u64, f: &Followers, leader: &Cqe) {
        let result = leader.result;
        if let Some(zf) = &f.zero_fill {
            zf.apply(result);
        }
        for (index, &ud) in f.members.iter().enumerate() {
            let Some(slot) = slot_in(&mut self.slots, ud) else {
                continue; // The member future was dropped: never submitted.
            };
            if !matches!(slot.state, Lifecycle::Deferred { leader, .. } if leader == leader_ud) {
                continue;
            }
            let state = std::mem::replace(&mut slot.state, Lifecycle::Completed(CANCELED));
            let Lifecycle::Deferred {
                entry,
                len,
                waker,
                lane,
                ..
            } = state
            else {
                unreachable!("checked above");
            };
            let mut entry = *entry;
            // Zero-fill mode gives members the full length (the tail is zeroed above);
            // otherwise a member sees exactly the bytes the leader produced.
            if f.zero_fill.is_none() {
                if let Some(n) = len.resolve(result) {
                    sys::sqe_set_len(&mut entry, n);
                }
            }
            if let Some(prep) = &f.prep {
                prep(leader, index, &mut entry);
            }
            if lane != NO_LANE {
                // Its turn comes in the lane (at its frame's place, if in a frame): queued,
                // pushed by the driver before its next enter if the lane is idle (so with
                // the group's other members).
                let root = lane::root(&self.lanes, lane);
                if self.lanes[root as usize].failed {
                    if let Some(w) = waker {
                        self.woken.push(w);
                    }
                    lane::leave(&mut self.lanes, lane, &mut self.lanes_ready);
                    lane::unref(&mut self.lanes, lane);
                    continue; // Completed(CANCELED) already.
                }
                slot.state = Lifecycle::Queued {
                    entry: Box::new(entry),
                    waker,
                    lane,
                };
                lane::enqueue(&mut self.lanes, lane, ud);
                mark_ready(&mut self.lanes[root as usize], root, &mut self.lanes_ready);
                lane::leave(&mut self.lanes, lane, &mut self.lanes_ready);
                continue;
            }
            self.to_push.push(entry.user_data(ud));
            slot.state = Lifecycle::Submitted {
                waker,
                first: None,
                followers: None,
                lane: NO_LANE,
            };
            self.in_flight += 1;
        }
        self.batch_ends.push(self.to_push.len());
    }

    /// The leader failed: its members complete with `ECANCELED`, never submitted.
    fn cancel_members(&mut self, leader_ud: u64, f: &Followers) {
        for &ud in &f.members {
            let Some(slot) = slot_in(&mut self.slots, ud) else {
                continue;
            };
            if let Lifecycle::Deferred {
                waker,
                lane,
                leader,
                ..
            } = &mut slot.state
            {
                if *leader != leader_ud {
                    continue; // A later slot with the same key: not this group's.
                }
                if let Some(w) = waker.take() {
                    self.woken.push(w);
                }
                if *lane != NO_LANE {
                    lane::leave(&mut self.lanes, *lane, &mut self.lanes_ready);
                    lane::unref(&mut self.lanes, *lane);
                }
                slot.state = Lifecycle::Completed(CANCELED);
            }
        }
    }

    #[inline]
    fn slot_mut(&mut self, user_data: u64) -> Option<&mut Slot> {
        slot_in(&mut self.slots, user_data)
    }

    #[inline]
    fn remove(&mut self, user_data: u64) -> Lifecycle {
        let index = (user_data & 0xffff_ffff) as usize;
        self.slots.remove(index).state
    }

    /// Record one CQE for the slot `user_data`.
    #[inline]
    pub(crate) fn complete(&mut self, user_data: u64, result: i32, flags: u32) {
        let Some(slot) = slot_in(&mut self.slots, user_data) else {
            // A key whose slot is gone: impossible by construction (slots outlive their final
            // CQE); ignored rather than trusted.
            debug_assert!(false, "CQE for unknown user_data {user_data:#x}");
            return;
        };
        let more = flags & CQE_F_MORE != 0;
        let cqe = Cqe {
            result,
            flags,
            notif: None,
        };
        match &mut slot.state {
            Lifecycle::Submitted {
                waker,
                first,
                followers,
                lane,
            } => {
                if *lane != NO_LANE && first.is_none() {
                    // The op's result (a notification may follow): the lane may go on.
                    let lane = *lane;
                    if more {
                        *first = Some(cqe);
                    }
                    self.lane_result(lane, user_data, result);
                    if more {
                        return;
                    }
                    return self.complete_final(user_data, cqe);
                }
                if more {
                    // The op's result; a notification (or more) follows.
                    if first.is_none() {
                        *first = Some(cqe);
                    }
                    return;
                }
                let done = match first.take() {
                    Some(mut first) => {
                        if flags & CQE_F_NOTIF != 0 {
                            first.notif = Some(result);
                        }
                        first.flags &= !CQE_F_MORE;
                        first
                    }
                    None => cqe,
                };
                if let Some(w) = waker.take() {
                    self.woken.push(w);
                }
                let followers = followers.take();
                set_completed(&mut slot.state, done);
                self.in_flight -= 1;
                if let Some(f) = followers {
                    if done.result >= 0 {
                        self.release_members(user_data, &f, &done);
                    } else {
                        self.cancel_members(user_data, &f);
                    }
                }
            }
            Lifecycle::Deferred { .. } => {
                debug_assert!(false, "CQE for a member never submitted {user_data:#x}");
            }
            Lifecycle::Streaming { waker, queue, done } => {
                queue.push_back(cqe);
                if !more {
                    *done = true;
                    self.in_flight -= 1;
                }
                if let Some(w) = waker.take() {
                    self.woken.push(w);
                }
            }
            Lifecycle::Orphaned(resources, lane) => {
                resources.orphan_cqe(&cqe);
                let lane = *lane;
                if !more {
                    self.in_flight -= 1;
                    if let Lifecycle::Orphaned(res, _) = self.remove(user_data) {
                        self.graveyard.push(res);
                    }
                }
                if lane != NO_LANE {
                    self.lane_result(lane, user_data, result);
                }
            }
            Lifecycle::Queued { .. } => {
                debug_assert!(false, "CQE for a lane op never submitted {user_data:#x}");
            }
            Lifecycle::Completed(_) => {
                debug_assert!(false, "CQE after the final CQE for {user_data:#x}");
            }
        }
    }

    /// The single (final) CQE of a lane op, after the lane has seen its result.
    fn complete_final(&mut self, user_data: u64, cqe: Cqe) {
        let Some(slot) = slot_in(&mut self.slots, user_data) else {
            return;
        };
        if let Lifecycle::Submitted {
            waker, followers, ..
        } = &mut slot.state
        {
            if let Some(w) = waker.take() {
                self.woken.push(w);
            }
            let followers = followers.take();
            set_completed(&mut slot.state, cqe);
            self.in_flight -= 1;
            if let Some(f) = followers {
                if cqe.result >= 0 {
                    self.release_members(user_data, &f, &cqe);
                } else {
                    self.cancel_members(user_data, &f);
                }
            }
        }
    }

    /// Poll a single-result op: `Ready` removes the slot. Never clones or drops a waker:
    /// when the slot needs the task's waker it takes `spare` (a clone the caller made outside
    /// the driver borrow), handing the replaced waker back in `spare` to be dropped outside;
    /// without a spare it says so ([`OpPoll::Register`]).
    #[inline]
    pub(crate) fn poll(
        &mut self,
        user_data: u64,
        cx_waker: &Waker,
        spare: &mut Option<Waker>,
    ) -> OpPoll<Cqe> {
        let Some(slot) = self.slot_mut(user_data) else {
            unreachable!("op polled with a stale key {user_data:#x}");
        };
        match &mut slot.state {
            Lifecycle::Completed(cqe) => {
                let cqe = *cqe;
                self.remove(user_data);
                OpPoll::Ready(cqe)
            }
            Lifecycle::Submitted { waker, .. }
            | Lifecycle::Deferred { waker, .. }
            | Lifecycle::Queued { waker, .. } => registered(waker, cx_waker, spare),
            _ => unreachable!("single-shot poll on a streaming or orphaned slot"),
        }
    }

    /// Poll a multishot op: `Ready(None)` after the final CQE (slot removed). Wakers as for
    /// [`OpTable::poll`].
    pub(crate) fn poll_next(
        &mut self,
        user_data: u64,
        cx_waker: &Waker,
        spare: &mut Option<Waker>,
    ) -> OpPoll<Option<Cqe>> {
        let Some(slot) = self.slot_mut(user_data) else {
            return OpPoll::Ready(None);
        };
        let Lifecycle::Streaming { waker, queue, done } = &mut slot.state else {
            unreachable!("stream poll on a single-shot slot");
        };
        if let Some(cqe) = queue.pop_front() {
            return OpPoll::Ready(Some(cqe));
        }
        if *done {
            let old = match self.remove(user_data) {
                Lifecycle::Streaming { waker, .. } => waker,
                _ => None,
            };
            // Dropped later, outside the borrow.
            self.retired.extend(old);
            return OpPoll::Ready(None);
        }
        registered(waker, cx_waker, spare)
    }

    /// Store `new` as the waker of op `user_data`: `Ok` with the replaced waker, or `Err`
    /// giving `new` back when the op no longer waits (it completed meanwhile: poll again).
    /// Either way the waker is dropped by the caller, outside the borrow.
    pub(crate) fn set_waker(&mut self, user_data: u64, new: Waker) -> Result<Option<Waker>, Waker> {
        let Some(slot) = self.slot_mut(user_data) else {
            return Err(new);
        };
        match &mut slot.state {
            Lifecycle::Submitted { waker, .. }
            | Lifecycle::Deferred { waker, .. }
            | Lifecycle::Queued { waker, .. } => Ok(waker.replace(new)),
            Lifecycle::Streaming { waker, queue, done } if queue.is_empty() && !*done => {
                Ok(waker.replace(new))
            }
            _ => Err(new),
        }
    }

    /// The op future for `user_data` was dropped; park or release `resources`. The slot's
    /// waker (if any) is handed back in the outcome, to be dropped outside the borrow.
    pub(crate) fn orphan(&mut self, user_data: u64, mut resources: Box<dyn Orphan>) -> DropOutcome {
        let Some(slot) = self.slot_mut(user_data) else {
            return DropOutcome::Release(resources, None);
        };
        match &mut slot.state {
            Lifecycle::Completed(cqe) => {
                // The result raced the drop: the CQE is already reaped, so the kernel is done
                // with the resources. Let the op recycle what the result carries (an fd).
                resources.orphan_cqe(cqe);
                self.remove(user_data);
                DropOutcome::Release(resources, None)
            }
            Lifecycle::Streaming { queue, done, waker } => {
                let waker = waker.take();
                for cqe in queue.drain(..) {
                    resources.orphan_cqe(&cqe);
                }
                if *done {
                    self.remove(user_data);
                    DropOutcome::Release(resources, waker)
                } else {
                    slot.state = Lifecycle::Orphaned(resources, NO_LANE);
                    DropOutcome::Cancel(waker)
                }
            }
            Lifecycle::Deferred { lane, waker, .. } | Lifecycle::Queued { lane, waker, .. } => {
                // Never submitted (its leader has not completed, or its lane's turn has not
                // come): nothing to cancel. A queued op's key leaves its lane's queue, so no
                // stale key is ever left there to match a later slot.
                let lane = *lane;
                let waker = waker.take();
                let queued = matches!(slot.state, Lifecycle::Queued { .. });
                self.remove(user_data);
                if lane != NO_LANE {
                    self.leave_lane(lane, user_data, queued);
                }
                DropOutcome::Release(resources, waker)
            }
            Lifecycle::Submitted {
                first, lane, waker, ..
            } => {
                let lane = *lane;
                let waker = waker.take();
                let result_seen = first.is_some();
                if let Some(first) = first.take() {
                    resources.orphan_cqe(&first);
                }
                slot.state = Lifecycle::Orphaned(resources, lane);
                if lane != NO_LANE && !result_seen {
                    // Cancelled mid-way, the op may leave part of its bytes in the stream:
                    // nothing queued behind it may follow.
                    self.fail_lane(lane);
                }
                DropOutcome::Cancel(waker)
            }
            Lifecycle::Orphaned(..) => unreachable!("op dropped twice"),
        }
    }

    /// Forget a slot whose SQE never reached the SQ (its push failed): nothing to wait for.
    #[cold] // Only when the ring itself has failed.
    pub(crate) fn abandon(&mut self, user_data: u64) {
        if let Some(slot) = self.slot_mut(user_data) {
            let was_in_flight = slot.state.in_flight();
            let state = self.remove(user_data);
            if was_in_flight {
                self.in_flight -= 1;
            }
            let queued = matches!(state, Lifecycle::Queued { .. });
            match state {
                Lifecycle::Deferred { waker, lane, .. } | Lifecycle::Queued { waker, lane, .. } => {
                    self.retired.extend(waker);
                    if lane != NO_LANE {
                        self.leave_lane(lane, user_data, queued);
                    }
                }
                Lifecycle::Submitted { waker, .. } | Lifecycle::Streaming { waker, .. } => {
                    self.retired.extend(waker)
                }
                _ => {}
            }
        }
    }

    /// A new lane with one handle.
    pub(crate) fn lane_new(&mut self) -> u32 {
        lane::new_lane(&mut self.lanes)
    }

    /// A new frame, with one handle, at the place of an op submitted into `key` now.
    pub(crate) fn lane_frame(&mut self, key: u32) -> u32 {
        lane::new_frame(&mut self.lanes, key)
    }

    /// One more handle on lane (or frame) `key`.
    pub(crate) fn lane_retain(&mut self, key: u32) {
        lane::join(&mut self.lanes, key);
    }

    /// A handle on lane (or frame) `key` is gone.
    pub(crate) fn lane_release(&mut self, key: u32) {
        lane::leave(&mut self.lanes, key, &mut self.lanes_ready);
        lane::unref(&mut self.lanes, key);
    }

    pub(crate) fn lane_failed(&self, key: u32) -> bool {
        self.lanes[lane::root(&self.lanes, key) as usize].failed
    }

    /// The slot `ud` of lane (or frame) `key` is gone without reaching the kernel: a
    /// `queued` op leaves the lane's queue, a deferred member its frame.
    fn leave_lane(&mut self, key: u32, ud: u64, queued: bool) {
        if queued {
            lane::unqueue(&mut self.lanes, key, ud);
        } else {
            lane::leave(&mut self.lanes, key, &mut self.lanes_ready);
        }
        lane::unref(&mut self.lanes, key);
    }

    /// Reserve a slot for an op that runs in lane (or frame) `key` after the lane's earlier
    /// ops. In a failed lane the op completes at once with `ECANCELED`, never submitted.
    pub(crate) fn insert_in_lane(&mut self, key: u32, entry: Entry) -> u64 {
        self.generation = (self.generation + 1) & 0x7fff_ffff;
        let generation = self.generation;
        let root = lane::root(&self.lanes, key);
        let failed = self.lanes[root as usize].failed;
        let state = if failed {
            Lifecycle::Completed(CANCELED)
        } else {
            self.lanes[key as usize].refs += 1;
            Lifecycle::Queued {
                entry: Box::new(entry),
                waker: None,
                lane: key,
            }
        };
        let index = self.slots.insert(Slot { generation, state });
        let ud = (u64::from(generation) << 32) | index as u64;
        if !failed {
            lane::enqueue(&mut self.lanes, key, ud);
            mark_ready(&mut self.lanes[root as usize], root, &mut self.lanes_ready);
        }
        ud
    }

    /// Take lane `key`'s queued ops (at most `cap`) for the kernel, as one `IOSQE_IO_LINK`
    /// chain into `out`, if the lane has nothing in the kernel and has not failed. The chain
    /// ends at the first open frame's mark.
    pub(crate) fn take_lane_batch(&mut self, key: u32, cap: usize, out: &mut Vec<Entry>) {
        let OpTable {
            slots,
            lanes,
            in_flight,
            ..
        } = self;
        let Some(l) = lanes.get_mut(key as usize) else {
            return;
        };
        l.marked = false;
        if l.failed || !l.in_flight.is_empty() {
            return;
        }
        while out.len() < cap {
            let Some(&ud) = l.queue.front() else {
                break;
            };
            if is_mark(ud) {
                break; // An open frame: what follows waits until it closes.
            }
            l.queue.pop_front();
            let Some(slot) = slot_in(slots, ud) else {
                continue; // Dropped while queued (keys of dropped ops leave the queue anyway).
            };
            if !matches!(slot.state, Lifecycle::Queued { .. }) {
                continue;
            }
            let state = std::mem::replace(&mut slot.state, Lifecycle::Completed(CANCELED));
            let Lifecycle::Queued { entry, waker, lane } = state else {
                unreachable!("checked above");
            };
            let entry = *entry;
            l.in_flight.push_back((ud, expected_result(&entry)));
            slot.state = Lifecycle::Submitted {
                waker,
                first: None,
                followers: None,
                lane,
            };
            *in_flight += 1;
            out.push(entry.user_data(ud));
        }
        // Ops of one lane run one after another in the kernel too: link them. A send followed
        // in the chain by a send on the same socket says `MSG_MORE`, so TCP packs a burst of
        // small frames into full segments instead of one segment (and wake-up) each; the
        // chain's last send never does, so nothing is left corked.
        let n = out.len();
        for i in 0..n.saturating_sub(1) {
            let more = is_send(&out[i])
                && is_send(&out[i + 1])
                && sys::sqe_fd(&out[i]) == sys::sqe_fd(&out[i + 1]);
            if more {
                sys::sqe_or_msg_flags(&mut out[i], libc::MSG_MORE as u32);
            }
            out[i] = out[i].clone().flags(io_uring::squeue::Flags::IO_LINK);
        }
    }

    /// The result of op `ud` of lane (or frame) `key` arrived: a failure (an error, or fewer
    /// bytes than the SQE asked) fails the lane; an emptied chain lets the next queued ops
    /// go.
    fn lane_result(&mut self, key: u32, ud: u64, result: i32) {
        if !self.lanes.contains(key as usize) {
            return;
        }
        let root = lane::root(&self.lanes, key);
        let l = &mut self.lanes[root as usize];
        let Some(pos) = l.in_flight.iter().position(|&(u, _)| u == ud) else {
            return; // A notification, or a CQE after the result.
        };
        let (_, expect) = l.in_flight.remove(pos).expect("found");
        let failed = result < 0 || expect.is_some_and(|e| result as u32 != e);
        if failed {
            self.fail_lane(root);
        }
        let l = &mut self.lanes[root as usize];
        if l.in_flight.is_empty() && !l.queue.is_empty() {
            mark_ready(l, root, &mut self.lanes_ready);
        }
        lane::unref(&mut self.lanes, key);
    }

    /// Fail the lane of `key` (a lane or a frame): its queued ops complete with
    /// `ECANCELED`, never submitted, and so do ops queued later, in the lane or any of its
    /// frames.
    fn fail_lane(&mut self, key: u32) {
        if !self.lanes.contains(key as usize) {
            return;
        }
        let root = lane::root(&self.lanes, key);
        let l = &mut self.lanes[root as usize];
        l.failed = true;
        let queued = std::mem::take(&mut l.queue);
        for ud in queued {
            if is_mark(ud) {
                continue;
            }
            let Some(slot) = slot_in(&mut self.slots, ud) else {
                continue;
            };
            if let Lifecycle::Queued { waker, lane, .. } = &mut slot.state {
                let lane = *lane;
                if let Some(w) = waker.take() {
                    self.woken.push(w);
                }
                slot.state = Lifecycle::Completed(CANCELED);
                lane::unref(&mut self.lanes, lane);
            }
        }
    }

    /// Keys of every slot still waiting for a CQE (used at shutdown).
    pub(crate) fn in_flight_keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots
            .iter()
            .filter(|(_, s)| s.state.in_flight())
            .map(|(i, s)| (u64::from(s.generation) << 32) | i as u64)
    }

    /// Drop every slot that no longer references kernel-visible memory. Returns how many
    /// in-flight slots had to be leaked (their resources are never freed).
    pub(crate) fn teardown(&mut self) -> usize {
        let leaked = self.in_flight;
        for slot in self.slots.drain() {
            if slot.state.in_flight() {
                // The kernel may still write into these resources: leak, never free.
                std::mem::forget(slot);
            }
        }
        self.in_flight = 0;
        leaked
    }
}

/// The result of a member cancelled before submission.
const CANCELED: Cqe = Cqe {
    result: -libc::ECANCELED,
    flags: 0,
    notif: None,
};

#[inline]
fn slot_in(slots: &mut Slab<Slot>, user_data: u64) -> Option<&mut Slot> {
    let index = (user_data & 0xffff_ffff) as usize;
    let generation = (user_data >> 32) as u32;
    slots.get_mut(index).filter(|s| s.generation == generation)
}

/// Turn a `Submitted` state whose waker and followers have been taken into `Completed`.
///
/// On every op's final CQE: a plain assignment calls `Lifecycle`'s whole drop glue (out of
/// line) on a value known to own nothing. Forgetting that value instead leaks nothing: its
/// only owning fields are the two `None`s checked here; `first` and `lane` are `Copy`.
/// Anything else is assigned (and dropped) the ordinary way.
#[inline]
fn set_completed(state: &mut Lifecycle, cqe: Cqe) {
    let owns_nothing = matches!(
        state,
        Lifecycle::Submitted {
            waker: None,
            followers: None,
            ..
        }
    );
    let old = std::mem::replace(state, Lifecycle::Completed(cqe));
    if owns_nothing {
        std::mem::forget(old);
    } else {
        drop(old);
    }
}

#[inline]
fn registered<T>(slot: &mut Option<Waker>, waker: &Waker, spare: &mut Option<Waker>) -> OpPoll<T> {
    // `will_wake` compares the raw wakers' data and vtable pointers: no user code runs.
    if slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
        return OpPoll::Pending;
    }
    match spare.take() {
        // Moves only: the replaced waker goes back out to be dropped outside the borrow.
        Some(new) => {
            *spare = slot.replace(new);
            OpPoll::Pending
        }
        None => OpPoll::Register,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counted(Arc<AtomicUsize>, Arc<AtomicUsize>);
    impl Orphan for Counted {
        fn orphan_cqe(&mut self, _cqe: &Cqe) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counters() -> (Arc<AtomicUsize>, Arc<AtomicUsize>) {
        (Arc::default(), Arc::default())
    }

    struct CountedWaker(AtomicUsize);
    impl std::task::Wake for CountedWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// `set_completed` skips the drop glue only for a state that owns nothing: a waker still
    /// in the slot is dropped, never leaked.
    #[test]
    fn set_completed_drops_what_the_state_still_owns() {
        let counted = Arc::new(CountedWaker(AtomicUsize::new(0)));
        let mut state = Lifecycle::Submitted {
            waker: Some(Waker::from(Arc::clone(&counted))),
            first: None,
            followers: None,
            lane: NO_LANE,
        };
        assert_eq!(Arc::strong_count(&counted), 2);
        set_completed(&mut state, CANCELED);
        assert_eq!(Arc::strong_count(&counted), 1, "the waker was dropped");
        assert!(matches!(state, Lifecycle::Completed(c) if c == CANCELED));
        set_completed(&mut state, CANCELED);
        assert!(matches!(state, Lifecycle::Completed(_)));
    }

    #[test]
    fn orphan_released_only_at_final_cqe() {
        let mut t = OpTable::default();
        let (drops, cqes) = counters();
        let ud = t.insert(false);
        let out = t.orphan(ud, Box::new(Counted(drops.clone(), cqes.clone())));
        assert!(matches!(out, DropOutcome::Cancel(None)));
        assert_eq!(t.in_flight(), 1);
        // The result (F_MORE) then the notification: released only after the second.
        t.complete(ud, 10, CQE_F_MORE);
        assert!(t.graveyard.is_empty());
        t.complete(ud, 0, CQE_F_NOTIF);
        assert_eq!(t.graveyard.len(), 1);
        assert_eq!(t.in_flight(), 0);
        assert_eq!(t.occupied(), 0);
        t.graveyard.clear();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert_eq!(cqes.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn completed_before_drop_is_released_once_with_its_result() {
        let mut t = OpTable::default();
        let (drops, cqes) = counters();
        let ud = t.insert(false);
        t.complete(ud, 7, 0);
        match t.orphan(ud, Box::new(Counted(drops.clone(), cqes.clone()))) {
            DropOutcome::Release(r, _) => drop(r),
            DropOutcome::Cancel(_) => panic!("completed op must not be cancelled"),
        }
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert_eq!(
            cqes.load(Ordering::SeqCst),
            1,
            "the raced result is recycled"
        );
        assert_eq!(t.occupied(), 0);
    }

    #[test]
    fn multi_cqe_op_completes_at_last_cqe_with_first_result() {
        let mut t = OpTable::default();
        let ud = t.insert(false);
        let w = futures::task::noop_waker();
        assert!(matches!(t.poll(ud, &w, &mut None), OpPoll::Register));
        assert!(matches!(t.set_waker(ud, w.clone()), Ok(None)));
        assert!(matches!(t.poll(ud, &w, &mut None), OpPoll::Pending));
        t.complete(ud, 4096, CQE_F_MORE);
        assert!(
            matches!(t.poll(ud, &w, &mut None), OpPoll::Pending),
            "must wait for the notification"
        );
        t.complete(ud, 0, CQE_F_NOTIF);
        let OpPoll::Ready(cqe) = t.poll(ud, &w, &mut None) else {
            panic!("not ready")
        };
        assert_eq!(cqe.result, 4096);
        assert_eq!(cqe.notif, Some(0));
    }

    #[test]
    fn stale_generation_is_not_confused_with_new_slot() {
        let mut t = OpTable::default();
        let a = t.insert(false);
        t.complete(a, 1, 0);
        let w = futures::task::noop_waker();
        assert!(matches!(t.poll(a, &w, &mut None), OpPoll::Ready(_)));
        let b = t.insert(false);
        assert_eq!(a & 0xffff_ffff, b & 0xffff_ffff, "slot index reused");
        assert_ne!(a, b, "generation differs");
        assert!(t.slot_mut(a).is_none());
    }

    #[test]
    fn streaming_yields_every_cqe_then_none() {
        let mut t = OpTable::default();
        let ud = t.insert(true);
        let w = futures::task::noop_waker();
        t.complete(ud, 1, CQE_F_MORE);
        t.complete(ud, 2, 0);
        assert_eq!(t.in_flight(), 0);
        assert!(matches!(
            t.poll_next(ud, &w, &mut None),
            OpPoll::Ready(Some(Cqe { result: 1, .. }))
        ));
        assert!(matches!(
            t.poll_next(ud, &w, &mut None),
            OpPoll::Ready(Some(Cqe { result: 2, .. }))
        ));
        assert!(matches!(
            t.poll_next(ud, &w, &mut None),
            OpPoll::Ready(None)
        ));
        assert_eq!(t.occupied(), 0);
    }

    /// A nop entry for table-level tests (never pushed to a ring).
    fn entry() -> Entry {
        io_uring::opcode::Nop::new().build()
    }

    /// The next insert gets slot `index` with generation `generation` (after a wrap).
    fn force_next_key(t: &mut OpTable, generation: u32) {
        t.generation = generation.wrapping_sub(1) & 0x7fff_ffff;
    }

    #[test]
    fn dropped_queued_op_leaves_its_lane_queue() {
        let mut t = OpTable::default();
        let lane = t.lane_new();
        let _blocker = t.insert_in_lane(lane, entry());
        let mut out = Vec::new();
        t.take_lane_batch(lane, 64, &mut out);
        assert_eq!(out.len(), 1, "the blocker is in the kernel");
        let dropped = t.insert_in_lane(lane, entry());
        match t.orphan(dropped, Box::new(Counted(Arc::default(), Arc::default()))) {
            DropOutcome::Release(..) => {}
            DropOutcome::Cancel(_) => panic!("a queued op was never submitted"),
        }
        assert!(
            t.lanes[lane as usize].queue.is_empty(),
            "no stale key left in the lane"
        );
    }

    #[test]
    fn wrapped_generation_never_lets_a_stale_lane_key_push_another_op() {
        let mut t = OpTable::default();
        let lane_a = t.lane_new();
        let lane_b = t.lane_new();
        let blocker_a = t.insert_in_lane(lane_a, entry());
        let blocker_b = t.insert_in_lane(lane_b, entry());
        let mut out = Vec::new();
        t.take_lane_batch(lane_a, 64, &mut out);
        t.take_lane_batch(lane_b, 64, &mut out);
        assert_eq!(out.len(), 2);
        // An op queued in lane A behind its blocker, dropped while queued.
        let stale = t.insert_in_lane(lane_a, entry());
        let _ = t.orphan(stale, Box::new(Counted(Arc::default(), Arc::default())));
        // 2^31 ops later the same index comes back with the same generation, for an op of
        // lane B (still busy with its blocker).
        force_next_key(&mut t, (stale >> 32) as u32);
        let reused = t.insert_in_lane(lane_b, entry());
        assert_eq!(reused, stale, "same key after the wrap");
        // Lane A's blocker completes: lane A must not push lane B's op.
        t.complete(blocker_a, 0, 0);
        let mut out = Vec::new();
        for key in std::mem::take(&mut t.lanes_ready) {
            t.take_lane_batch(key, 64, &mut out);
        }
        assert!(
            out.iter().all(|e| e.get_user_data() != reused),
            "lane B's queued op was pushed by lane A while lane B's blocker is in the kernel"
        );
        let _ = blocker_b;
    }

    #[test]
    fn wrapped_generation_never_lets_a_leader_release_another_groups_member() {
        let mut t = OpTable::default();
        // Group 1: a leader and one member, the member dropped before the leader completes.
        let leader1 = t.insert(false);
        let member1 = t.insert_deferred(entry(), MemberLen::AsBuilt, NO_LANE, leader1);
        t.set_followers(
            leader1,
            Box::new(Followers {
                members: vec![member1],
                zero_fill: None,
                prep: None,
            }),
        );
        let leader2 = t.insert(false);
        let _ = t.orphan(member1, Box::new(Counted(Arc::default(), Arc::default())));
        // After a wrap, group 2's member gets the same key; its own leader is still running.
        force_next_key(&mut t, (member1 >> 32) as u32);
        let member2 = t.insert_deferred(entry(), MemberLen::AsBuilt, NO_LANE, leader2);
        assert_eq!(member2, member1, "same key after the wrap");
        t.set_followers(
            leader2,
            Box::new(Followers {
                members: vec![member2],
                zero_fill: None,
                prep: None,
            }),
        );
        // Leader 1 completes: it must not release group 2's member (G1).
        t.complete(leader1, 10, 0);
        assert!(
            t.to_push.is_empty(),
            "a member of another group was pushed before its leader completed"
        );
        t.complete(leader2, 10, 0);
        assert_eq!(t.to_push.len(), 1, "its own leader releases it");
    }

    #[test]
    fn a_deferred_member_takes_its_frames_place_and_holds_the_lane_until_then() {
        let keys = |out: &[Entry]| out.iter().map(Entry::get_user_data).collect::<Vec<_>>();
        let mut t = OpTable::default();
        let lane = t.lane_new();
        let frame = t.lane_frame(lane);
        let head = t.insert_in_lane(frame, entry());
        let leader = t.insert(false);
        let member = t.insert_deferred(entry(), MemberLen::AsBuilt, frame, leader);
        t.set_followers(
            leader,
            Box::new(Followers {
                members: vec![member],
                zero_fill: None,
                prep: None,
            }),
        );
        t.lane_release(frame); // The handle goes; the member keeps the frame open.
        let later = t.insert_in_lane(lane, entry());
        let mut out = Vec::new();
        t.take_lane_batch(lane, 64, &mut out);
        assert_eq!(keys(&out), [head]);
        t.complete(head, 0, 0);
        out.clear();
        t.take_lane_batch(lane, 64, &mut out);
        assert!(
            out.is_empty(),
            "the op after the frame waits for its member"
        );
        t.complete(leader, 10, 0);
        t.take_lane_batch(lane, 64, &mut out);
        assert_eq!(
            keys(&out),
            [member, later],
            "the member at the frame's place"
        );
        t.complete(member, 0, 0);
        t.complete(later, 0, 0);
        t.lane_release(lane);
        assert!(t.lanes.is_empty(), "lane and frame gone with their last op");
    }
}
