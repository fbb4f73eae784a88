//! [`Hold`]: the op data of every leader and member op — what keeps the memory and the fd an
//! SQE names alive until that op's final CQE.
//!
//! Invariant: an SQE built in this module tree points only into
//! - a lease slot, and its op's `Hold` carries a [`LeaseRef`] on that slot (the lease count,
//!   docs/design.md §3: the slot is reused only after every op holding a reference has reaped its
//!   final CQE, `SEND_ZC` notification included), a kernel writer if the SQE writes into
//!   the slot, a kernel reader if it reads it (the access rule: safe code cannot reach the
//!   bytes in a conflicting way while that reference lives); or
//! - a buffer-ring buffer the leader's CQE chose, and its `Hold` carries the shared
//!   [`Pick`] that owns that buffer until the last holder is gone;
//! - a vectored member's iovec array (a `Vec`'s heap memory, which does not move with it), which
//!   its `Hold` owns and which points into the lease slot as above;
//! - a prefixed send's `msghdr` (a `Vec` it owns too) pointing at its iovecs: the prefix
//!   (an `Rc<[u8]>` the `Hold` keeps) and a range of the lease slot;
//!
//! and names only fds whose owners the `Hold` references ([`FdHold`], [`PipeRef`]). The
//! executor keeps an op's data until its final CQE whatever happens to the future (dropped:
//! parked in the slot; forgotten: leaked), so none of these is released early.

use std::io;
use std::rc::Rc;

use ringleader_buf::{LeaseRef, PipeRef};
use ringleader_executor::{Completable, Cqe, Orphan};

use super::fd::FdHold;
use super::ring::Pick;

/// Resources of one group op (see the module docs).
#[derive(Clone, Default)]
pub(crate) struct Hold {
    // The first four are never read: holding them is their job.
    _lease: Option<LeaseRef>,
    _fd: Option<FdHold>,
    _pipe: Option<PipeRef>,
    /// A vectored member's iovecs (the SQE points at them; see `vectored.rs`).
    _iov: Option<Vec<libc::iovec>>,
    /// A prefixed send's message header (the SQE points at it) and prefix bytes.
    _msg: Option<Vec<libc::msghdr>>,
    _prefix: Option<Rc<[u8]>>,
    /// Counts on the slots of a send of several leases (`plain::sendv`).
    _more: Vec<LeaseRef>,
    pick: Option<Rc<Pick>>,
}

impl Hold {
    pub(crate) fn new(lease: Option<LeaseRef>, fd: Option<FdHold>) -> Hold {
        Hold {
            _lease: lease,
            _fd: fd,
            ..Hold::default()
        }
    }

    /// Also keep a pipe lease's fds open.
    pub(crate) fn with_pipe(mut self, pipe: PipeRef) -> Hold {
        self._pipe = Some(pipe);
        self
    }

    /// Also own the iovecs a vectored SQE points at.
    pub(crate) fn with_iov(mut self, iov: Vec<libc::iovec>) -> Hold {
        self._iov = Some(iov);
        self
    }

    /// Also own a `SENDMSG`'s message header.
    pub(crate) fn with_msg(mut self, msg: Vec<libc::msghdr>) -> Hold {
        self._msg = Some(msg);
        self
    }

    /// Also own a prefixed send's prefix bytes.
    pub(crate) fn with_prefix(mut self, prefix: Rc<[u8]>) -> Hold {
        self._prefix = Some(prefix);
        self
    }

    /// Also keep counts on more lease slots (a vectored send of several leases).
    pub(crate) fn with_leases(mut self, leases: Vec<LeaseRef>) -> Hold {
        self._more = leases;
        self
    }

    /// Also share the buffer a buffer-select leader picks.
    pub(crate) fn with_pick(mut self, pick: Rc<Pick>) -> Hold {
        self.pick = Some(pick);
        self
    }
}

impl Orphan for Hold {
    fn orphan_cqe(&mut self, cqe: &Cqe) {
        // A buffer-select leader whose group is gone: take the chosen buffer into the pick, so
        // it returns to its ring when the last holder drops (outside the driver).
        if let Some(pick) = &self.pick {
            pick.record(cqe);
        }
    }
}

impl Completable for Hold {
    type Output = Cqe;
    fn complete(self, cqe: Cqe) -> Cqe {
        if let Some(pick) = &self.pick {
            pick.record(&cqe);
        }
        cqe
    }
}

/// A CQE as an op result: a byte count, or the kernel's errno.
pub(crate) fn result(cqe: &Cqe) -> io::Result<usize> {
    cqe.into_result().map(|n| n as usize)
}

/// `ECANCELED`, the result of an op that never ran.
pub(crate) fn canceled() -> io::Error {
    io::Error::from_raw_os_error(libc::ECANCELED)
}

/// A CQE with `result` (for ops the runtime decided never to submit).
pub(crate) fn synthetic(result: i32) -> Cqe {
    Cqe {
        result,
        flags: 0,
        notif: None,
    }
}
