//! [`AbortHandle`]: stop one task of a [`JoinSet`](super::JoinSet) without owning its
//! output (tokio's `task::AbortHandle`).
//!
//! The set spawns each task's future inside [`abortable`], which checks a shared flag before
//! every poll of the future. [`AbortHandle::abort`] sets the flag and wakes the task, so the
//! task's next poll, on its own core, ends it: the future is dropped there (its ops
//! cancelled, as for any dropped op) and the set's `join_next` reports
//! [`JoinError::Cancelled`](crate::JoinError). The task's `JoinHandle` stays in the set, so
//! aborting through a handle and `abort_all` never race over who owns the output.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use futures::task::AtomicWaker;

/// Shared by a task spawned into a `JoinSet` and its [`AbortHandle`]s.
#[derive(Default)]
struct State {
    aborted: AtomicBool,
    /// Set when the task's future is dropped: it finished, panicked, or was aborted.
    finished: AtomicBool,
    /// The task's waker, for an abort from another task, core or thread.
    waker: AtomicWaker,
}

/// Aborts one task of a [`JoinSet`](super::JoinSet) (what its `spawn` methods return, as in
/// tokio). `Send + Sync + Clone`: abort from any task, core or plain thread. Dropping the
/// handle does not abort the task.
///
/// ```
/// use ringleader::task::JoinSet;
///
/// ringleader::block_on(async {
///     let mut set = JoinSet::new();
///     let slow = set.spawn(std::future::pending::<u32>());
///     set.spawn(async { 7 });
///     slow.abort();
///     let mut got = Vec::new();
///     while let Some(r) = set.join_next().await {
///         got.push(r.map_err(|e| e.is_cancelled()));
///     }
///     got.sort();
///     assert_eq!(got, [Ok(7), Err(true)]);
///     assert!(slow.is_finished());
/// });
/// ```
#[derive(Clone)]
pub struct AbortHandle {
    state: Arc<State>,
}

impl AbortHandle {
    /// Abort the task: its next poll, on its own core, drops its future instead (right away
    /// if it is idle), and `join_next` yields [`JoinError::Cancelled`](crate::JoinError) for
    /// it. A task that has already produced its output keeps it: `join_next` yields the
    /// output. For a `spawn_blocking` task only the waiting stops; the closure runs on.
    pub fn abort(&self) {
        self.state.aborted.store(true, Ordering::Release);
        self.state.waker.wake();
    }

    /// Whether the task is over: its future has finished, panicked or been dropped after an
    /// abort (so after [`abort`](AbortHandle::abort) this becomes true once the task's core
    /// has dropped the future).
    pub fn is_finished(&self) -> bool {
        self.state.finished.load(Ordering::Acquire)
    }
}

impl fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Marks the task finished when its future is dropped, however that happens.
/// A task's future and its finished mark, in drop order.
struct Parts<F> {
    future: F,
    finished: Finished,
}

struct Finished(Arc<State>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.finished.store(true, Ordering::Release);
    }
}

impl AbortHandle {
    /// A handle for a task not spawned yet (see [`abortable`]).
    pub(crate) fn new() -> AbortHandle {
        AbortHandle {
            state: Arc::new(State::default()),
        }
    }
}

/// `future` made abortable by `handle` (a clone of the one given out): `Some(output)`, or
/// `None` if aborted first. Build it where the task runs (it need not be `Send`).
pub(crate) fn abortable<F: Future>(
    future: F,
    handle: AbortHandle,
) -> impl Future<Output = Option<F::Output>> {
    let state = handle.state;
    // Made out here, so that a future dropped before its first poll marks the task finished;
    // and after the future in `Parts`, whose fields drop in order: the task counts as
    // finished only once the future is gone (dropped unpolled, or below, once polled).
    let parts = Parts {
        future,
        finished: Finished(Arc::clone(&state)),
    };
    async move {
        // Locals drop in reverse order: `future` (pinned below) before `_finished`.
        let Parts {
            finished: _finished,
            future,
        } = parts;
        let mut future = pin!(future);
        poll_fn(|cx| {
            if state.aborted.load(Ordering::Acquire) {
                return Poll::Ready(None);
            }
            state.waker.register(cx.waker());
            // An abort between the check and the registration woke the old waker (or none).
            if state.aborted.load(Ordering::Acquire) {
                return Poll::Ready(None);
            }
            future.as_mut().poll(cx).map(Some)
        })
        .await
    }
}
