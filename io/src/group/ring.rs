//! [`RecvGroup`]: the lease is a [`BufRing`] buffer the kernel picks for a buffer-select
//! recv; the members send or write it on, zero-copy.
//!
//! The members' SQEs cannot be built before the leader's CQE names the buffer
//! (`IORING_CQE_F_BUFFER`, `bid`). The executor's prep hook runs in the driver at that CQE,
//! before the members are pushed: it claims the buffer as a [`Lease`] into a shared [`Pick`]
//! and writes each member's SQE against it (address `lease + offset`, the ring's fixed-buffer
//! index when it was made with [`BufRing::new_fixed`]). So G1 holds as in every group: the
//! members go to the kernel in one batch right after the leader's CQE, without a task poll.
//!
//! # Invariant: the buffer stays out of the ring while any op may use it
//!
//! The [`Pick`] lives in an `Rc` held by the leader's data, every member's data and the
//! group future; the prep hook only holds a `Weak`. The buffer returns to the ring when the
//! `Pick` is dropped, i.e. when the last of those is gone: after every member's final CQE
//! (`SEND_ZC`: its notification), whatever the group future did meanwhile. If the leader's
//! CQE arrives after the group was dropped, its orphaned data claims the buffer the same way,
//! and returns it when dropped. A completed group hands the buffer to the caller as a lease.
//!
//! An empty ring fails the recv with `ENOBUFS`; as for a plain buffer-select recv, that is
//! backpressure: the group waits for a buffer to come back and is submitted again.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, ready};

use io_uring::{cqueue, opcode, squeue, types};
use ringleader_buf::{BufRing, Lease, WaitReturned};
use ringleader_executor::{Cqe, GroupOp, GroupOptions, MemberLen, MemberSpec};

use super::fd::{FdHold, IoFd};
use super::hold::Hold;
use super::layout::{Placed, Shape, place};
use super::output::{GroupOutput, invalid};
use super::spec::Member;
use super::sqe;

/// The buffer a buffer-select leader was given, shared by every op of its group.
pub(crate) struct Pick {
    ring: BufRing,
    claimed: Cell<bool>,
    lease: RefCell<Option<Lease>>,
}

impl Pick {
    /// Claim the buffer `cqe` names, once (the leader's CQE is seen by the prep hook, by
    /// the leader's completion and by its orphan path; only the first claims).
    pub(crate) fn record(&self, cqe: &Cqe) {
        if self.claimed.get() {
            return;
        }
        if let Some(bid) = cqueue::buffer_select(cqe.flags) {
            self.claimed.set(true);
            let len = usize::try_from(cqe.result).unwrap_or(0);
            // SAFETY: this CQE, the leader's on this ring's group, handed `bid` to the
            // leader; `claimed` makes this the only claim of it. A recv never returns more
            // than the buffer it was given.
            let lease = unsafe { self.ring.claim(bid, len) };
            *self.lease.borrow_mut() = Some(lease);
        }
    }
}

/// A group whose leader receives into a buffer the kernel picks from a [`BufRing`].
///
/// Resolves to the group's output and, when the leader received data, the buffer as a
/// [`Lease`] holding it (it returns to the ring when dropped). Members that write into the
/// lease are refused: the buffer is the leader's output.
///
/// ```
/// use ringleader::buf::BufRing;
/// use ringleader::group::{Member, RecvGroup};
/// use ringleader::net::{OwnedIo, UnixStream};
///
/// ringleader::block_on(async {
///     let ring = BufRing::new_fixed(4, 4096).unwrap();
///     let (a, b) = UnixStream::pair().unwrap();
///     let (c, d) = UnixStream::pair().unwrap();
///     a.write_all_owned(b"relay".to_vec()).await.0.unwrap();
///     let (out, lease) = RecvGroup::new(&b, &ring).member(Member::send(&c)).await;
///     assert_eq!(out.leader.unwrap(), 5);
///     assert_eq!(&lease.unwrap()[..], b"relay");
///     let (_, buf) = d.read_owned(Vec::with_capacity(8)).await;
///     assert_eq!(buf, b"relay");
/// });
/// ```
#[must_use = "a group does nothing unless you `.await` it"]
pub struct RecvGroup {
    sock: FdHold,
    ring: BufRing,
    members: Vec<Member>,
}

impl RecvGroup {
    /// A group whose leader is a recv on `sock` with a buffer from `ring`
    /// (`IORING_OP_RECV` with `IOSQE_BUFFER_SELECT`, Linux 5.19 for buffer rings).
    pub fn new(sock: &impl IoFd, ring: &BufRing) -> RecvGroup {
        RecvGroup {
            sock: sock.fd_hold(),
            ring: ring.clone(),
            members: Vec::new(),
        }
    }

    /// Add a member (one that reads the lease: write, send, `SEND_ZC`).
    pub fn member(mut self, member: Member) -> Self {
        self.members.push(member);
        self
    }
}

impl fmt::Debug for RecvGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvGroup")
            .field("sock", &self.sock)
            .field("ring", &self.ring)
            .field("members", &self.members)
            .finish()
    }
}

impl IntoFuture for RecvGroup {
    type Output = (GroupOutput, Option<Lease>);
    type IntoFuture = RecvGroupFuture;

    fn into_future(self) -> RecvGroupFuture {
        let shape = Shape {
            cap: self.ring.buf_size(),
            data_len: 0,
            produces: true,
            zero_fill: false,
        };
        let n = self.members.len();
        let state = match place(&self.members, shape) {
            Err(e) => State::Refused(Some(e)),
            Ok(p) if p.iter().any(|p| p.member.writes_lease()) => State::Refused(Some(invalid(
                "a recv group's members must read the received buffer, not write into it".into(),
            ))),
            Ok(p)
                if p.iter()
                    .any(|p| p.member.ranges().is_some() || p.member.prefixed().is_some()) =>
            {
                State::Refused(Some(invalid(
                    "a recv group takes no vectored member (writev_fixed, send_prefixed)".into(),
                )))
            }
            Ok(p) => State::Planned(Rc::new(p)),
        };
        RecvGroupFuture {
            sock: self.sock,
            ring: self.ring,
            members: n,
            state,
        }
    }
}

#[expect(
    clippy::large_enum_variant,
    reason = "one State per group future, which is itself the allocation; boxing would add one"
)]
enum State {
    Refused(Option<io::Error>),
    Planned(Rc<Vec<Placed>>),
    Running {
        op: GroupOp<Hold, Hold>,
        pick: Rc<Pick>,
        placed: Rc<Vec<Placed>>,
        since: u64,
    },
    Starved(WaitReturned, Rc<Vec<Placed>>),
    Done,
}

/// The future of a [`RecvGroup`].
#[must_use = "futures do nothing unless you `.await` or poll them; dropping cancels the group"]
pub struct RecvGroupFuture {
    sock: FdHold,
    ring: BufRing,
    members: usize,
    state: State,
}

impl RecvGroupFuture {
    fn submit(&self, placed: Rc<Vec<Placed>>) -> State {
        // Read before the push: a buffer returned after this shows as a change.
        let since = self.ring.returned();
        let pick = Rc::new(Pick {
            ring: self.ring.clone(),
            claimed: Cell::new(false),
            lease: RefCell::new(None),
        });
        let len = sqe::len32(self.ring.buf_size());
        let leader = opcode::Recv::new(types::Fd(self.sock.raw), std::ptr::null_mut(), len)
            .buf_group(self.ring.select_bgid())
            .build()
            .flags(squeue::Flags::BUFFER_SELECT);
        let leader_hold = Hold::new(None, Some(self.sock.clone())).with_pick(Rc::clone(&pick));
        let members = placed
            .iter()
            .map(|p| {
                let hold = Hold::new(None, Some(p.member.fd())).with_pick(Rc::clone(&pick));
                // Rewritten by the prep hook once the buffer is known.
                MemberSpec {
                    entry: sqe::nop(),
                    len: MemberLen::AsBuilt,
                    data: hold,
                    lane: p.member.lane.clone(),
                }
            })
            .collect();
        let weak: Weak<Pick> = Rc::downgrade(&pick);
        let plan = Rc::clone(&placed);
        let prep = Box::new(move |cqe: &Cqe, i: usize, entry: &mut squeue::Entry| {
            *entry = sqe::nop();
            // The leader's data holds the pick while its CQE is being processed.
            let Some(pick) = weak.upgrade() else { return };
            pick.record(cqe);
            let lease = pick.lease.borrow();
            if let Some(lease) = lease.as_ref() {
                let p = &plan[i];
                let len = sqe::len32(p.len_after(cqe.result));
                let ptr = lease.as_ptr().cast_mut().wrapping_add(p.off);
                *entry = p.member.finish(p.member.entry(ptr, len, lease.buf_index()));
            }
            // No buffer (end of stream): the member stays a NOP and reports 0 bytes.
        });
        let options = GroupOptions {
            zero_fill: None,
            prep: Some(prep),
        };
        // SAFETY: the leader's SQE carries no pointer (the kernel writes into a buffer of
        // the ring's group, whose memory the `BufRing` in `pick` keeps mapped). Each member
        // SQE the prep hook writes points into the buffer the leader's CQE names, within its
        // size (`place` bounded the ranges by `buf_size`), claimed into the `Pick` that
        // every member's `Hold` keeps alive until that member's final CQE; its fd is kept
        // open by the same `Hold`. Until the hook runs, members are NOPs.
        let op = unsafe { GroupOp::submit_with(leader, leader_hold, members, options) };
        State::Running {
            op,
            pick,
            placed,
            since,
        }
    }
}

impl Future for RecvGroupFuture {
    type Output = (GroupOutput, Option<Lease>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Refused(e) => {
                    let e = e.take().expect("refused once");
                    this.state = State::Done;
                    return Poll::Ready((GroupOutput::refused(e, this.members), None));
                }
                State::Planned(placed) => {
                    let placed = Rc::clone(placed);
                    this.state = this.submit(placed);
                }
                State::Running {
                    op,
                    pick,
                    placed,
                    since,
                } => {
                    let done = ready!(Pin::new(op).poll(cx));
                    if done.leader.result == -libc::ENOBUFS {
                        // The ring was empty: no data was consumed and no member ran.
                        let placed = Rc::clone(placed);
                        this.state = if this.ring.returned() != *since {
                            State::Planned(placed)
                        } else {
                            State::Starved(this.ring.wait_returned(*since), placed)
                        };
                        continue;
                    }
                    let lease = pick.lease.borrow_mut().take();
                    let out = GroupOutput::from_cqes(&done.leader, done.members);
                    this.state = State::Done;
                    return Poll::Ready((out, lease.filter(|l| !l.is_empty())));
                }
                State::Starved(wait, placed) => {
                    ready!(Pin::new(wait).poll(cx));
                    this.state = State::Planned(Rc::clone(placed));
                }
                State::Done => panic!("RecvGroupFuture polled after completion"),
            }
        }
    }
}

impl fmt::Debug for RecvGroupFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Refused(_) => "refused",
            State::Planned(_) => "not submitted",
            State::Running { .. } => "running",
            State::Starved(..) => "waiting for a buffer",
            State::Done => "done",
        };
        f.debug_struct("RecvGroupFuture")
            .field("sock", &self.sock)
            .field("ring", &self.ring)
            .field("state", &state)
            .finish()
    }
}
