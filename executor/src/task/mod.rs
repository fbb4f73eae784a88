//! Tasks: `async-task` allocations scheduled onto the core that owns them.
//!
//! A task is owned by one core for its whole life. Its schedule function pushes the
//! `Runnable` onto that core's local queue when called on the core's thread, and onto the
//! core's injection queue (plus a `MSG_RING` wake-up) from anywhere else. A core only ever
//! runs its own runnables, so a task's future is polled, and dropped, on one thread: that is
//! what lets `spawn` take `!Send` futures.
//!
//! Every task output is wrapped in `catch_unwind`: a panic becomes a [`JoinError`] and the
//! core goes on.

mod join;
mod yield_now;

pub use join::{JoinError, JoinHandle};
pub use yield_now::{YieldNow, yield_now};

use std::cell::RefCell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::FutureExt;
use slab::Slab;

use crate::context;
use crate::shared::Shared;

/// A runnable task of this runtime: its metadata names the core that owns it.
pub(crate) type Runnable = async_task::Runnable<Arc<Shared>>;

/// The schedule function of every task: to the local queue on the owning core's thread, to
/// its injection queue from anywhere else. The owner travels in the task's metadata, not in
/// the function, so the function is zero-sized: async-task then schedules a woken task by
/// turning the waker's own reference into the runnable (one compare-and-swap), where a
/// capturing function costs three more atomic read-modify-writes per wake (a guard clone
/// around the call, its drop, and the waker's drop). Measured on `bench core --only nop`:
/// see docs/design.md §2.
fn schedule(runnable: Runnable) {
    let mut runnable = Some(runnable);
    context::with_core(|core| {
        if let Some(r) = runnable.take_if(|r| Arc::ptr_eq(&core.shared, r.metadata())) {
            core.schedule_local(r);
        }
    });
    if let Some(r) = runnable {
        let owner = Arc::clone(r.metadata());
        owner.inject(r);
    }
}

/// Create a task owned by `owner` (see [`spawn`] for the safety argument at each use).
///
/// # Safety
/// As for [`async_task::spawn_unchecked`]: if `fut` is not `Send`, its runnable must be run
/// and dropped only on `owner`'s thread (and likewise the waker, if `fut` is not `'static`).
unsafe fn spawn_task<F>(
    fut: F,
    owner: Arc<Shared>,
) -> (Runnable, async_task::Task<F::Output, Arc<Shared>>)
where
    F: Future,
{
    let builder = async_task::Builder::new().metadata(owner);
    // SAFETY: forwarded from the caller.
    unsafe { builder.spawn_unchecked(|_| fut, schedule) }
}

/// Spawn a future on the current core. It may be `!Send`: it never leaves this core.
///
/// ```
/// let v = ringleader::block_on(async {
///     let h = ringleader::spawn(async { 40 + 2 });
///     h.await.unwrap()
/// });
/// assert_eq!(v, 42);
/// ```
///
/// # Panics
/// Outside a ringleader runtime.
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let owner = context::with_core(|c| Arc::clone(&c.shared))
        .expect("ringleader::spawn called outside a ringleader runtime");
    let fut = async move {
        let _active = ActiveGuard::register().await;
        AssertUnwindSafe(future).catch_unwind().await
    };
    // SAFETY: `spawn_unchecked` lets the future be `!Send` and non-`'static`-checked by
    // async-task. The future is 'static (bound above). It is polled only by `Runnable::run`,
    // which only the owning core calls (the schedule function routes every runnable to that
    // core), and it is dropped on that core: by `run`, by the core's shutdown (which wakes and
    // drops every active task on its thread), or, before any poll, wherever the runnable is
    // dropped, which is still this thread here because the first `schedule` below pushes to
    // the local queue. The output may be `!Send`: `JoinHandle<T>` is then `!Send` too.
    let (runnable, task) = unsafe { spawn_task(fut, owner) };
    runnable.schedule();
    JoinHandle::new(task)
}

/// Spawn `f()` on core `core` of the runtime `cores`; `f` runs there and its future never
/// leaves that core. Returns a handle that can be awaited from any core or thread.
pub(crate) fn spawn_on_shared<F, Fut>(target: &Arc<Shared>, f: F) -> JoinHandle<Fut::Output>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    let fut = async move {
        let _active = ActiveGuard::register().await;
        AssertUnwindSafe(async move { f().await })
            .catch_unwind()
            .await
    };
    // SAFETY: until its first poll the future holds only `f`, which is `Send`, so creating it
    // here and moving or dropping its runnable on any thread is sound. Every poll happens on
    // `target`'s thread (the schedule function routes runnables only there), so the `!Send`
    // state that exists after the first poll never leaves that thread; `target`'s shutdown
    // drops it there too. The output is `Send`, so the handle may travel.
    let (runnable, task) = unsafe { spawn_task(fut, Arc::clone(target)) };
    runnable.schedule();
    JoinHandle::new(task)
}

/// Spawn `f()` on core `core` of the current runtime.
///
/// `f` is `Send` and runs on the target core; the future it returns may be `!Send`. The
/// handle can be awaited from any core.
///
/// # Panics
/// Outside a ringleader runtime, or if `core` is out of range.
pub fn spawn_on<F, Fut>(core: usize, f: F) -> JoinHandle<Fut::Output>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    let target = context::with_core(|c| {
        let cores = c.cores.borrow();
        let cores = cores.as_ref().expect("runtime core table");
        Arc::clone(cores.get(core).unwrap_or_else(|| {
            panic!(
                "ringleader::spawn_on: core {core} out of range (runtime has {})",
                cores.len()
            )
        }))
    })
    .expect("ringleader::spawn_on called outside a ringleader runtime");
    spawn_on_shared(&target, f)
}

/// Removes a task from its core's `active` table when its future is dropped.
struct ActiveGuard {
    active: Rc<RefCell<Slab<std::task::Waker>>>,
    key: usize,
}

impl ActiveGuard {
    /// On first poll, record the task's waker in the current core's `active` table.
    fn register() -> impl Future<Output = ActiveGuard> {
        std::future::poll_fn(|cx: &mut Context<'_>| {
            let guard = context::with_core(|core| {
                let active = Rc::clone(&core.active);
                let key = active.borrow_mut().insert(cx.waker().clone());
                ActiveGuard { active, key }
            })
            .expect("task polled outside its core");
            Poll::Ready(guard)
        })
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        // Shutdown may already have drained the table.
        let _ = self.active.borrow_mut().try_remove(self.key);
    }
}

/// Number of live tasks on the current core that have been polled at least once.
pub(crate) fn active_tasks() -> usize {
    context::with_core(|c| c.active.borrow().len()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    /// async-task turns a waker into the runnable with one compare-and-swap only when the
    /// schedule function is zero-sized; a capturing one adds three atomic read-modify-writes
    /// to every wake.
    #[test]
    fn the_schedule_function_is_zero_sized() {
        assert_eq!(std::mem::size_of_val(&super::schedule), 0);
    }
}
