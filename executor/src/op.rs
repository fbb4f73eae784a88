//! Operations: the one place where the kernel starts borrowing memory.
//!
//! An [`Op`] owns everything its SQE points at (`data`). Its SQE is pushed when the `Op` is
//! created; the `Op` future resolves when the final CQE has been reaped. If the future is
//! dropped first, `data` moves into the op's slot, an `ASYNC_CANCEL` is pushed, and `data` is
//! dropped only after the final CQE: the kernel never sees freed memory. If the future is
//! `mem::forget`-ed, `data` is leaked with it: still never freed while the kernel may use it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use io_uring::squeue::Entry;

use crate::context::{self, DriverRef, Unavailable};
use crate::core::Deferred;
use crate::driver::push_failed;
use crate::lifecycle::{Cqe, DropOutcome, OpPoll};

/// Resources of an op whose future was dropped while the kernel still owned them.
pub trait Orphan: 'static {
    /// Called for each CQE that arrives after the op's future was dropped (and for a result
    /// that raced the drop). Recycle what the result carries: close an accepted or opened fd,
    /// hand a selected buffer back. Must not call into the runtime.
    fn orphan_cqe(&mut self, _cqe: &Cqe) {}
}

/// An operation's owned resources and how its final CQE becomes its output.
pub trait Completable: Orphan + Sized {
    /// What the op future resolves to.
    type Output;
    /// Turn the final CQE and the resources back into the op's output.
    fn complete(self, cqe: Cqe) -> Self::Output;
}

/// A submitted operation; a future resolving at its final CQE.
#[must_use = "futures do nothing unless you `.await` or poll them; dropping cancels the op"]
pub struct Op<T: Completable> {
    driver: DriverRef,
    user_data: u64,
    data: Option<T>,
    settle: bool,
    /// Polled before: the slot has (had) this task's waker.
    polled: bool,
}

impl<T: Completable> Op<T> {
    /// Push `entry` (its `user_data` is overwritten) and return the op future.
    ///
    /// # Panics
    /// Outside a ringleader runtime.
    ///
    /// # Safety
    /// Every pointer in `entry` must be valid for the kernel's accesses until the op's final
    /// CQE: it must point into memory owned by `data` that does not move when `data` moves
    /// (a heap allocation such as a `Vec`'s or a `Box`'s contents, a registered buffer the
    /// data keeps leased), or into memory that outlives the runtime. `data` is kept alive
    /// until the final CQE even if the op future is dropped, and leaked if it is forgotten.
    pub unsafe fn submit(entry: Entry, data: T) -> Self {
        // SAFETY: the caller guarantees `entry`'s pointers stay valid until the final CQE;
        // `data` is stored in this `Op` (or its slot) until then.
        let (driver, user_data) = unsafe { push_new(entry, false) };
        Op {
            driver,
            user_data,
            data: Some(data),
            settle: false,
            polled: false,
        }
    }

    /// Push a 128-byte `entry` (its `user_data` is overwritten) and return the op future: for
    /// ops whose command needs the SQE's upper 64 bytes (`URING_CMD` with more than 16
    /// command bytes). On a ring built without [`Builder::sqe128`](crate::Builder::sqe128)
    /// an entry whose upper half is zero goes as a 64-byte SQE (those are the only bytes such
    /// an SQE has); any other completes with `EINVAL` without reaching the kernel.
    ///
    /// # Panics
    /// Outside a ringleader runtime.
    ///
    /// # Safety
    /// As for [`Op::submit`].
    pub unsafe fn submit_sqe128(entry: io_uring::squeue::Entry128, data: T) -> Self {
        let (driver, pushed) = DriverRef::current_with(|d| {
            let user_data = d.ops.insert(false);
            // SAFETY: forwarded from the caller.
            match unsafe { d.push128(&entry.user_data(user_data)) } {
                Ok(true) => Ok(user_data),
                Ok(false) => {
                    // Never reached the SQ: the slot completes now, as the kernel would
                    // complete an SQE it cannot parse.
                    d.ops.complete(user_data, -libc::EINVAL, 0);
                    Ok(user_data)
                }
                Err(e) => {
                    d.ops.abandon(user_data);
                    Err(e)
                }
            }
        });
        Op {
            driver,
            user_data: pushed.unwrap_or_else(|e| push_failed(e)),
            data: Some(data),
            settle: false,
            polled: false,
        }
    }

    /// Submit `entry` into `lane`: it reaches the kernel after every op submitted into the
    /// lane before it has finished, chained with the ops queued with it (see [`Lane`]). In
    /// a failed lane the op completes with `ECANCELED` without being submitted.
    ///
    /// # Panics
    /// Outside a ringleader runtime, or if `lane` belongs to another core.
    ///
    /// # Safety
    /// As for [`Op::submit`].
    ///
    /// [`Lane`]: crate::Lane
    pub unsafe fn submit_in(lane: &crate::Lane, entry: Entry, data: T) -> Self {
        let (driver, user_data) = DriverRef::current_with(|d| {
            let key = lane.key_for(DriverRef::of(d));
            // The entry waits in its slot until its turn; its pointers stay valid because
            // `data` is stored in this `Op` (or its slot) until the final CQE, or released
            // unsubmitted.
            d.ops.insert_in_lane(key, entry)
        });
        Op {
            driver,
            user_data,
            data: Some(data),
            settle: false,
            polled: false,
        }
    }

    /// Make dropping this op *wait* until the kernel is done with it: the drop cancels the
    /// op and drives the ring until its final CQE, instead of returning at once.
    ///
    /// For ops that write into memory the caller only lends them (a read into a borrowed
    /// lease): when the op future's borrow ends, the kernel has stopped writing, so the lender
    /// never sees bytes change under a shared reference. The wait is short for cancellable
    /// ops (sockets, pipes, poll-driven reads) and bounded by the device for a file read that
    /// has already started. Only blocks if the op is still in flight when dropped.
    pub fn settle_on_drop(mut self) -> Self {
        self.settle = true;
        self
    }

    /// Ask the kernel to cancel the op, keeping the future: awaiting it then gives the op's
    /// output at its final CQE, with its resources (a buffer comes back). The result is
    /// usually `ECANCELED`, or the real result if the op finished first.
    ///
    /// ```
    /// ringleader::block_on(async {
    ///     let (r, _w) = ringleader::pipe::pipe().await.unwrap();
    ///     let read = ringleader::fd::read(&std::rc::Rc::new(r), vec![0u8; 8], u64::MAX);
    ///     let (res, buf) = read.cancel().await;
    ///     assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    ///     assert_eq!(buf.len(), 8);
    /// });
    /// ```
    pub fn cancel(self) -> Self {
        let ud = self.user_data;
        // Busy (called from a waker's clone or drop): the op simply completes on its own.
        let _ = self.driver.access(|d| {
            if d.ops.is_in_flight(ud) {
                d.push_cancel(ud);
            }
        });
        self
    }

    /// The op's `user_data` (for `ASYNC_CANCEL` targeting and tests).
    pub fn user_data(&self) -> u64 {
        self.user_data
    }
}

impl<T: Completable> Unpin for Op<T> {}

impl<T: Completable> Future for Op<T> {
    type Output = T::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T::Output> {
        let this = self.get_mut();
        let ud = this.user_data;
        // The first poll almost always has to store the waker: clone it up front, outside the
        // borrow, so that it takes one look.
        let mut spare = None;
        if !this.polled {
            this.polled = true;
            spare = Some(cx.waker().clone());
        }
        let found = this.driver.with(|d| d.ops.poll(ud, cx.waker(), &mut spare));
        // Outside the borrow: the replaced waker (or our unused clone).
        drop(spare);
        let cqe = match found {
            Some(OpPoll::Ready(cqe)) => cqe,
            Some(OpPoll::Pending) => return Poll::Pending,
            Some(OpPoll::Register) => std::task::ready!(register(this.driver, cx, ud)),
            None => polled_elsewhere(),
        };
        let data = this.data.take().expect("Op polled after completion");
        Poll::Ready(data.complete(cqe))
    }
}

/// A later poll with a waker that does not `will_wake` the stored one (another task, or a
/// waker whose clones differ): clone it outside the borrow and look again.
#[cold]
#[inline(never)]
fn register(driver: DriverRef, cx: &Context<'_>, ud: u64) -> Poll<Cqe> {
    poll_slot(driver, cx, |d, w, s| d.ops.poll(ud, w, s), None)
}

#[cold]
#[inline(never)]
fn polled_elsewhere() -> ! {
    panic!("ringleader: op polled outside the runtime that submitted it")
}

/// Poll a slot with `poll`, handing it `spare`, a clone of the task's waker made outside the
/// driver borrow (a waker's clone and drop are user code), or none; if the slot needs one and
/// has none, clone it here and look again (the slot then takes it: no loop). Whatever waker
/// comes back is dropped here, outside the borrow.
#[inline]
fn poll_slot<R>(
    driver: DriverRef,
    cx: &Context<'_>,
    mut poll: impl FnMut(
        &mut crate::driver::Driver,
        &std::task::Waker,
        &mut Option<std::task::Waker>,
    ) -> OpPoll<R>,
    mut spare: Option<std::task::Waker>,
) -> Poll<R> {
    loop {
        let found = driver
            .with(|d| poll(d, cx.waker(), &mut spare))
            .expect("ringleader: op polled outside the runtime that submitted it");
        match found {
            OpPoll::Ready(r) => {
                drop(spare);
                return Poll::Ready(r);
            }
            OpPoll::Pending => {
                drop(spare);
                return Poll::Pending;
            }
            OpPoll::Register => spare = Some(cx.waker().clone()),
        }
    }
}

impl<T: Completable> Drop for Op<T> {
    fn drop(&mut self) {
        if let Some(data) = self.data.take() {
            cancel(self.driver, self.user_data, Box::new(data));
            if self.settle {
                settle(self.driver, self.user_data);
            }
        }
    }
}

/// How long a drop waits for the kernel to finish an op that writes into lent memory
/// ([`Op::settle_on_drop`]). Past it the op's resources stay parked in its slot until its
/// final CQE, and the lent memory stays inaccessible (the lease access rule) until then.
pub(crate) const SETTLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Drive the ring until `user_data` has seen its final CQE (its cancel was pushed), for at
/// most [`SETTLE_LIMIT`]. Skipped while the core shuts down (its drain waits for everything,
/// bounded) and when the driver is borrowed further up the stack.
#[cold] // Only for dropped in-flight ops that write into lent memory.
pub(crate) fn settle(driver: DriverRef, user_data: u64) {
    if context::with_core(|c| c.closing.get()).unwrap_or(true) {
        return;
    }
    let deadline = std::time::Instant::now() + SETTLE_LIMIT;
    let reaped = driver.access(|d| {
        d.settle(user_data, deadline);
        (
            std::mem::take(&mut d.ops.graveyard),
            std::mem::take(&mut d.ops.woken),
            std::mem::take(&mut d.ops.retired),
        )
    });
    match reaped {
        // Outside the driver borrow: release what the settled ops (and any other op reaped
        // meanwhile) held, so the resources are free when the drop returns, and wake the
        // tasks whose ops completed.
        Ok((graveyard, woken, retired)) => {
            drop(graveyard);
            drop(retired);
            for w in woken {
                w.wake();
            }
        }
        Err(Unavailable::Busy) => {
            context::with_core(|c| c.count_settle_skipped());
        }
        Err(Unavailable::Elsewhere) => {}
    }
}

impl<T: Completable> fmt::Debug for Op<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Op")
            .field("user_data", &format_args!("{:#x}", self.user_data))
            .field("done", &self.data.is_none())
            .finish()
    }
}

/// Reserve a slot (`streaming`: a multishot op's) and push `entry` for it.
///
/// # Panics
/// Outside a ringleader runtime, or when the ring is unusable: the slot is abandoned first
/// (the SQE never reached the SQ), and the caller's data is dropped by the unwind.
///
/// # Safety
/// As for [`Op::submit`]: the caller keeps the data `entry` points into until the final CQE.
unsafe fn push_new(entry: Entry, streaming: bool) -> (DriverRef, u64) {
    let (driver, pushed) = DriverRef::current_with(|d| {
        let user_data = d.ops.insert(streaming);
        // SAFETY: forwarded from the caller.
        match unsafe { d.push(&entry.user_data(user_data)) } {
            Ok(()) => Ok(user_data),
            Err(e) => {
                // The SQE never reached the SQ: no slot may wait for its CQE.
                d.ops.abandon(user_data);
                Err(e)
            }
        }
    });
    (driver, pushed.unwrap_or_else(|e| push_failed(e)))
}

/// Push `entries` all or none, one op each.
///
/// # Safety
/// As for [`Op::submit`], for each entry.
pub(crate) unsafe fn submit_all<T: Completable>(entries: Vec<(Entry, T)>) -> Vec<Op<T>> {
    let driver = DriverRef::current();
    let mut datas = Vec::with_capacity(entries.len());
    let pushed = driver
        .with(|d| {
            let mut sqes = Vec::with_capacity(entries.len());
            for (entry, data) in entries {
                let user_data = d.ops.insert(false);
                sqes.push(entry.user_data(user_data));
                datas.push((user_data, data));
            }
            // SAFETY: forwarded from the caller's contract.
            let pushed = unsafe { d.push_all(&sqes) };
            if pushed.is_err() {
                // None of them reached the SQ: no slot may wait for a CQE.
                for (ud, _) in &datas {
                    d.ops.abandon(*ud);
                }
            }
            pushed
        })
        .expect("current driver");
    if let Err(e) = pushed {
        push_failed(e);
    }
    datas
        .into_iter()
        .map(|(user_data, data)| Op {
            driver,
            user_data,
            data: Some(data),
            settle: false,
            polled: false,
        })
        .collect()
}

/// Park `data` in the slot and cancel the op, or release it if the op already completed.
///
/// Never panics and never runs user code inside the driver borrow: the slot's waker and
/// released resources are dropped after it. If the driver is borrowed further up the stack
/// (a waker's clone or drop, a `with_submitter` closure), the work goes to the event loop's
/// next tick with the resources, so they are still released only at the final CQE.
#[cold] // Dropping an op before it completes is the exception (timeouts, aborts, shutdown).
pub(crate) fn cancel(driver: DriverRef, user_data: u64, data: Box<dyn Orphan>) {
    let mut data = Some(data);
    let outcome = driver.access(|d| d.orphan(user_data, data.take().expect("taken once")));
    match outcome {
        // Dropped outside the borrow: a resource's or a waker's drop may call into the
        // runtime.
        Ok(DropOutcome::Release(data, waker)) => {
            drop(waker);
            drop(data);
        }
        Ok(DropOutcome::Cancel(waker)) => drop(waker),
        Err(Unavailable::Busy) => {
            let data = data.take().expect("not taken: the closure did not run");
            context::defer(Deferred::Orphan { user_data, data });
        }
        // The op's runtime is not running on this thread (the op outlived `block_on`): we
        // cannot tell whether the kernel is done with the data, so it is leaked, never freed.
        // That runtime's shutdown cancels and reaps the op itself.
        Err(Unavailable::Elsewhere) => std::mem::forget(data),
    }
}

/// Resources and item conversion of a multishot op (accept, recv with buffer select).
pub trait MultiCompletable: Orphan + Sized {
    /// What each CQE becomes.
    type Item;
    /// Convert one CQE (the resources stay borrowed).
    fn next(&mut self, cqe: Cqe) -> Self::Item;
}

/// A submitted multishot operation: a stream of one item per CQE, ending after the CQE
/// without `IORING_CQE_F_MORE`.
#[must_use = "streams do nothing unless polled; dropping cancels the op"]
pub struct MultiOp<T: MultiCompletable> {
    driver: DriverRef,
    user_data: u64,
    data: Option<T>,
    finished: bool,
}

impl<T: MultiCompletable> MultiOp<T> {
    /// Push a multishot `entry` and return the stream.
    ///
    /// # Panics
    /// Outside a ringleader runtime.
    ///
    /// # Safety
    /// As for [`Op::submit`], for every CQE the op may post.
    pub unsafe fn submit(entry: Entry, data: T) -> Self {
        // SAFETY: forwarded from the caller's contract, as in `Op::submit`.
        let (driver, user_data) = unsafe { push_new(entry, true) };
        MultiOp {
            driver,
            user_data,
            data: Some(data),
            finished: false,
        }
    }

    /// The resources (for items that borrow them).
    pub fn data_mut(&mut self) -> &mut T {
        self.data.as_mut().expect("MultiOp data taken")
    }
}

impl<T: MultiCompletable> Unpin for MultiOp<T> {}

impl<T: MultiCompletable> Stream for MultiOp<T> {
    type Item = T::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T::Item>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        let ud = this.user_data;
        let next = std::task::ready!(poll_slot(
            this.driver,
            cx,
            |d, w, s| d.ops.poll_next(ud, w, s),
            None
        ));
        match next {
            Some(cqe) => {
                let data = this.data.as_mut().expect("MultiOp data taken");
                Poll::Ready(Some(data.next(cqe)))
            }
            None => {
                this.finished = true;
                Poll::Ready(None)
            }
        }
    }
}

impl<T: MultiCompletable> Drop for MultiOp<T> {
    fn drop(&mut self) {
        if let Some(data) = self.data.take() {
            if self.finished {
                drop(data);
            } else {
                cancel(self.driver, self.user_data, Box::new(data));
            }
        }
    }
}

impl<T: MultiCompletable> fmt::Debug for MultiOp<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiOp")
            .field("user_data", &format_args!("{:#x}", self.user_data))
            .field("finished", &self.finished)
            .finish()
    }
}
