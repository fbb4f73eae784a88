//! [`Leader`] and [`Member`]: what a group's ops do, before they are tied to a lease.
//!
//! A description holds the fd (kept open, see `fd.rs`) and where in the lease the op works;
//! the SQE is built only when the group knows the lease's address (for a buffer-ring lease,
//! when the leader's CQE names the buffer the kernel chose).

use std::fmt;
use std::ops::{Bound, Range, RangeBounds};
use std::rc::Rc;

use io_uring::squeue::Entry;
use ringleader_executor::Lane;

use super::fd::{FdHold, IoFd};
use super::sqe;

/// A group's leader: the op whose result decides whether, and with what length, the members
/// run.
#[derive(Clone)]
pub struct Leader {
    pub(crate) kind: LeaderKind,
    force_async: bool,
}

#[derive(Clone)]
pub(crate) enum LeaderKind {
    /// A bare lease: no I/O; members work on what the lease holds, or fill it.
    Nop,
    /// Read into the lease from its start.
    Read { fd: FdHold, pos: u64 },
    /// Receive into the lease from its start.
    Recv { fd: FdHold },
}

impl Leader {
    /// No I/O (`IORING_OP_NOP`): the group of a bare lease. Members that read the lease see
    /// its data (`..len()`); members that write into it fill their ranges (striped reads).
    pub fn nop() -> Leader {
        Leader {
            kind: LeaderKind::Nop,
            force_async: false,
        }
    }

    /// Fill the lease from `fd` at `pos` (`u64::MAX`: the fd's position, for pipes and
    /// sockets): `IORING_OP_READ_FIXED` for a registered lease, else `IORING_OP_READ`. A
    /// short read gives members exactly the bytes read (G6).
    pub fn read_fixed(fd: &impl IoFd, pos: u64) -> Leader {
        Leader {
            kind: LeaderKind::Read {
                fd: fd.fd_hold(),
                pos,
            },
            force_async: false,
        }
    }

    /// Fill the lease from a connected socket (`IORING_OP_RECV`, Linux 5.6).
    pub fn recv(sock: &impl IoFd) -> Leader {
        Leader {
            kind: LeaderKind::Recv { fd: sock.fd_hold() },
            force_async: false,
        }
    }

    /// Hand the leader to io_uring's worker threads at once (`IOSQE_ASYNC`), as
    /// [`Member::force_async`] does for members: for reads the kernel punts anyway. (For
    /// the fan-out bench's tmpfs and ext4 reads it made no measurable difference; the
    /// members' writes are the work that queued behind one worker.)
    pub fn force_async(mut self) -> Leader {
        self.force_async = true;
        self
    }

    /// Whether the leader writes into the lease (its result is the data's length).
    pub(crate) fn produces(&self) -> bool {
        !matches!(self.kind, LeaderKind::Nop)
    }

    pub(crate) fn fd(&self) -> Option<FdHold> {
        match &self.kind {
            LeaderKind::Nop => None,
            LeaderKind::Read { fd, .. } | LeaderKind::Recv { fd } => Some(fd.clone()),
        }
    }

    /// The SQE, filling `len` bytes at `base`.
    pub(crate) fn entry(&self, base: *mut u8, len: u32, index: Option<u16>) -> Entry {
        let e = match &self.kind {
            LeaderKind::Nop => sqe::nop(),
            LeaderKind::Read { fd, pos } => sqe::read(fd.raw, base, len, index, *pos),
            LeaderKind::Recv { fd } => sqe::recv(fd.raw, base, len),
        };
        if self.force_async {
            e.flags(io_uring::squeue::Flags::ASYNC)
        } else {
            e
        }
    }
}

impl fmt::Debug for Leader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            LeaderKind::Nop => f.write_str("Leader::nop"),
            LeaderKind::Read { fd, pos } => write!(f, "Leader::read_fixed(fd {}, {pos})", fd.raw),
            LeaderKind::Recv { fd } => write!(f, "Leader::recv(fd {})", fd.raw),
        }
    }
}

/// A group member: one op on the lease, run after the leader succeeds, concurrently with the
/// other members.
///
/// Members that *read* the lease (`write_fixed`, `writev_fixed`, `write`, `send`,
/// `send_zc`) cover the leader's output by default, and may share bytes. Members that *write into* it
/// (`read_fixed`, `recv`) cover the whole capacity by default and must have ranges disjoint
/// from every other member's (G7, checked when the group is built).
#[derive(Clone)]
pub struct Member {
    pub(crate) kind: MemberKind,
    pub(crate) start: usize,
    pub(crate) end: Option<usize>,
    pub(crate) lane: Option<Lane>,
    pub(crate) force_async: bool,
}

#[derive(Clone)]
pub(crate) enum MemberKind {
    WriteFixed {
        fd: FdHold,
        pos: u64,
    },
    Write {
        fd: FdHold,
        pos: u64,
    },
    Send {
        fd: FdHold,
    },
    SendZc {
        fd: FdHold,
    },
    /// `prefix`, then the member's lease range, in one `SENDMSG` (see `layout.rs`).
    SendPrefixed {
        fd: FdHold,
        prefix: Rc<[u8]>,
    },
    ReadFixed {
        fd: FdHold,
        pos: u64,
    },
    Recv {
        fd: FdHold,
    },
    /// Lease ranges `(start, end)`, written in order (see `vectored.rs`).
    WritevFixed {
        fd: FdHold,
        pos: u64,
        ranges: Rc<[(usize, usize)]>,
    },
}

impl Member {
    fn new(kind: MemberKind) -> Member {
        Member {
            kind,
            start: 0,
            end: None,
            lane: None,
            force_async: false,
        }
    }

    /// Write the lease to `fd` at `pos` (`u64::MAX`: the fd's position):
    /// `IORING_OP_WRITE_FIXED` from a registered lease, else `IORING_OP_WRITE`.
    pub fn write_fixed(fd: &impl IoFd, pos: u64) -> Member {
        Member::new(MemberKind::WriteFixed {
            fd: fd.fd_hold(),
            pos,
        })
    }

    /// Write the lease to `fd` at `pos` with a plain `IORING_OP_WRITE` from the lease's
    /// address (for files that refuse fixed buffers).
    pub fn write(fd: &impl IoFd, pos: u64) -> Member {
        Member::new(MemberKind::Write {
            fd: fd.fd_hold(),
            pos,
        })
    }

    /// Send the lease on a connected socket (`IORING_OP_SEND`).
    pub fn send(sock: &impl IoFd) -> Member {
        Member::new(MemberKind::Send { fd: sock.fd_hold() })
    }

    /// Zero-copy send of the lease (`IORING_OP_SEND_ZC`, Linux 6.0, with
    /// `IORING_RECVSEND_FIXED_BUF` from a registered lease). The member completes at the
    /// kernel's notification, so the group, and the lease slot, are held until then (G3).
    pub fn send_zc(sock: &impl IoFd) -> Member {
        Member::new(MemberKind::SendZc { fd: sock.fd_hold() })
    }

    /// Send `prefix` (a protocol header, say), then the lease, in one `IORING_OP_SENDMSG`
    /// (Linux 5.3) of two iovecs: the bytes leave back to back, with no copy of the lease.
    /// The member owns its prefix; its lease range follows the leader as a send's does.
    /// Not in a [`RecvGroup`](super::RecvGroup) nor in linked mode.
    pub fn send_prefixed(sock: &impl IoFd, prefix: impl Into<Rc<[u8]>>) -> Member {
        Member::new(MemberKind::SendPrefixed {
            fd: sock.fd_hold(),
            prefix: prefix.into(),
        })
    }

    /// Run this member in `lane`: it reaches the kernel once the leader completed **and**
    /// the lane's earlier ops finished, never interleaved with them (see [`Lane`]). It takes
    /// its place in the lane when the leader's CQE is reaped, so it follows ops submitted
    /// into the lane before that moment, not before the group was built. For the
    /// sends of many groups (and other tasks) on one stream socket. Sends in a lane use
    /// `MSG_WAITALL`; one that fails or sends short fails the lane. Not in linked mode, and
    /// only for members that read the lease: a group with a `read_fixed` or `recv` member in
    /// a lane is refused (`InvalidInput`), nothing submitted.
    pub fn in_lane(mut self, lane: &Lane) -> Member {
        self.lane = Some(lane.clone());
        self
    }

    /// Hand the member to io_uring's worker threads at once (`IOSQE_ASYNC`) instead of
    /// trying it inline first. For ops the kernel punts anyway (buffered writes on ext4 and
    /// tmpfs, splice): io-wq starts another worker for such forced work even while one is
    /// running, so a group's members run in parallel on several CPUs; work that is merely
    /// punted waits for the running worker unless it blocks. Measured in `bench fanout`.
    pub fn force_async(mut self) -> Member {
        self.force_async = true;
        self
    }

    /// The member's final SQE flags applied to `entry`.
    pub(crate) fn finish(&self, entry: Entry) -> Entry {
        if self.force_async {
            entry.flags(io_uring::squeue::Flags::ASYNC)
        } else {
            entry
        }
    }

    /// Write several ranges of the lease, in order, to `fd` at `pos` in one op
    /// (`IORING_OP_WRITEV_FIXED`, Linux 6.15, from a registered lease; `IORING_OP_WRITEV`
    /// otherwise). Each range is cut to the bytes the leader produced (G6). The member's
    /// extent, for the overlap rule, spans its first start to its last end; [`Member::at`]
    /// does not apply to it.
    pub fn writev_fixed(
        fd: &impl IoFd,
        pos: u64,
        ranges: impl IntoIterator<Item = Range<usize>>,
    ) -> Member {
        Member::new(MemberKind::WritevFixed {
            fd: fd.fd_hold(),
            pos,
            ranges: ranges.into_iter().map(|r| (r.start, r.end)).collect(),
        })
    }

    /// Read from `fd` at `pos` into the member's range of the lease (`IORING_OP_READ_FIXED`
    /// or `IORING_OP_READ`): a striped read. Give it a range with [`Member::at`].
    pub fn read_fixed(fd: &impl IoFd, pos: u64) -> Member {
        Member::new(MemberKind::ReadFixed {
            fd: fd.fd_hold(),
            pos,
        })
    }

    /// Receive from a socket into the member's range of the lease (`IORING_OP_RECV`).
    pub fn recv(sock: &impl IoFd) -> Member {
        Member::new(MemberKind::Recv { fd: sock.fd_hold() })
    }

    /// Work on lease bytes `range` only (offsets from the lease's start). An open end means
    /// the default end: the leader's output for members that read the lease, the capacity
    /// for members that write into it.
    pub fn at(mut self, range: impl RangeBounds<usize>) -> Member {
        self.start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        self.end = match range.end_bound() {
            Bound::Included(&e) => Some(e.saturating_add(1)),
            Bound::Excluded(&e) => Some(e),
            Bound::Unbounded => None,
        };
        self
    }

    /// Whether the member writes into the lease (and so needs a range of its own).
    pub(crate) fn writes_lease(&self) -> bool {
        matches!(
            self.kind,
            MemberKind::ReadFixed { .. } | MemberKind::Recv { .. }
        )
    }

    pub(crate) fn fd(&self) -> FdHold {
        match &self.kind {
            MemberKind::WriteFixed { fd, .. }
            | MemberKind::Write { fd, .. }
            | MemberKind::Send { fd }
            | MemberKind::SendZc { fd }
            | MemberKind::SendPrefixed { fd, .. }
            | MemberKind::ReadFixed { fd, .. }
            | MemberKind::Recv { fd }
            | MemberKind::WritevFixed { fd, .. } => fd.clone(),
        }
    }

    /// The fd and file position of a vectored member.
    pub(crate) fn vectored_target(&self) -> (std::os::fd::RawFd, u64) {
        match &self.kind {
            MemberKind::WritevFixed { fd, pos, .. } => (fd.raw, *pos),
            _ => unreachable!("not a vectored member"),
        }
    }

    /// The ranges of a vectored member.
    pub(crate) fn ranges(&self) -> Option<&Rc<[(usize, usize)]>> {
        match &self.kind {
            MemberKind::WritevFixed { ranges, .. } => Some(ranges),
            _ => None,
        }
    }

    /// The SQE, on `len` lease bytes at `ptr` (fixed-buffer `index` if registered). A
    /// vectored member's SQE points at its iovecs instead (`vectored.rs`).
    pub(crate) fn entry(&self, ptr: *mut u8, len: u32, index: Option<u16>) -> Entry {
        match &self.kind {
            MemberKind::WriteFixed { fd, pos } => sqe::write(fd.raw, ptr, len, index, *pos),
            MemberKind::Write { fd, pos } => sqe::write(fd.raw, ptr, len, None, *pos),
            MemberKind::Send { fd } => sqe::send(fd.raw, ptr, len, self.send_flags()),
            MemberKind::SendZc { fd } => sqe::send_zc(fd.raw, ptr, len, index, self.send_flags()),
            MemberKind::ReadFixed { fd, pos } => sqe::read(fd.raw, ptr, len, index, *pos),
            MemberKind::Recv { fd } => sqe::recv(fd.raw, ptr, len),
            MemberKind::WritevFixed { .. } | MemberKind::SendPrefixed { .. } => {
                unreachable!("vectored members have iovecs")
            }
        }
    }

    /// Extra `MSG_*` flags of a send: `MSG_WAITALL` in a lane (whole or failed).
    pub(crate) fn send_flags(&self) -> i32 {
        if self.lane.is_some() {
            libc::MSG_WAITALL
        } else {
            0
        }
    }

    /// A prefixed send's socket and prefix.
    pub(crate) fn prefixed(&self) -> Option<(std::os::fd::RawFd, &Rc<[u8]>)> {
        match &self.kind {
            MemberKind::SendPrefixed { fd, prefix } => Some((fd.raw, prefix)),
            _ => None,
        }
    }

    fn name(&self) -> &'static str {
        match self.kind {
            MemberKind::WriteFixed { .. } => "write_fixed",
            MemberKind::Write { .. } => "write",
            MemberKind::Send { .. } => "send",
            MemberKind::SendZc { .. } => "send_zc",
            MemberKind::SendPrefixed { .. } => "send_prefixed",
            MemberKind::ReadFixed { .. } => "read_fixed",
            MemberKind::Recv { .. } => "recv",
            MemberKind::WritevFixed { .. } => "writev_fixed",
        }
    }
}

impl fmt::Debug for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Member::{}(fd {})", self.name(), self.fd().raw)?;
        match self.end {
            Some(e) => write!(f, ".at({}..{e})", self.start),
            None if self.start > 0 => write!(f, ".at({}..)", self.start),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `flags` byte of an SQE.
    fn sqe_flags(e: &Entry) -> u8 {
        // SAFETY: `Entry` is `#[repr(C)]` around the 64-byte `io_uring_sqe`, whose `flags`
        // is the `u8` at byte 1.
        unsafe { *(e as *const Entry).cast::<u8>().add(1) }
    }

    #[test]
    fn force_async_sets_iosqe_async_and_only_then() {
        const IOSQE_ASYNC: u8 = 1 << 4;
        let fd: Rc<std::os::fd::OwnedFd> =
            Rc::new(std::fs::File::open("/dev/null").unwrap().into());
        let plain = Member::write(&fd, 0);
        let forced = Member::write(&fd, 0).force_async();
        let e = plain.finish(plain.entry(std::ptr::null_mut(), 1, None));
        assert_eq!(sqe_flags(&e) & IOSQE_ASYNC, 0);
        let e = forced.finish(forced.entry(std::ptr::null_mut(), 1, None));
        assert_eq!(sqe_flags(&e) & IOSQE_ASYNC, IOSQE_ASYNC);
        let leader = Leader::read_fixed(&fd, 0);
        let e = leader.entry(std::ptr::null_mut(), 1, None);
        assert_eq!(sqe_flags(&e) & IOSQE_ASYNC, 0);
        let e = leader.force_async().entry(std::ptr::null_mut(), 1, None);
        assert_eq!(sqe_flags(&e) & IOSQE_ASYNC, IOSQE_ASYNC);
    }
}
