//! Groups at the ring level: a leader op whose members the driver pushes, all together, as
//! soon as the leader's CQE is reaped, without a task poll in between (docs/design.md §4, G1).
//!
//! The executor knows nothing about leases: a member is a pre-built SQE (pointing into memory
//! its data keeps alive, typically through a lease count) plus a rule for its length. The
//! driver, on the leader's final CQE:
//! - success: optionally zero-fills the leased tail (G6), fixes each member's `len` from the
//!   leader's result, and pushes all members in one all-or-nothing batch (G1);
//! - failure: completes every member with `ECANCELED` without submitting any (G4).
//!
//! [`GroupOp`] resolves after the leader's and every member's final CQE (G3). Dropping it
//! removes members never submitted, and cancels the leader and in-flight members, whose data
//! is released only at their final CQEs (G8).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use io_uring::squeue::Entry;

use crate::context::DriverRef;
use crate::lifecycle::{Cqe, OpPoll};
use crate::op::{Completable, cancel, settle};

/// How a member's SQE `len` follows the leader's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberLen {
    /// Keep the length the member was built with.
    AsBuilt,
    /// The member covers leader bytes `[offset, offset + max)`: its length becomes
    /// `clamp(leader_result - offset, 0, max)`, so it sees exactly the bytes produced.
    FromLeader {
        /// Where the member's range starts in the leader's output.
        offset: u32,
        /// The member's full length.
        max: u32,
    },
}

impl MemberLen {
    pub(crate) fn resolve(self, leader_result: i32) -> Option<u32> {
        match self {
            MemberLen::AsBuilt => None,
            MemberLen::FromLeader { offset, max } => {
                let produced = leader_result.max(0) as u32;
                Some(produced.saturating_sub(offset).min(max))
            }
        }
    }
}

/// Zero the tail of the leased memory a short leader left unwritten (G6 zero-fill mode).
#[derive(Debug)]
pub struct ZeroFill {
    ptr: *mut u8,
    len: usize,
}

impl ZeroFill {
    /// # Safety
    /// `ptr` must be valid for writes of `len` bytes for as long as the leader's data lives,
    /// and nothing else may access those bytes between the leader's CQE and its members'
    /// submission (the lease is exclusively the group's).
    pub unsafe fn new(ptr: *mut u8, len: usize) -> Self {
        ZeroFill { ptr, len }
    }

    pub(crate) fn apply(&self, leader_result: i32) {
        let produced = (leader_result.max(0) as usize).min(self.len);
        // SAFETY: the constructor's contract: `ptr..ptr+len` is writable and owned by the
        // leader's data, which is alive (its slot just completed and the group still holds
        // it: a dropped group discards its followers before this can run).
        unsafe { std::ptr::write_bytes(self.ptr.add(produced), 0, self.len - produced) };
    }
}

/// Rewrites member `index`'s SQE from the leader's CQE before it is pushed: for leaders whose
/// output location is only known at completion (a buffer-select recv: the kernel chose the
/// buffer, named in the CQE flags). Runs inside the driver: it must not call into the runtime.
///
/// The SQE it produces is under the same contract as [`GroupOp::submit`]'s entries.
pub type MemberPrep = Box<dyn Fn(&Cqe, usize, &mut Entry)>;

/// Options of a group beyond its ops.
#[derive(Default)]
pub struct GroupOptions {
    /// Zero the leased tail a short leader left unwritten (G6 zero-fill mode).
    pub zero_fill: Option<ZeroFill>,
    /// Rewrite each member's SQE from the leader's CQE (see [`MemberPrep`]).
    pub prep: Option<MemberPrep>,
}

impl fmt::Debug for GroupOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupOptions")
            .field("zero_fill", &self.zero_fill)
            .field("prep", &self.prep.is_some())
            .finish()
    }
}

/// What a leader's slot keeps about its members.
pub(crate) struct Followers {
    pub(crate) members: Vec<u64>,
    pub(crate) zero_fill: Option<ZeroFill>,
    pub(crate) prep: Option<MemberPrep>,
}

/// One member: its SQE (pointers valid per [`crate::Op::submit`]'s contract), its length
/// rule, and the resources the SQE points into.
#[derive(Debug)]
pub struct MemberSpec<M> {
    /// The member's SQE (its `user_data` is overwritten).
    pub entry: Entry,
    /// How its length follows the leader.
    pub len: MemberLen,
    /// The resources it references (kept until its final CQE).
    pub data: M,
    /// Run in this lane once the leader completed: after the lane's earlier ops, chained
    /// with its later ones (see [`crate::Lane`]). `None`: pushed with the other members.
    pub lane: Option<crate::Lane>,
}

/// Results of a whole group: the leader's output and each member's, in member order.
#[derive(Debug)]
pub struct GroupOutput<L, M> {
    /// The leader's output.
    pub leader: L,
    /// Each member's output (`ECANCELED` results when the leader failed).
    pub members: Vec<M>,
}

/// A submitted group; resolves after the last member's last CQE.
#[must_use = "futures do nothing unless you `.await` or poll them; dropping cancels the group"]
pub struct GroupOp<L: Completable, M: Completable> {
    driver: DriverRef,
    leader_ud: u64,
    leader: Option<L>,
    leader_cqe: Option<Cqe>,
    member_uds: Vec<u64>,
    members: Vec<Option<M>>,
    member_cqes: Vec<Option<Cqe>>,
    /// Which ops a drop waits for: the leader, then one flag per member.
    settle_leader: bool,
    settle_members: Vec<bool>,
}

impl<L: Completable, M: Completable> GroupOp<L, M> {
    /// Make dropping the group wait until the kernel is done with the leader (if `leader`)
    /// and with each member whose flag in `members` is set (see
    /// [`crate::Op::settle_on_drop`]): for the ops that write into a borrowed lease. Ops not
    /// selected are cancelled without waiting (a SEND_ZC notification may take long).
    pub fn settle_on_drop(mut self, leader: bool, members: Vec<bool>) -> Self {
        self.settle_leader = leader;
        self.settle_members = members;
        self
    }

    /// Push the leader; park the members until its CQE.
    ///
    /// # Panics
    /// Outside a ringleader runtime.
    ///
    /// # Safety
    /// As for [`crate::Op::submit`], for the leader and each member entry: every pointer is
    /// valid until that SQE's final CQE and points into memory its data keeps alive.
    pub unsafe fn submit(
        leader: Entry,
        leader_data: L,
        members: Vec<MemberSpec<M>>,
        zero_fill: Option<ZeroFill>,
    ) -> Self {
        let options = GroupOptions {
            zero_fill,
            prep: None,
        };
        // SAFETY: forwarded from the caller.
        unsafe { Self::submit_with(leader, leader_data, members, options) }
    }

    /// [`GroupOp::submit`] with [`GroupOptions`].
    ///
    /// # Panics
    /// Outside a ringleader runtime.
    ///
    /// # Safety
    /// As for [`GroupOp::submit`]; in addition, every entry `options.prep` produces must obey
    /// the same contract.
    pub unsafe fn submit_with(
        leader: Entry,
        leader_data: L,
        members: Vec<MemberSpec<M>>,
        options: GroupOptions,
    ) -> Self {
        let GroupOptions { zero_fill, prep } = options;
        let driver = DriverRef::current();
        let mut member_uds = Vec::with_capacity(members.len());
        let mut datas = Vec::with_capacity(members.len());
        // The lane handles are dropped after the driver borrow (a drop reaches the driver);
        // groups without lane members allocate nothing for them.
        let mut lanes = Vec::new();
        let pushed = driver
            .with(|d| {
                // The leader's slot first: each member records its leader's key.
                let leader_ud = d.ops.insert(false);
                for m in members {
                    let lane = m
                        .lane
                        .as_ref()
                        .map_or(crate::lane::NO_LANE, |l| l.key_for(DriverRef::of(d)));
                    member_uds.push(d.ops.insert_deferred(m.entry, m.len, lane, leader_ud));
                    datas.push(Some(m.data));
                    lanes.extend(m.lane);
                }
                d.ops.set_followers(
                    leader_ud,
                    Box::new(Followers {
                        members: member_uds.clone(),
                        zero_fill,
                        prep,
                    }),
                );
                // SAFETY: the caller's contract for the leader entry; its data is stored in
                // the group below.
                match unsafe { d.push(&leader.user_data(leader_ud)) } {
                    Ok(()) => Ok(leader_ud),
                    Err(e) => {
                        // Nothing reached the SQ: no slot may wait for a CQE.
                        d.ops.abandon(leader_ud);
                        for &ud in &member_uds {
                            d.ops.abandon(ud);
                        }
                        Err(e)
                    }
                }
            })
            .expect("current driver");
        let leader_ud = pushed.unwrap_or_else(|e| crate::driver::push_failed(e));
        drop(lanes);
        let n = member_uds.len();
        GroupOp {
            driver,
            leader_ud,
            leader: Some(leader_data),
            leader_cqe: None,
            member_uds,
            members: datas,
            member_cqes: vec![None; n],
            settle_leader: false,
            settle_members: Vec::new(),
        }
    }
}

impl<L: Completable, M: Completable> Unpin for GroupOp<L, M> {}

impl<L: Completable, M: Completable> Future for GroupOp<L, M> {
    type Output = GroupOutput<L::Output, M::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            let (leader_ud, leader_cqe) = (this.leader_ud, &mut this.leader_cqe);
            let (member_uds, member_cqes) = (&this.member_uds, &mut this.member_cqes);
            // Slots that hold no waker of this task; filled outside the driver borrow (a
            // waker's clone and drop are user code).
            let mut register = Vec::new();
            this.driver
                .with(|d| {
                    if leader_cqe.is_none() {
                        match d.ops.poll(leader_ud, cx.waker(), &mut None) {
                            OpPoll::Ready(c) => *leader_cqe = Some(c),
                            OpPoll::Pending => {}
                            OpPoll::Register => register.push(leader_ud),
                        }
                    }
                    for (ud, slot) in member_uds.iter().zip(member_cqes.iter_mut()) {
                        if slot.is_none() {
                            match d.ops.poll(*ud, cx.waker(), &mut None) {
                                OpPoll::Ready(c) => *slot = Some(c),
                                OpPoll::Pending => {}
                                OpPoll::Register => register.push(*ud),
                            }
                        }
                    }
                })
                .expect("ringleader: group polled outside the runtime that submitted it");
            let mut completed_meanwhile = false;
            for ud in register {
                let waker = cx.waker().clone();
                let set = this
                    .driver
                    .with(|d| d.ops.set_waker(ud, waker))
                    .expect("ringleader: group polled outside the runtime that submitted it");
                // Dropped here, outside the borrow: the replaced waker, or ours.
                match set {
                    Ok(old) => drop(old),
                    Err(ours) => {
                        drop(ours);
                        completed_meanwhile = true;
                    }
                }
            }
            // Look again only if a slot completed while the wakers were handed over (never
            // just because a waker's clone does not `will_wake` the original: that would loop).
            if !completed_meanwhile {
                break;
            }
        }
        if this.leader_cqe.is_none() || this.member_cqes.iter().any(Option::is_none) {
            return Poll::Pending;
        }
        let leader = this.leader.take().expect("GroupOp polled after completion");
        let leader = leader.complete(this.leader_cqe.expect("checked"));
        let members = this
            .members
            .iter_mut()
            .zip(&this.member_cqes)
            .map(|(m, c)| m.take().expect("member data").complete(c.expect("checked")))
            .collect();
        Poll::Ready(GroupOutput { leader, members })
    }
}

impl<L: Completable, M: Completable> Drop for GroupOp<L, M> {
    fn drop(&mut self) {
        // The leader first: once it is orphaned, its followers are discarded and no member
        // can be released any more.
        let mut wait_for = Vec::new();
        if let Some(l) = self.leader.take() {
            if self.leader_cqe.is_none() {
                cancel(self.driver, self.leader_ud, Box::new(l));
                if self.settle_leader {
                    wait_for.push(self.leader_ud);
                }
            } else {
                drop(l);
            }
        }
        for (i, m) in self.members.iter_mut().enumerate() {
            if let Some(m) = m.take() {
                if self.member_cqes[i].is_none() {
                    cancel(self.driver, self.member_uds[i], Box::new(m));
                    if self.settle_members.get(i).copied().unwrap_or(false) {
                        wait_for.push(self.member_uds[i]);
                    }
                } else {
                    drop(m);
                }
            }
        }
        for ud in wait_for {
            settle(self.driver, ud);
        }
    }
}

impl<L: Completable, M: Completable> fmt::Debug for GroupOp<L, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupOp")
            .field("leader_done", &self.leader_cqe.is_some())
            .field("members", &self.member_uds.len())
            .finish()
    }
}
