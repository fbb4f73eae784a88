//! Issue 12, hole 1: dropping an op while its core's driver is borrowed further up the stack.
//!
//! [`Trigger`]s are the ways user code gets to run inside the runtime with the driver
//! borrowed (a `with_submitter` closure, a waker's `clone` or `drop` while the runtime stores
//! a waker), and [`Victim`]s are in-flight ops whose resources count their drops: an op, a
//! group and a multishot stream, each whose kernel-visible resources must stay alive until
//! the final CQE. Needs `mod common;` in the including test file.
#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::task::{Context, RawWaker, RawWakerVTable, Waker};

use io_uring::{opcode, types};
use ringleader::buf::{IoBuf, IoBufMut};
use ringleader::ops::{
    Completable, Cqe, GroupOp, MemberLen, MemberSpec, MultiCompletable, MultiOp, Op, Orphan,
};

use crate::common::{CountedBuf, counter, get, pipe, write_all};

/// A pipe read on `fd` into `buf`, at the fd's position.
pub fn read_pipe<B: IoBufMut>(fd: &Rc<OwnedFd>, buf: B) -> Op<ringleader::fd::Read<B>> {
    ringleader::fd::read(fd, buf, u64::MAX)
}

/// Where user code drops the victim while the driver is borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Inside the closure of the public `ringleader::ops::with_submitter`.
    WithSubmitter,
    /// Inside a waker's `clone`, called when the runtime stores the waker of a poll.
    WakerClone,
    /// Inside a waker's `drop`, called when the runtime replaces a stored waker.
    WakerDrop,
}

thread_local! {
    /// What the trap waker drops when it is cloned or dropped.
    static VICTIM: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    /// Victims the trap waker has dropped.
    static SPRUNG: Cell<usize> = const { Cell::new(0) };
}

/// Drop the armed victim, if any. Runs wherever the runtime clones or drops a trap waker.
fn spring() {
    let victim = VICTIM.with(|v| v.borrow_mut().take());
    if let Some(victim) = victim {
        SPRUNG.with(|s| s.set(s.get() + 1));
        drop(victim);
    }
}

static TRAP: RawWakerVTable =
    RawWakerVTable::new(trap_clone, trap_wake, trap_wake_by_ref, spring_ptr);

fn trap_clone(_: *const ()) -> RawWaker {
    spring();
    RawWaker::new(std::ptr::null(), &TRAP)
}
fn trap_wake(_: *const ()) {
    spring();
}
fn trap_wake_by_ref(_: *const ()) {}
fn spring_ptr(_: *const ()) {
    spring();
}

/// A waker whose clone and drop drop the armed victim (and wake nothing).
fn trap_waker() -> Waker {
    // SAFETY: every function of `TRAP` ignores the data pointer (null here) and is safe to
    // call from any thread at any time; `clone` returns a waker with the same vtable.
    unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &TRAP)) }
}

/// An in-flight pipe read that is polled with the trap waker: the runtime clones and drops
/// that waker while it registers it.
pub struct Bystander {
    op: Op<ringleader::fd::Read<Vec<u8>>>,
    feed: OwnedFd,
    _read_end: Rc<OwnedFd>,
}

impl Bystander {
    /// Create it; it reaches the kernel at the next submit.
    pub fn new() -> Bystander {
        let (r, w) = pipe();
        let r = Rc::new(r);
        Bystander {
            op: read_pipe(&r, Vec::with_capacity(16)),
            feed: w,
            _read_end: r,
        }
    }

    fn poll_with(&mut self, waker: &Waker) {
        let mut cx = Context::from_waker(waker);
        let poll = Pin::new(&mut self.op).poll(&mut cx);
        assert!(poll.is_pending(), "the bystander read has no data yet");
    }

    /// Complete it and check its result.
    pub async fn finish(self) {
        write_all(&self.feed, b"bystander");
        let (n, buf) = self.op.await;
        assert_eq!((n.unwrap(), &buf[..]), (9, &b"bystander"[..]));
    }
}

/// Drop `victim` through `trigger` (the bystander is polled for the waker triggers).
///
/// # Panics
/// If the runtime panics on the drop (the bug), or if the trigger did not drop the victim.
pub fn drop_while_borrowed(trigger: Trigger, victim: Box<dyn Any>, bystander: &mut Bystander) {
    let sprung = SPRUNG.with(Cell::get);
    match trigger {
        Trigger::WithSubmitter => ringleader::ops::with_submitter(move |_| drop(victim)),
        Trigger::WakerClone => {
            VICTIM.with(|v| *v.borrow_mut() = Some(victim));
            // The runtime stores a clone of this waker: the clone drops the victim.
            bystander.poll_with(&trap_waker());
        }
        Trigger::WakerDrop => {
            // The runtime stores a clone of the trap (nothing armed yet)...
            bystander.poll_with(&trap_waker());
            VICTIM.with(|v| *v.borrow_mut() = Some(victim));
            // ...and drops it when a poll with another waker replaces it.
            bystander.poll_with(Waker::noop());
        }
    }
    if trigger != Trigger::WithSubmitter {
        assert_eq!(
            SPRUNG.with(Cell::get),
            sprung + 1,
            "the runtime {} the trap waker while storing a waker, and so dropped the victim",
            if trigger == Trigger::WakerClone {
                "cloned"
            } else {
                "dropped"
            }
        );
    }
}

/// Resources of a heap-buffer op: the buffer, and the fd it names.
pub struct HeapIo {
    pub buf: CountedBuf,
    _fd: Rc<OwnedFd>,
}

impl Orphan for HeapIo {}

impl Completable for HeapIo {
    type Output = i32;
    fn complete(self, cqe: Cqe) -> i32 {
        cqe.result
    }
}

impl MultiCompletable for HeapIo {
    type Item = i32;
    fn next(&mut self, cqe: Cqe) -> i32 {
        cqe.result
    }
}

/// Which op a victim is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `ringleader::fd::read` of a pipe into a heap buffer.
    Read,
    /// A `GroupOp` whose leader reads a pipe into a heap buffer; one member would write
    /// another heap buffer to an output pipe once the leader succeeded.
    Group,
    /// A `MultiOp`: a multishot `POLL_ADD` on a pipe, with a counted resource.
    Multi,
}

/// An in-flight op to drop, and what tells whether its resources were released too early.
pub struct Victim {
    pub kind: Kind,
    /// Boxed so that a trap waker can hold and drop it.
    pub op: Option<Box<dyn Any>>,
    /// Drops of the resources the kernel may still use (the read buffer, the leader's
    /// buffer, the multishot op's data): none until the op's final CQE, then one.
    pub kernel_drops: Arc<AtomicUsize>,
    /// Drops of a group member's resources (never submitted: one, at any time).
    pub member_drops: Arc<AtomicUsize>,
    /// Writing here completes the read (or fires the multishot poll).
    pub feed: OwnedFd,
    /// A group member would write here; it must stay empty (a dropped group submits no
    /// member).
    pub quiet: Option<OwnedFd>,
    /// The bytes a completed read leaves in the buffer.
    pub payload: Vec<u8>,
    /// The pipe's read end, kept open by the test too (an op that names a bare fd number
    /// does not keep it open).
    _read_end: Rc<OwnedFd>,
}

impl Victim {
    /// A victim whose buffer holds `size` bytes, submitted (it reaches the kernel at the
    /// next submit). The kernel's read will bring `payload_byte`s.
    pub fn new(kind: Kind, size: usize, payload_byte: u8) -> Victim {
        let (r, w) = pipe();
        let r = Rc::new(r);
        let kernel_drops = counter();
        let member_drops = counter();
        let mut quiet = None;
        let buf = CountedBuf::new(size, &kernel_drops);
        let op: Box<dyn Any> = match kind {
            Kind::Read => Box::new(read_pipe(&r, buf)),
            Kind::Group => {
                let (out_r, out_w) = pipe();
                let out_w = Rc::new(out_w);
                quiet = Some(out_r);
                let mut lbuf = buf;
                let leader =
                    opcode::Read::new(types::Fd(r.as_raw_fd()), lbuf.stable_mut_ptr(), size as u32)
                        .offset(u64::MAX)
                        .build();
                let mut mbuf = CountedBuf::new(16, &member_drops);
                mbuf.bytes.extend_from_slice(b"member ran");
                let member = opcode::Write::new(
                    types::Fd(out_w.as_raw_fd()),
                    mbuf.stable_ptr(),
                    mbuf.bytes_init() as u32,
                )
                .offset(u64::MAX)
                .build();
                let member = MemberSpec {
                    entry: member,
                    len: MemberLen::AsBuilt,
                    data: HeapIo {
                        buf: mbuf,
                        _fd: out_w,
                    },
                    lane: None,
                };
                let leader_data = HeapIo {
                    buf: lbuf,
                    _fd: Rc::clone(&r),
                };
                // SAFETY: both SQEs point into the heap bytes of a `CountedBuf` (whose `Vec`
                // contents do not move with it) held by the op's data, for at most its
                // capacity, and name fds the data keeps open.
                Box::new(unsafe { GroupOp::submit(leader, leader_data, vec![member], None) })
            }
            Kind::Multi => {
                let entry = opcode::PollAdd::new(types::Fd(r.as_raw_fd()), libc::POLLIN as u32)
                    .multi(true)
                    .build();
                let data = HeapIo {
                    buf,
                    _fd: Rc::clone(&r),
                };
                // SAFETY: a poll carries no pointer; the data keeps the fd open.
                Box::new(unsafe { MultiOp::submit(entry, data) })
            }
        };
        Victim {
            kind,
            op: Some(op),
            kernel_drops,
            member_drops,
            feed: w,
            quiet,
            payload: vec![payload_byte; size.min(512)],
            _read_end: r,
        }
    }

    /// Right after the drop: nothing the kernel may use was released.
    pub fn assert_not_released_early(&self, trigger: Trigger) {
        assert_eq!(
            get(&self.kernel_drops),
            0,
            "{:?} dropped via {trigger:?}: its resources were released while the kernel \
             may still use them",
            self.kind
        );
    }

    /// Make the kernel finish with the op: a read gets its bytes (a multishot poll fires;
    /// its cancel ends it).
    pub fn feed(&self) {
        write_all(&self.feed, &self.payload);
    }

    /// Run the loop until the resources are released, and check they are released once.
    pub async fn assert_released_once(&self, trigger: Trigger) {
        let what = format!(
            "{:?} dropped via {trigger:?}: resources released",
            self.kind
        );
        crate::common::until(|| get(&self.kernel_drops) >= 1, &what).await;
        if self.kind == Kind::Group {
            crate::common::until(|| get(&self.member_drops) >= 1, &what).await;
        }
        for _ in 0..20 {
            ringleader::yield_now().await;
        }
        assert_eq!(get(&self.kernel_drops), 1, "{what} exactly once");
        if self.kind == Kind::Group {
            assert_eq!(
                get(&self.member_drops),
                1,
                "{what}: the member's exactly once"
            );
        }
        if let Some(quiet) = &self.quiet {
            assert_eq!(
                unread(quiet),
                0,
                "{what}: a member of the dropped group was submitted and wrote its output"
            );
        }
    }
}

/// Bytes waiting in pipe `fd` (its write end may be closed).
pub fn unread(fd: &OwnedFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int to the live local.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    assert_eq!(r, 0, "FIONREAD: {}", std::io::Error::last_os_error());
    n as usize
}
