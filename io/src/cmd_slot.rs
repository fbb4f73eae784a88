//! Command slots: registered memory a `URING_CMD` driver fills with a request before the
//! fetch CQE and reads the reply from during the commit (FUSE over io_uring's
//! `REGISTER` / `COMMIT_AND_FETCH`, Linux 6.14+). The fourth lease source, beside fixed-pool
//! slots, buffer-ring picks and pipes (docs/design.md §7).
//!
//! # Model
//!
//! A [`CmdQueue`] owns `depth` slots. A slot is a small header buffer and a payload
//! [`Lease`] (one [`FixedPool`] slot, so group members can `READ_FIXED` into it and
//! `WRITE_FIXED` from it). Each slot cycles:
//!
//! ```text
//!   armed ──fetch CQE (res >= 0)──▶ fetched (a Fetched: the user's) ──commit──▶ armed
//!   (the SQE's op data owns the slot:                                  (COMMIT_AND_FETCH's
//!    no safe code can reach it)                                         op data owns it)
//! ```
//!
//! The queue is a stream of [`Fetched`] requests; the driver's commands (which SQE arms a
//! slot, which commits it, what an error reply looks like) come from a [`SlotProtocol`].
//!
//! # The commit contract (stricter than G8)
//!
//! Every request fetched into a slot is committed exactly once, while the queue lives:
//!
//! - [`Fetched::commit`] pushes the commit at once; it consumes the request, so it cannot
//!   run twice;
//! - a `Fetched` dropped uncommitted (its task aborted, its future dropped by a `select!`,
//!   a panic unwinding through it) has its reply replaced by an error
//!   ([`SlotProtocol::abandon`]: `EINTR` for a drop, `EIO` during a panic) and is committed
//!   by the queue at its next poll. The drop itself submits nothing, so it is safe wherever
//!   it happens, even where the ring is borrowed;
//! - a commit waits while a kernel op still reads or writes the payload (an op on it that
//!   was dropped and has not finished yet): re-arming the slot then would let the driver's
//!   next request and that op use the same bytes. The queue looks again after 1 ms, backing
//!   off to once a second while it stays parked;
//! - a `mem::forget`-ed `Fetched` is the one exception: its slot leaks (never freed, never
//!   reused) and its request is never answered; the client waits until the connection ends.
//!   So does a request whose payload a forgotten kernel op still holds (its commit waits
//!   for good).
//!
//! While armed, a slot's memory belongs to the in-flight command's op data; a dropped queue
//! cancels those ops and the executor keeps their data until their final CQE (FUSE: at
//! unmount or ring teardown), so the kernel never writes into freed memory.
//!
//! Counts of what happened are in [`CmdQueue::stats`]; tests use them to prove the contract
//! (`tests/fuse_uring_random_drops_commit_once.rs`).
//!
//! # Kernel-linked commits (G10)
//!
//! [`Fetched::commit_linked`] pushes `READ_FIXED`s into the payload and the commit as one
//! `IOSQE_IO_LINK` chain in one push (see `linked.rs`): the reply header, written before,
//! says the full length, and the kernel runs the commit only if every read returned its full
//! length. A short read breaks the chain (the commit completes with `ECANCELED` without
//! running) and the request comes back as a [`Fetched`] to finish and commit, so a reply
//! never claims bytes that were not read.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::ops::RangeBounds;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::Stream;
use futures::stream::FuturesUnordered;
use ringleader_buf::{FixedPool, Lease};
use ringleader_executor::Op;

use crate::group::{Group, GroupFuture, Leader, LeaseExt, LeaseSlice, LeaseSliceMut, Member};
use crate::uring_cmd::{Cmd, UringCmd};

mod linked;

pub use linked::{LinkedCommit, LinkedOutcome, LinkedRead};

/// The addresses of one slot, for building its fetch command.
#[derive(Debug, Clone, Copy)]
pub struct SlotAddr {
    /// `iovec[2]`: the header, then the payload (FUSE's `REGISTER` takes it as `addr`,
    /// `len = 2`). Valid until the command's final CQE.
    pub iov: *const libc::iovec,
    /// The header buffer.
    pub header: *mut u8,
    /// Its length.
    pub header_len: usize,
    /// The payload (the lease's memory).
    pub payload: *mut u8,
    /// Its length.
    pub payload_len: usize,
}

/// A driver's slot commands.
///
/// # Safety
/// The commands built here may point only into the slot given ([`SlotAddr`]'s memory), which
/// the queue keeps alive until each command's final CQE, and must make the driver write only
/// there. A fetch or commit CQE with `res >= 0` must mean the slot holds a request.
pub unsafe trait SlotProtocol: 'static {
    /// The command that hands an empty slot to the driver (FUSE: `REGISTER`).
    fn fetch(&self, fd: RawFd, slot: &SlotAddr) -> Cmd;
    /// The command that commits the reply of the request in `header` and hands the slot
    /// back for the next request (FUSE: `COMMIT_AND_FETCH`). Called when the request is
    /// fetched, with the header exactly as the driver wrote it (so the request's identity,
    /// FUSE's commit id, comes from the driver, not from whatever the user later writes
    /// into the header); the command is kept and pushed at the commit. It must not depend
    /// on the reply.
    fn commit(&self, fd: RawFd, header: &[u8]) -> Cmd;
    /// Replace the reply in `header` by the error `errno` (positive), with no payload: for a
    /// request dropped unanswered.
    fn abandon(&self, header: &mut [u8], errno: i32);
}

/// What the queue has done (see [`CmdQueue::stats`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    /// Requests fetched (CQEs with `res >= 0`).
    pub fetched: u64,
    /// Commits pushed by [`Fetched::commit`].
    pub committed: u64,
    /// Commits pushed for requests dropped unanswered.
    pub abandoned: u64,
    /// Fetch or commit CQEs that carried an error (FUSE: `ENOTCONN` at unmount); their
    /// slot is retired.
    pub failed: u64,
    /// Commits pushed in a kernel-linked chain after their reads ([`Fetched::commit_linked`])
    /// whose reads all returned their full length (so the kernel ran the commit).
    pub linked: u64,
    /// Linked chains a short (or failed) read broke: the kernel cancelled the commit and the
    /// request went back to the user to finish ([`LinkedOutcome::Broken`]).
    pub link_broken: u64,
}

/// One slot's memory, owned by whoever holds the slot: an op's data while armed, a
/// [`Fetched`] in between.
struct Slot {
    header: Box<[u8]>,
    /// The commit command, built at the fetch CQE from the driver's header.
    commit: Option<Cmd>,
    payload: Lease,
    /// The `iovec[2]` a fetch command may point at (FUSE `REGISTER`); never read here.
    _iov: Box<[libc::iovec; 2]>,
    _fd: Rc<OwnedFd>,
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("payload", &self.payload)
            .finish_non_exhaustive()
    }
}

type SlotOp = Op<UringCmd<Slot>>;

/// A command in flight that holds a slot: a fetch or plain commit, or the commit at the end
/// of a linked chain.
enum Armed {
    Plain(SlotOp),
    Linked(Op<linked::LinkData>),
}

impl Future for Armed {
    /// The command's result, its slot, and whether it was a linked commit.
    type Output = (io::Result<u32>, Slot, bool);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Armed::Plain(op) => Pin::new(op).poll(cx).map(|(r, slot)| (r, slot, false)),
            Armed::Linked(op) => Pin::new(op).poll(cx).map(|(cqe, slot)| {
                let slot = slot.expect("a linked commit's data is its slot");
                (cqe.into_result(), slot, true)
            }),
        }
    }
}

struct Shared<P> {
    proto: P,
    fd: Rc<OwnedFd>,
    /// Commits pushed since the queue's last poll (their ops join the queue there).
    pushed: RefCell<Vec<Armed>>,
    /// Slots whose command completed outside the queue (a linked commit that ran although
    /// a read of its chain was short): yielded at the next poll.
    ready: RefCell<Vec<(io::Result<u32>, Slot)>>,
    /// Slots of dropped requests, their error reply written, to commit at the next poll.
    abandoned: RefCell<Vec<Slot>>,
    /// Committed slots whose payload a kernel op still reads or writes (a dropped op not
    /// yet settled, or a forgotten one): the commit waits, or the driver's next request
    /// and that op would use the same bytes.
    parked: RefCell<Vec<Slot>>,
    /// A slot was parked since the queue last looked: retry soon again (see `poll_retry`).
    newly_parked: Cell<bool>,
    waker: RefCell<Option<Waker>>,
    stats: Cell<QueueStats>,
}

impl<P: SlotProtocol> Shared<P> {
    fn count(&self, f: impl FnOnce(&mut QueueStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }

    fn wake(&self) {
        let w = self.waker.borrow_mut().take();
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Push the commit of `slot`, or park it while a kernel op still uses its payload.
    fn commit_or_park(&self, slot: Slot) -> Option<SlotOp> {
        if slot.payload.writers() > 0 || slot.payload.readers() > 0 {
            self.parked.borrow_mut().push(slot);
            self.newly_parked.set(true);
            return None;
        }
        Some(self.push_commit(slot))
    }

    /// Push the commit of `slot` (its reply written), with the command made at its fetch.
    fn push_commit(&self, mut slot: Slot) -> SlotOp {
        let cmd = slot
            .commit
            .take()
            .unwrap_or_else(|| self.proto.commit(self.fd.as_raw_fd(), &slot.header));
        // SAFETY: `SlotProtocol`'s contract: the command points only into this slot, which is
        // the op's data until its final CQE (the payload's lease and the header's and iovec's
        // boxes do not move when the `Slot` moves); the fd's owner is in the slot too.
        unsafe { cmd.submit(slot) }
    }
}

/// A stream of requests fetched into registered slots, each committed exactly once (see the
/// module docs).
#[must_use = "streams do nothing unless polled"]
pub struct CmdQueue<P: SlotProtocol> {
    shared: Rc<Shared<P>>,
    armed: FuturesUnordered<Armed>,
    /// Re-polls the queue while commits are parked (no wake-up comes when a kernel op on a
    /// payload ends).
    retry: Option<Pin<Box<crate::time::Sleep>>>,
    /// The next retry's delay: 1 ms, doubling to 1 s while commits stay parked (a payload
    /// held by a forgotten op stays held for good: no 1 kHz wake-up for it forever).
    retry_every: Duration,
    /// Slots still armed or fetched (not retired by an error CQE).
    live: usize,
}

impl<P: SlotProtocol> CmdQueue<P> {
    /// Arm `depth` slots of `header_len` header bytes and `payload_len` payload bytes on
    /// `fd`, with `proto`'s commands. The payloads are one [`FixedPool`] registered with the
    /// current core's ring.
    ///
    /// # Panics
    /// Outside a ringleader runtime.
    pub fn new(
        fd: Rc<OwnedFd>,
        proto: P,
        depth: usize,
        header_len: usize,
        payload_len: usize,
    ) -> io::Result<CmdQueue<P>> {
        let pool = FixedPool::new(payload_len, depth)?;
        let shared = Rc::new(Shared {
            proto,
            fd,
            pushed: RefCell::default(),
            ready: RefCell::default(),
            abandoned: RefCell::default(),
            parked: RefCell::default(),
            newly_parked: Cell::new(false),
            waker: RefCell::default(),
            stats: Cell::default(),
        });
        let armed = FuturesUnordered::new();
        for _ in 0..depth {
            let mut payload = pool
                .try_lease(payload_len)
                .expect("a fresh pool has `depth` free slots");
            payload.set_len(payload_len);
            let mut header = vec![0u8; header_len].into_boxed_slice();
            let addr = SlotAddr {
                iov: std::ptr::null(),
                header: header.as_mut_ptr(),
                header_len,
                payload: payload.as_mut_ptr(),
                payload_len,
            };
            let iov = Box::new([
                libc::iovec {
                    iov_base: addr.header.cast(),
                    iov_len: header_len,
                },
                libc::iovec {
                    iov_base: addr.payload.cast(),
                    iov_len: payload_len,
                },
            ]);
            let addr = SlotAddr {
                iov: iov.as_ptr(),
                ..addr
            };
            let cmd = shared.proto.fetch(shared.fd.as_raw_fd(), &addr);
            let slot = Slot {
                header,
                commit: None,
                payload,
                _iov: iov,
                _fd: Rc::clone(&shared.fd),
            };
            // SAFETY: `SlotProtocol`'s contract: the command points only into `slot` (header
            // and payload memory, the iovec array), all heap allocations or the pool's
            // mapping that stay put when `slot` moves into the op's data, which keeps them
            // until the final CQE; the lease keeps the pool's memory mapped.
            armed.push(Armed::Plain(unsafe { cmd.submit(slot) }));
        }
        Ok(CmdQueue {
            shared,
            armed,
            live: depth,
            retry: None,
            retry_every: RETRY_FIRST,
        })
    }

    /// What the queue has done so far.
    pub fn stats(&self) -> QueueStats {
        self.shared.stats.get()
    }

    /// Slots not retired by an error CQE.
    pub fn live(&self) -> usize {
        self.live
    }

    /// Push the commits of dropped requests and adopt the commits pushed since the last poll.
    fn adopt(&mut self) {
        let abandoned = std::mem::take(&mut *self.shared.abandoned.borrow_mut());
        for slot in abandoned {
            self.shared.count(|s| s.abandoned += 1);
            if let Some(op) = self.shared.commit_or_park(slot) {
                self.armed.push(Armed::Plain(op));
            }
        }
        let parked = std::mem::take(&mut *self.shared.parked.borrow_mut());
        for slot in parked {
            if let Some(op) = self.shared.commit_or_park(slot) {
                self.armed.push(Armed::Plain(op));
            }
        }
        let pushed = std::mem::take(&mut *self.shared.pushed.borrow_mut());
        for op in pushed {
            self.armed.push(op);
        }
    }

    /// While commits are parked, come back to look again: after 1 ms, then less and less
    /// often (up to once a second) while they stay parked; a newly parked commit starts
    /// again at 1 ms (its op, merely dropped, usually ends within microseconds).
    fn poll_retry(&mut self, cx: &mut Context<'_>) -> bool {
        if self.shared.parked.borrow().is_empty() {
            self.retry = None;
            self.retry_every = RETRY_FIRST;
            return false;
        }
        if self.shared.newly_parked.replace(false) && self.retry_every > RETRY_FIRST {
            self.retry = None;
            self.retry_every = RETRY_FIRST;
        }
        let every = self.retry_every;
        let retry = self
            .retry
            .get_or_insert_with(|| Box::pin(crate::time::sleep(every)));
        if retry.as_mut().poll(cx).is_ready() {
            self.retry = None;
            self.retry_every = (every * 2).min(RETRY_MAX);
            return true;
        }
        false
    }
}

/// First and longest delay of a parked commit's retries.
const RETRY_FIRST: Duration = Duration::from_millis(1);
const RETRY_MAX: Duration = Duration::from_secs(1);

impl<P: SlotProtocol> Stream for CmdQueue<P> {
    /// A request, or the error of a slot's fetch/commit CQE (the slot is retired). The
    /// stream ends when every slot is retired.
    type Item = io::Result<Fetched<P>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            // Keep the stored waker if it wakes this task already (no clone per request);
            // a replaced one is dropped outside the borrow.
            let same = this
                .shared
                .waker
                .borrow()
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()));
            if !same {
                let old = this.shared.waker.replace(Some(cx.waker().clone()));
                drop(old);
            }
            this.adopt();
            if this.live == 0 {
                return Poll::Ready(None);
            }
            let ready = this.shared.ready.borrow_mut().pop();
            let next = match ready {
                Some((r, slot)) => Poll::Ready(Some((r, slot, false))),
                None => Pin::new(&mut this.armed).poll_next(cx),
            };
            match next {
                Poll::Ready(Some((Err(e), mut slot, true)))
                    if e.raw_os_error() == Some(libc::ECANCELED) =>
                {
                    // A linked commit that never ran (its chain broke after the task that
                    // pushed it was dropped): the request is unanswered, and the reply in
                    // the header may claim bytes no read produced. Answer it with an error.
                    let errno = libc::EINTR;
                    this.shared.proto.abandon(&mut slot.header, errno);
                    this.shared.abandoned.borrow_mut().push(slot);
                }
                Poll::Ready(Some((Ok(_), mut slot, _))) => {
                    this.shared.count(|s| s.fetched += 1);
                    let fd = this.shared.fd.as_raw_fd();
                    slot.commit = Some(this.shared.proto.commit(fd, &slot.header));
                    return Poll::Ready(Some(Ok(Fetched {
                        slot: Some(slot),
                        shared: Rc::clone(&this.shared),
                    })));
                }
                Poll::Ready(Some((Err(e), slot, _))) => {
                    // The driver is done with this slot (FUSE: the connection ended).
                    this.shared.count(|s| s.failed += 1);
                    this.live -= 1;
                    drop(slot);
                    return Poll::Ready(Some(Err(e)));
                }
                // Every armed op is between polls of `adopt`: new ones may have come.
                Poll::Ready(None) | Poll::Pending => {
                    let idle = this.shared.pushed.borrow().is_empty()
                        && this.shared.abandoned.borrow().is_empty()
                        && this.shared.ready.borrow().is_empty();
                    if idle && !this.poll_retry(cx) {
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

impl<P: SlotProtocol> fmt::Debug for CmdQueue<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CmdQueue")
            .field("live", &self.live)
            .field("armed", &self.armed.len())
            .field("stats", &self.stats())
            .finish()
    }
}

/// One fetched request: its slot's header and payload, the user's until
/// [`commit`](Fetched::commit). Dropped uncommitted, it is committed with an error (module
/// docs).
#[must_use = "a fetched request is answered by `commit`; dropping it answers with an error"]
pub struct Fetched<P: SlotProtocol> {
    slot: Option<Slot>,
    shared: Rc<Shared<P>>,
}

impl<P: SlotProtocol> Fetched<P> {
    fn slot(&self) -> &Slot {
        self.slot
            .as_ref()
            .expect("a Fetched holds its slot until it is consumed")
    }

    fn slot_mut(&mut self) -> &mut Slot {
        self.slot
            .as_mut()
            .expect("a Fetched holds its slot until it is consumed")
    }

    /// The header buffer (the request's header; write the reply's into it).
    pub fn header(&self) -> &[u8] {
        &self.slot().header
    }

    /// The header buffer, to write the reply's header.
    pub fn header_mut(&mut self) -> &mut [u8] {
        &mut self.slot_mut().header
    }

    /// The payload lease (its length is the slot's payload size). Shared only: the driver
    /// keeps the payload's address from the first fetch, so the lease must never be moved
    /// out of the slot (no `&mut Lease` is handed out, see
    /// [`payload_mut`](Fetched::payload_mut)).
    pub fn payload(&self) -> &Lease {
        &self.slot().payload
    }

    /// The payload's bytes, to write the reply (the lease access rule applies: a panic if a
    /// dropped kernel op still uses them).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.slot_mut().payload[..]
    }

    /// A shared view of payload bytes `range`, for plain ops that read them
    /// (`ringleader::group::write_fixed_at`).
    pub fn payload_view(&self, range: impl RangeBounds<usize>) -> LeaseSlice<'_> {
        self.slot().payload.view(range)
    }

    /// An exclusive view of payload bytes `range`, for plain ops that write them
    /// (`ringleader::group::read_fixed_at`).
    pub fn payload_view_mut(&mut self, range: impl RangeBounds<usize>) -> LeaseSliceMut<'_> {
        self.slot_mut().payload.view_mut(range)
    }

    /// A group on the payload: no leader I/O (the driver filled it), `members` read or write
    /// it (each on its own range, see `Member::at`), with the group contract (§4).
    pub fn group(&mut self, members: Vec<Member>) -> GroupFuture<'_> {
        Group::new(&mut self.slot_mut().payload)
            .leader(Leader::nop())
            .members(members)
            .into_future()
    }

    /// Commit the reply now in the header and payload, handing the slot back to the driver
    /// for the next request (which the queue yields).
    ///
    /// # Panics
    /// Outside the runtime the queue runs on.
    pub fn commit(mut self) {
        let slot = self.slot.take().expect("committed once");
        self.shared.count(|s| s.committed += 1);
        if let Some(op) = self.shared.commit_or_park(slot) {
            self.shared.pushed.borrow_mut().push(Armed::Plain(op));
        }
        self.shared.wake();
    }
}

impl<P: SlotProtocol> Drop for Fetched<P> {
    fn drop(&mut self) {
        let Some(mut slot) = self.slot.take() else {
            return;
        };
        let errno = if std::thread::panicking() {
            libc::EIO
        } else {
            libc::EINTR
        };
        self.shared.proto.abandon(&mut slot.header, errno);
        self.shared.abandoned.borrow_mut().push(slot);
        self.shared.wake();
    }
}

impl<P: SlotProtocol> fmt::Debug for Fetched<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetched")
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}
