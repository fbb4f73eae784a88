//! [`Group`]: a leader and members on a [`Lease`] the group borrows for its whole life.
//!
//! Building a group places its members (G7 checks, `layout.rs`); the first poll submits it.
//! In the default mode the executor's [`GroupOp`] does the ring work: the leader alone goes
//! to the kernel, the members wait outside the SQ and are pushed by the driver in one batch
//! when the leader's CQE is reaped (G1), with lengths fixed from the leader's result (G6);
//! a failed leader cancels them unsubmitted (G4); the op resolves after every member's last
//! CQE (G3). In linked mode (`linked.rs`) the leader and members go to the kernel in one
//! `IOSQE_IO_LINK` chain instead (G10).
//!
//! Invariants: the group holds `&'l mut Lease` from construction to completion, so nothing
//! else reaches the lease meanwhile (G9), and every op's data holds a `LeaseRef`, so a
//! dropped or forgotten group never lets the slot be reused under the kernel (G8). Those
//! references are kernel writers for the leader (when it fills the lease; zero-fill writes
//! at its CQE) and for members that write into the lease, kernel readers for the other
//! members: a dropped or forgotten group leaves the lease refusing access until its ops'
//! final CQEs (forgotten: forever), never racy. A group is not submitted on a lease that a
//! dropped or forgotten op still uses in a conflicting way: it is refused with the
//! `ResourceBusy` error of its [`LeaseBusy`](ringleader_buf::LeaseBusy).

use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use ringleader_buf::Lease;
use ringleader_executor::{GroupOp, GroupOptions, MemberLen, MemberSpec, ZeroFill};

use super::chain::Chain;
use super::hold::Hold;
use super::layout::{Placed, Shape, place};
use super::linked::Run;
use super::output::{GroupOutput, invalid};
use super::spec::{Leader, LeaderKind, Member};
use super::sqe;
use super::vectored::{self, Fixup};

/// A group on a borrowed lease; `.await` it (it is [`IntoFuture`]).
///
/// ```
/// use std::rc::Rc;
/// use ringleader::buf::FixedPool;
/// use ringleader::{fd, group::{Group, Leader, Member}, pipe::pipe};
///
/// ringleader::block_on(async {
///     let pool = FixedPool::new(4096, 1).unwrap();
///     let (src_r, src_w) = pipe().await.unwrap();
///     let (a_r, a_w) = pipe().await.unwrap();
///     let (b_r, b_w) = pipe().await.unwrap();
///     let (src_r, a_w, b_w) = (Rc::new(src_r), Rc::new(a_w), Rc::new(b_w));
///     fd::write(&Rc::new(src_w), b"fan me out".to_vec(), u64::MAX).await.0.unwrap();
///
///     let mut lease = pool.lease(4096).await.unwrap();
///     let out = Group::new(&mut lease)
///         .leader(Leader::read_fixed(&src_r, u64::MAX)) // fills the lease, then both
///         .member(Member::write_fixed(&a_w, u64::MAX))   // members go to the kernel
///         .member(Member::write_fixed(&b_w, u64::MAX))   // together, zero-copy
///         .await;
///     assert!(!out.failed());
///     assert_eq!(out.leader.unwrap(), 10);
///     assert_eq!(&lease[..], b"fan me out");
///     for r in [a_r, b_r] {
///         let (n, buf) = fd::read(&Rc::new(r), Vec::with_capacity(16), u64::MAX).await;
///         assert_eq!((n.unwrap(), &buf[..]), (10, &b"fan me out"[..]));
///     }
/// });
/// ```
#[must_use = "a group does nothing unless you `.await` it"]
pub struct Group<'l> {
    lease: &'l mut Lease,
    leader: Leader,
    members: Vec<Member>,
    zero_fill: bool,
    linked: bool,
}

impl<'l> Group<'l> {
    /// A group on `lease`, with a [`Leader::nop`] leader until [`Group::leader`] sets one.
    pub fn new(lease: &'l mut Lease) -> Group<'l> {
        Group {
            lease,
            leader: Leader::nop(),
            members: Vec::new(),
            zero_fill: false,
            linked: false,
        }
    }

    /// Set the leader.
    pub fn leader(mut self, leader: Leader) -> Self {
        self.leader = leader;
        self
    }

    /// Add a member.
    pub fn member(mut self, member: Member) -> Self {
        self.members.push(member);
        self
    }

    /// Add several members.
    pub fn members(mut self, members: impl IntoIterator<Item = Member>) -> Self {
        self.members.extend(members);
        self
    }

    /// Zero-fill mode (G6): when the leader fills less than the lease, the unread tail is
    /// zeroed before the members run, and members that read the lease get their full length,
    /// so no stale bytes of the slot's previous use leak. The lease's `len` becomes its
    /// capacity. No effect with a [`Leader::nop`].
    pub fn zero_fill(mut self) -> Self {
        self.zero_fill = true;
        self
    }

    /// Kernel-linked mode (G10): the leader and the members go to the kernel in one
    /// all-or-nothing push as an `IOSQE_IO_LINK` chain, the members serially, each with its
    /// full length (the lengths are known when the leader fills the lease). A short leader or
    /// member breaks the kernel's chain; the runtime then submits the rest itself with the
    /// right lengths, so results are those of the default mode, never a spurious
    /// `ECANCELED`. Needs a [`Leader::read_fixed`] (whose short result breaks a chain) or a
    /// [`Leader::nop`]; with [`Leader::recv`], or with more ops than the SQ holds, the group
    /// is refused.
    pub fn linked(mut self) -> Self {
        self.linked = true;
        self
    }

    /// Run `next` after this group, on the same lease, only if this group did not fail (G5).
    /// See [`Chain`].
    pub fn then(self, next: impl FnOnce(&'l mut Lease) -> Group<'l> + 'l) -> Chain<'l> {
        Chain::new(self).then(next)
    }
}

impl fmt::Debug for Group<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("lease", &self.lease)
            .field("leader", &self.leader)
            .field("members", &self.members)
            .field("zero_fill", &self.zero_fill)
            .field("linked", &self.linked)
            .finish()
    }
}

impl<'l> IntoFuture for Group<'l> {
    type Output = GroupOutput;
    type IntoFuture = GroupFuture<'l>;

    fn into_future(self) -> GroupFuture<'l> {
        let Group {
            lease,
            leader,
            members,
            zero_fill,
            linked,
        } = self;
        let produces = leader.produces();
        let shape = Shape {
            cap: lease.capacity(),
            data_len: lease.len(),
            produces,
            zero_fill: zero_fill && produces,
        };
        let n = members.len();
        // What the group does to the lease decides what it must not meet: a kernel writer
        // (if it only reads), or any kernel op (if anything writes into it).
        let free = if produces || members.iter().any(Member::writes_lease) {
            lease.check_writable()
        } else {
            lease.check_readable()
        };
        let state = match place(&members, shape) {
            _ if free.is_err() => State::Refused(free.err().map(Into::into), n),
            Err(e) => State::Refused(Some(e), n),
            Ok(_)
                if linked
                    && members
                        .iter()
                        .any(|m| m.lane.is_some() || m.prefixed().is_some()) =>
            {
                State::Refused(
                    Some(invalid(
                        "linked mode chains the members in the kernel itself: it takes no \
                         member in a lane and no send_prefixed"
                            .into(),
                    )),
                    n,
                )
            }
            Ok(_) if linked && matches!(leader.kind, LeaderKind::Recv { .. }) => State::Refused(
                Some(invalid(
                    "linked mode needs a leader whose short result breaks the kernel chain \
                     (read_fixed or nop); a short recv does not"
                        .into(),
                )),
                n,
            ),
            Ok(_) if linked && n + 1 > ringleader_executor::setup_info().sq_entries as usize => {
                State::Refused(
                    Some(invalid(format!(
                        "a linked group of {} ops cannot be pushed at once into an SQ of {}",
                        n + 1,
                        ringleader_executor::setup_info().sq_entries
                    ))),
                    n,
                )
            }
            Ok(placed) => State::Planned(Plan {
                leader,
                placed,
                shape,
                linked,
            }),
        };
        GroupFuture {
            lease: Some(lease),
            state,
        }
    }
}

struct Plan {
    leader: Leader,
    placed: Vec<Placed>,
    shape: Shape,
    linked: bool,
}

enum State {
    Refused(Option<io::Error>, usize),
    Planned(Plan),
    Running(GroupOp<Hold, Hold>, Shape),
    Linked(Run, Shape),
    Done,
}

/// The future of a [`Group`]: submits on first poll, resolves after the last member's last
/// CQE. Dropping it cancels whatever is in flight (G8); members not yet submitted never are.
#[must_use = "futures do nothing unless you `.await` or poll them; dropping cancels the group"]
pub struct GroupFuture<'l> {
    lease: Option<&'l mut Lease>,
    state: State,
}

impl<'l> GroupFuture<'l> {
    /// The lease back, once the group has completed (for [`Chain`]).
    pub(crate) fn take_lease(&mut self) -> Option<&'l mut Lease> {
        match self.state {
            State::Done => self.lease.take(),
            _ => None,
        }
    }
}

impl Plan {
    fn submit(self, lease: &mut Lease) -> State {
        let Plan {
            leader,
            placed,
            shape,
            linked,
        } = self;
        let base = lease.as_mut_ptr();
        let index = lease.buf_index();
        // The template each op's reference is made from; it only keeps the slot.
        let keep = lease.keep_alive();
        let leader_entry = leader.entry(base, sqe::len32(shape.cap), index);
        // A leader that fills the lease (and, in zero-fill mode, the driver's write at its
        // CQE) is a kernel writer until its data is released; a NOP touches nothing.
        let leader_ref = if leader.produces() {
            keep.kernel_writer()
        } else {
            keep.clone()
        };
        let leader_hold = Hold::new(Some(leader_ref), leader.fd());
        if linked {
            return State::Linked(
                Run::start(leader_entry, leader_hold, placed, base, index, &keep),
                shape,
            );
        }
        let mut fixups = Vec::with_capacity(placed.len());
        let writers: Vec<bool> = placed.iter().map(|p| p.member.writes_lease()).collect();
        let members = placed
            .iter()
            .map(|p| {
                let built = p.build(base, index, &keep, None);
                fixups.push(
                    built
                        .iov
                        .filter(|_| p.follows)
                        .map(|iov| Fixup::new(iov, &p.member, p.off, p.max, index)),
                );
                MemberSpec {
                    entry: built.entry,
                    len: if p.follows && built.iov.is_none() {
                        // `place` keeps every range within the capacity, itself under 4 GiB.
                        MemberLen::FromLeader {
                            offset: p.off as u32,
                            max: p.max as u32,
                        }
                    } else {
                        MemberLen::AsBuilt
                    },
                    data: built.hold,
                    lane: p.member.lane.clone(),
                }
            })
            .collect();
        let zero_fill = shape.zero_fill.then(|| {
            // SAFETY: `base..base + cap` is the lease's slot, kept from reuse by the leader's
            // `LeaseRef` for as long as the leader's data (which holds it) lives, and nothing
            // else touches it between the leader's CQE and the members' push: the group holds
            // the lease's only `&mut`, the members have not started, and if the group future
            // is forgotten the leader's `LeaseRef`, a kernel writer, is leaked with it, so safe
            // code never reaches the bytes again.
            unsafe { ZeroFill::new(base, shape.cap) }
        });
        // Vectored members whose iovecs follow the leader's result.
        let prep = fixups
            .iter()
            .any(Option::is_some)
            .then(|| vectored::prep(fixups));
        let options = GroupOptions { zero_fill, prep };
        // SAFETY: every entry points into the lease slot (`base` plus offsets `place` kept
        // within the capacity), or at iovecs that do and that the member's `Hold` owns, and
        // names an fd; each op's `Hold` keeps a `LeaseRef` on the slot and a reference to the
        // fd's owner until that op's final CQE (see `hold.rs`). The prep hook only shortens
        // iovecs (`vectored.rs`).
        let op = unsafe { GroupOp::submit_with(leader_entry, leader_hold, members, options) };
        // The group borrows the lease exclusively and its leader (and read/recv members) write
        // into it: dropping the group waits until the kernel is done with those, so the borrow
        // never ends under a kernel write. Members that only read the lease (writes, sends,
        // SEND_ZC waiting for its notification) are not waited for: the lease count keeps
        // the slot for them.
        State::Running(op.settle_on_drop(true, writers), shape)
    }
}

/// Record a finished group's data length in the lease.
fn set_len(lease: &mut Lease, shape: Shape, out: &GroupOutput) {
    if let (true, Ok(n)) = (shape.produces, &out.leader) {
        lease.set_len(if shape.zero_fill { shape.cap } else { *n });
    }
}

impl Future for GroupFuture<'_> {
    type Output = GroupOutput;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<GroupOutput> {
        let this = self.get_mut();
        loop {
            let lease = this.lease.as_deref_mut().expect("lease held until done");
            let out = match &mut this.state {
                State::Refused(err, n) => {
                    let err = err.take().expect("refused once");
                    GroupOutput::refused(err, *n)
                }
                State::Planned(_) => {
                    let State::Planned(plan) = std::mem::replace(&mut this.state, State::Done)
                    else {
                        unreachable!()
                    };
                    this.state = plan.submit(lease);
                    continue;
                }
                State::Running(op, shape) => {
                    let done = ready!(Pin::new(op).poll(cx));
                    let out = GroupOutput::from_cqes(&done.leader, done.members);
                    set_len(lease, *shape, &out);
                    out
                }
                State::Linked(run, shape) => {
                    let (leader, members) = ready!(run.poll(cx, lease, *shape));
                    let out = GroupOutput::from_cqes(&leader, members);
                    set_len(lease, *shape, &out);
                    out
                }
                State::Done => panic!("GroupFuture polled after completion"),
            };
            this.state = State::Done;
            return Poll::Ready(out);
        }
    }
}

impl fmt::Debug for GroupFuture<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Refused(..) => "refused",
            State::Planned(_) => "not submitted",
            State::Running(..) => "running",
            State::Linked(..) => "running linked",
            State::Done => "done",
        };
        f.debug_struct("GroupFuture")
            .field("state", &state)
            .finish()
    }
}
