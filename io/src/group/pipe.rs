//! [`PipeGroup`]: a group on a [`PipeLease`] — data that stays in kernel pages, never in
//! user memory. The leader `SPLICE`s data into the pipe; members `TEE` it into other pipes
//! without consuming it; an optional final `SPLICE` drains it to one more destination.
//!
//! # Tee before splice
//!
//! `TEE` copies what is in the pipe; `SPLICE` out of it consumes it. Were the draining splice
//! an ordinary member, running concurrently with the tees (G2), it could empty the pipe
//! before a tee ran, and that tee would then block on an empty pipe whose write end the lease
//! keeps open. So the drain is not a member: the group submits it when every tee has
//! completed, with the length the leader produced. That costs one task round trip after the
//! tees. The alternatives are worse: `IOSQE_IO_DRAIN` would also wait for every unrelated op
//! in flight on the ring (a pending recv could hold it forever), and linking the tees in front
//! of the splice would serialise the tees. Without a drain the data stays in the pipe for the
//! caller (another group, or a splice of its own).
//!
//! A dropped pipe group may leave some or all of the leader's data in the pipe.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use ringleader_buf::PipeLease;
use ringleader_executor::{Cqe, GroupOp, MemberLen, MemberSpec, Op};

use super::fd::{FdHold, IoFd};
use super::hold::{Hold, synthetic};
use super::output::{GroupOutput, invalid};
use super::sqe;

/// A group on a borrowed [`PipeLease`]; `.await` it.
///
/// ```
/// use std::rc::Rc;
/// use ringleader::buf::PipeLease;
/// use ringleader::{fd, group::PipeGroup, pipe::pipe};
///
/// ringleader::block_on(async {
///     let mut lease = PipeLease::new(1 << 16).unwrap();
///     let (src_r, src_w) = pipe().await.unwrap();
///     let (tee_r, tee_w) = pipe().await.unwrap();
///     let (out_r, out_w) = pipe().await.unwrap();
///     fd::write(&Rc::new(src_w), b"pages".to_vec(), u64::MAX).await.0.unwrap();
///     let out = PipeGroup::new(&mut lease)
///         .splice_from(&Rc::new(src_r), None, 1 << 16)
///         .tee_to(&Rc::new(tee_w))
///         .drain_to(&Rc::new(out_w), None)
///         .await;
///     assert_eq!(out.leader.unwrap(), 5);
///     assert_eq!(out.members.iter().map(|r| *r.as_ref().unwrap()).collect::<Vec<_>>(), [5, 5]);
///     assert_eq!(lease.len().unwrap(), 0, "drained");
///     for r in [tee_r, out_r] {
///         let (_, buf) = fd::read(&Rc::new(r), Vec::with_capacity(8), u64::MAX).await;
///         assert_eq!(buf, b"pages");
///     }
/// });
/// ```
#[must_use = "a group does nothing unless you `.await` it"]
pub struct PipeGroup<'l> {
    pipe: &'l mut PipeLease,
    source: Option<(FdHold, Option<u64>, usize)>,
    tees: Vec<FdHold>,
    drain: Option<(FdHold, Option<u64>)>,
}

impl<'l> PipeGroup<'l> {
    /// A group on `pipe`. Without [`splice_from`](Self::splice_from) the members work on what
    /// the pipe already holds.
    pub fn new(pipe: &'l mut PipeLease) -> PipeGroup<'l> {
        PipeGroup {
            pipe,
            source: None,
            tees: Vec::new(),
            drain: None,
        }
    }

    /// The leader: move up to `len` bytes from `fd` (at `off`, or its position with `None`)
    /// into the pipe (`IORING_OP_SPLICE`, Linux 5.7).
    pub fn splice_from(mut self, fd: &impl IoFd, off: Option<u64>, len: usize) -> Self {
        self.source = Some((fd.fd_hold(), off, len));
        self
    }

    /// A member: duplicate the leader's bytes into the pipe `fd` (its write end) without
    /// consuming them (`IORING_OP_TEE`, Linux 5.8).
    pub fn tee_to(mut self, fd: &impl IoFd) -> Self {
        self.tees.push(fd.fd_hold());
        self
    }

    /// After every tee: move the leader's bytes out of the pipe to `fd` (at `off`, or its
    /// position with `None`), emptying the pipe. Reported as the last member.
    pub fn drain_to(mut self, fd: &impl IoFd, off: Option<u64>) -> Self {
        self.drain = Some((fd.fd_hold(), off));
        self
    }
}

impl fmt::Debug for PipeGroup<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipeGroup")
            .field("pipe", &self.pipe)
            .field("source", &self.source.as_ref().map(|s| s.0.raw))
            .field("tees", &self.tees.len())
            .field("drain", &self.drain.as_ref().map(|d| d.0.raw))
            .finish()
    }
}

enum State {
    Refused(Option<io::Error>),
    Planned,
    Tees(GroupOp<Hold, Hold>),
    Drain(Cqe, Vec<Cqe>, Op<Hold>),
    Done,
}

/// The future of a [`PipeGroup`]: resolves after the last tee and the drain.
#[must_use = "futures do nothing unless you `.await` or poll them; dropping cancels the group"]
pub struct PipeGroupFuture<'l> {
    group: PipeGroup<'l>,
    state: State,
}

impl<'l> IntoFuture for PipeGroup<'l> {
    type Output = GroupOutput;
    type IntoFuture = PipeGroupFuture<'l>;

    fn into_future(self) -> PipeGroupFuture<'l> {
        let state = match &self.source {
            Some((_, _, len)) if *len > u32::MAX as usize => State::Refused(Some(invalid(
                format!("a splice of {len} bytes; one op moves at most 4 GiB"),
            ))),
            _ => State::Planned,
        };
        PipeGroupFuture { group: self, state }
    }
}

impl PipeGroupFuture<'_> {
    fn members(&self) -> usize {
        self.group.tees.len() + usize::from(self.group.drain.is_some())
    }

    fn submit(&mut self) -> io::Result<GroupOp<Hold, Hold>> {
        let g = &self.group;
        let pipe_r = g.pipe.read_fd().as_raw_fd();
        let pipe_w = g.pipe.write_fd().as_raw_fd();
        let keep = g.pipe.keep_alive();
        let (leader, len, fd) = match &g.source {
            Some((src, off, len)) => {
                let len = sqe::len32(*len);
                (
                    sqe::splice(src.raw, *off, pipe_w, None, len),
                    len,
                    Some(src.clone()),
                )
            }
            // No leader I/O: the members take what the pipe holds now.
            None => (sqe::nop(), sqe::len32(g.pipe.len()?), None),
        };
        let leader_hold = Hold::new(None, fd).with_pipe(keep.clone());
        let members = g
            .tees
            .iter()
            .map(|dst| {
                let hold = Hold::new(None, Some(dst.clone())).with_pipe(keep.clone());
                MemberSpec {
                    entry: sqe::tee(pipe_r, dst.raw, len),
                    len: if g.source.is_some() {
                        MemberLen::FromLeader {
                            offset: 0,
                            max: len,
                        }
                    } else {
                        MemberLen::AsBuilt
                    },
                    data: hold,
                    lane: None,
                }
            })
            .collect();
        // SAFETY: splice, tee and nop carry no pointer into user memory; every fd they name
        // is kept open by its op's `Hold` (the pipe's by a `PipeRef`) until the final CQE.
        Ok(unsafe { GroupOp::submit(leader, leader_hold, members, None) })
    }

    /// The leader produced `n` bytes (or, without a leader, the pipe held them).
    fn produced(&self, leader: &Cqe) -> usize {
        match &self.group.source {
            Some(_) => leader.result.max(0) as usize,
            None => self.group.pipe.len().unwrap_or(0),
        }
    }

    fn drain(&self, n: usize) -> Option<Op<Hold>> {
        let (dst, off) = self.group.drain.as_ref()?;
        let pipe_r = self.group.pipe.read_fd().as_raw_fd();
        let hold = Hold::new(None, Some(dst.clone())).with_pipe(self.group.pipe.keep_alive());
        let entry = sqe::splice(pipe_r, None, dst.raw, *off, sqe::len32(n));
        // SAFETY: a splice carries no pointer; its fds are kept open by `hold`.
        Some(unsafe { Op::submit(entry, hold) })
    }
}

impl Future for PipeGroupFuture<'_> {
    type Output = GroupOutput;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<GroupOutput> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Refused(e) => {
                    let e = e.take().expect("refused once");
                    let n = this.members();
                    this.state = State::Done;
                    return Poll::Ready(GroupOutput::refused(e, n));
                }
                State::Planned => match this.submit() {
                    Ok(op) => this.state = State::Tees(op),
                    Err(e) => this.state = State::Refused(Some(e)),
                },
                State::Tees(op) => {
                    let done = ready!(Pin::new(op).poll(cx));
                    let n = this.produced(&done.leader);
                    let mut members = done.members;
                    let drain = match (done.leader.result >= 0, n > 0) {
                        (true, true) => this.drain(n),
                        (true, false) => {
                            // Nothing to move: the drain trivially moved 0 bytes.
                            members.extend(this.group.drain.as_ref().map(|_| synthetic(0)));
                            None
                        }
                        (false, _) => {
                            let c = synthetic(-libc::ECANCELED);
                            members.extend(this.group.drain.as_ref().map(|_| c));
                            None
                        }
                    };
                    match drain {
                        Some(op) => this.state = State::Drain(done.leader, members, op),
                        None => {
                            this.state = State::Done;
                            return Poll::Ready(GroupOutput::from_cqes(&done.leader, members));
                        }
                    }
                }
                State::Drain(leader, members, op) => {
                    let c = ready!(Pin::new(op).poll(cx));
                    members.push(c);
                    let out = GroupOutput::from_cqes(leader, std::mem::take(members));
                    this.state = State::Done;
                    return Poll::Ready(out);
                }
                State::Done => panic!("PipeGroupFuture polled after completion"),
            }
        }
    }
}

impl fmt::Debug for PipeGroupFuture<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Refused(_) => "refused",
            State::Planned => "not submitted",
            State::Tees(_) => "leader and tees",
            State::Drain(..) => "draining",
            State::Done => "done",
        };
        f.debug_struct("PipeGroupFuture")
            .field("group", &self.group)
            .field("state", &state)
            .finish()
    }
}
