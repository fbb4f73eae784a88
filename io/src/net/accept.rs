//! Accepting connections: single-shot `ACCEPT` (Linux 5.5) and the multishot stream behind
//! `incoming()` (Linux 5.19).
//!
//! Invariants:
//! - every accepted fd has exactly one owner from the moment its CQE is reaped: the caller
//!   (wrapped in an `OwnedFd` at once) or, when the op's future or stream was dropped first,
//!   [`Orphan::orphan_cqe`], which closes it. No accepted fd leaks, none is closed twice.
//! - [`AcceptStream`] never ends: when the kernel ends the multishot request (an error, CQ
//!   overflow, a cancel), the next poll re-arms a new one. A client that resets before or just
//!   after being accepted is an ordinary item (an fd whose reads report the reset) or an
//!   error item (`ECONNABORTED`); the stream keeps accepting either way.
//! - After an error that says the process is out of a resource (`EMFILE`, `ENFILE`,
//!   `ENOBUFS`, `ENOMEM`) the stream waits before it re-arms: [`PAUSE_MIN`], doubling per
//!   such error up to [`PAUSE_MAX`], back to the minimum after an accept succeeds. Re-arming
//!   at once would fail at once (the clients wait in the backlog, the fds are still taken),
//!   so a loop that logs the error and polls again would spin: measured 1.5 million errors a
//!   second. The pause costs a timer op per failed request, nothing on the normal path.

use std::future::Future;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::Stream;
use io_uring::{opcode, types};
use ringleader_executor::{CQE_F_MORE, Completable, Cqe, MultiCompletable, MultiOp, Op, Orphan};

use super::addr::SockAddr;
use super::socket::Socket;
use crate::time::{Sleep, sleep};

/// First pause before re-arming after a resource error (see the module docs).
pub const PAUSE_MIN: Duration = Duration::from_millis(10);
/// Longest such pause.
pub const PAUSE_MAX: Duration = Duration::from_secs(1);

/// Whether an accept error means the process is out of fds or memory (retrying at once
/// would fail the same way).
fn out_of_resources(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Take ownership of the fd a successful accept CQE carries.
fn fd_of(cqe: &Cqe) -> io::Result<OwnedFd> {
    let fd = cqe.into_result()?;
    // SAFETY: a non-negative accept result is a fresh fd installed for us alone; this is the
    // only place that wraps it (each CQE is converted once).
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Close the fd of an accept CQE that nobody will collect.
fn close_orphan(cqe: &Cqe) {
    // Dropping the `OwnedFd` closes it; an error result carries no fd.
    drop(fd_of(cqe));
}

/// Resources of a single-shot accept: the listener and the peer address the kernel writes.
#[derive(Debug)]
pub(crate) struct Accept {
    _sock: Rc<Socket>,
    addr: Box<SockAddr>,
}

impl Orphan for Accept {
    fn orphan_cqe(&mut self, cqe: &Cqe) {
        close_orphan(cqe);
    }
}

impl Completable for Accept {
    type Output = io::Result<(OwnedFd, SockAddr)>;
    fn complete(self, cqe: Cqe) -> Self::Output {
        Ok((fd_of(&cqe)?, *self.addr))
    }
}

/// `IORING_OP_ACCEPT` with `SOCK_CLOEXEC`, recording the peer address.
pub(crate) fn accept(sock: &Rc<Socket>) -> Op<Accept> {
    let mut addr = Box::new(SockAddr::empty());
    let ptr = addr.as_mut_ptr();
    let len: *mut libc::socklen_t = addr.len_mut();
    let entry = opcode::Accept::new(types::Fd(sock.raw()), ptr, len)
        .flags(libc::SOCK_CLOEXEC)
        .build();
    let data = Accept {
        _sock: Rc::clone(sock),
        addr,
    };
    // SAFETY: both pointers point into the boxed address (stable heap memory) owned by the
    // op's data until the final CQE; the kernel writes at most `*len` bytes of address.
    unsafe { Op::submit(entry, data) }
}

/// One CQE of a multishot accept.
#[derive(Debug)]
pub(crate) struct Accepted {
    result: io::Result<OwnedFd>,
    /// The kernel keeps the request armed (`IORING_CQE_F_MORE`).
    more: bool,
}

/// Resources of a multishot accept: the listener.
#[derive(Debug)]
pub(crate) struct AcceptMulti {
    _sock: Rc<Socket>,
}

impl Orphan for AcceptMulti {
    fn orphan_cqe(&mut self, cqe: &Cqe) {
        close_orphan(cqe);
    }
}

impl MultiCompletable for AcceptMulti {
    type Item = Accepted;
    fn next(&mut self, cqe: Cqe) -> Accepted {
        Accepted {
            result: fd_of(&cqe),
            more: cqe.flags & CQE_F_MORE != 0,
        }
    }
}

fn accept_multi(sock: &Rc<Socket>) -> MultiOp<AcceptMulti> {
    let entry = opcode::AcceptMulti::new(types::Fd(sock.raw()))
        .flags(libc::SOCK_CLOEXEC)
        .build();
    let data = AcceptMulti {
        _sock: Rc::clone(sock),
    };
    // SAFETY: a multishot accept carries no pointer (no address out-buffer); the listener fd
    // is kept open by the data.
    unsafe { MultiOp::submit(entry, data) }
}

/// A never-ending stream of accepted fds on one listener, re-armed as needed.
#[derive(Debug)]
pub(crate) struct AcceptStream {
    sock: Rc<Socket>,
    op: Option<MultiOp<AcceptMulti>>,
    /// Waiting before re-arming, after a resource error.
    pause: Option<Sleep>,
    /// The next such pause.
    next_pause: Duration,
}

impl AcceptStream {
    /// Arms the multishot accept right away, so connections are accepted before the first poll.
    pub(crate) fn new(sock: &Rc<Socket>) -> Self {
        AcceptStream {
            sock: Rc::clone(sock),
            op: Some(accept_multi(sock)),
            pause: None,
            next_pause: PAUSE_MIN,
        }
    }

    pub(crate) fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<OwnedFd>> {
        loop {
            if let Some(pause) = &mut self.pause {
                ready!(Pin::new(pause).poll(cx));
                self.pause = None;
            }
            let sock = &self.sock;
            let op = self.op.get_or_insert_with(|| accept_multi(sock));
            match ready!(Pin::new(op).poll_next(cx)) {
                Some(Accepted { result, more }) => {
                    match &result {
                        Ok(_) => self.next_pause = PAUSE_MIN,
                        Err(e) if !more && out_of_resources(e) => {
                            // Re-armed after a pause (see the module docs).
                            self.pause = Some(sleep(self.next_pause));
                            self.next_pause = (self.next_pause * 2).min(PAUSE_MAX);
                        }
                        Err(_) => {}
                    }
                    if !more {
                        // The request ended with this CQE: dropping the finished op releases
                        // its slot without a cancel; the next poll re-arms.
                        self.op = None;
                    }
                    return Poll::Ready(result);
                }
                // Ended without an item (already reported): re-arm and poll the new request,
                // which registers the waker.
                None => self.op = None,
            }
        }
    }
}

impl Stream for AcceptStream {
    type Item = io::Result<OwnedFd>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_accept(cx).map(Some)
    }
}
