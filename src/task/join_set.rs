//! [`JoinSet`]: a set of tasks whose outputs are taken as they finish.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::{FuturesUnordered, Stream};
use ringleader_executor::{JoinError, JoinHandle};

use super::abort::{AbortHandle, abortable};

/// A collection of tasks, awaited in the order they finish; dropping the set aborts every
/// task still in it (tokio's `JoinSet`). Each `spawn` returns an [`AbortHandle`] for that
/// one task, as in tokio.
///
/// Tasks may be `!Send` ([`JoinSet::spawn`] runs them on the current core, which is where
/// every ringleader task lives; see [the module docs](crate::task) for why there is no
/// `LocalSet`), or run on another core ([`JoinSet::spawn_on`]) or on the blocking pool
/// ([`JoinSet::spawn_blocking`]). The set itself stays on the core that owns it.
///
/// ```
/// use std::time::Duration;
/// use ringleader::task::JoinSet;
///
/// ringleader::block_on(async {
///     let mut set = JoinSet::new();
///     set.spawn(async {
///         ringleader::time::sleep(Duration::from_millis(20)).await;
///         "slow"
///     });
///     set.spawn(async { "fast" });
///     assert_eq!(set.len(), 2);
///     assert_eq!(set.join_next().await.unwrap().unwrap(), "fast");
///     assert_eq!(set.join_next().await.unwrap().unwrap(), "slow");
///     assert!(set.join_next().await.is_none());
///
///     // Abort: the futures are dropped on their core (their ops cancelled).
///     set.spawn(std::future::pending::<&str>());
///     set.abort_all();
///     assert!(set.join_next().await.unwrap().unwrap_err().is_cancelled());
///     assert!(set.is_empty());
/// });
/// ```
///
/// # Cancellation
///
/// - Dropping the future of [`join_next`](JoinSet::join_next) loses nothing: outputs stay in
///   their tasks until taken.
/// - [`AbortHandle::abort`] ends one task the same way, at its next poll on its core; an
///   output it produced before is kept.
/// - [`abort_all`](JoinSet::abort_all) and dropping the set abort every task left: each
///   future is dropped on its own core at that core's next tick (its in-flight ops are
///   cancelled as for any dropped op). `join_next` then yields
///   [`JoinError::Cancelled`](JoinError::is_cancelled) for each at once, without waiting for
///   the drop; an output a task produced before the abort is discarded too (tokio keeps
///   such an output).
/// - A task of [`spawn_blocking`](JoinSet::spawn_blocking) cannot be stopped: aborting it
///   only stops waiting, the closure runs to its end on the pool.
#[must_use = "dropping a JoinSet aborts its tasks"]
pub struct JoinSet<T> {
    tasks: FuturesUnordered<Entry<T>>,
}

/// A task of the set: one it spawned (abortable through an [`AbortHandle`]), or a
/// [`JoinHandle`] it was given.
enum Entry<T> {
    Spawned(JoinHandle<Option<T>>),
    Pushed(JoinHandle<T>),
}

impl<T> Entry<T> {
    fn abort(&self) {
        match self {
            Entry::Spawned(h) => h.abort(),
            Entry::Pushed(h) => h.abort(),
        }
    }

    fn detach(self) {
        match self {
            Entry::Spawned(h) => h.detach(),
            Entry::Pushed(h) => h.detach(),
        }
    }
}

impl<T> Future for Entry<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Entry::Spawned(h) => Pin::new(h)
                .poll(cx)
                .map(|r| r.and_then(|o| o.ok_or(JoinError::Cancelled))),
            Entry::Pushed(h) => Pin::new(h).poll(cx),
        }
    }
}

impl<T> JoinSet<T> {
    /// An empty set.
    pub fn new() -> Self {
        JoinSet {
            tasks: FuturesUnordered::new(),
        }
    }

    /// Number of tasks in the set (finished ones count until taken by `join_next`).
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether the set holds no task.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Add a task already spawned (its handle); the set now owns and may abort it.
    pub fn push(&mut self, handle: JoinHandle<T>) {
        self.tasks.push(Entry::Pushed(handle));
    }

    /// Abort every task in the set (see the type's cancellation notes). They stay in the set
    /// until `join_next` takes them, each as [`JoinError::Cancelled`].
    pub fn abort_all(&mut self) {
        for t in self.tasks.iter() {
            t.abort();
        }
    }

    /// Forget every task in the set without aborting: they keep running, detached.
    pub fn detach_all(&mut self) {
        for t in std::mem::take(&mut self.tasks) {
            t.detach();
        }
    }

    /// Wait for the next task to finish and take its output; `None` when the set is empty.
    ///
    /// Cancel-safe: dropping this future before it resolves takes nothing out of the set.
    pub async fn join_next(&mut self) -> Option<Result<T, JoinError>> {
        std::future::poll_fn(|cx| self.poll_join_next(cx)).await
    }

    /// Take the output of a task that has already finished, without waiting; `None` if no
    /// task has finished (or the set is empty).
    pub fn try_join_next(&mut self) -> Option<Result<T, JoinError>> {
        let waker = futures::task::noop_waker();
        match self.poll_join_next(&mut Context::from_waker(&waker)) {
            Poll::Ready(r) => r,
            Poll::Pending => None,
        }
    }

    /// Poll form of [`join_next`](JoinSet::join_next): `Ready(None)` when the set is empty.
    pub fn poll_join_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, JoinError>>> {
        Pin::new(&mut self.tasks).poll_next(cx)
    }

    /// Abort every task and wait until the set is empty.
    pub async fn shutdown(&mut self) {
        self.abort_all();
        while self.join_next().await.is_some() {}
    }

    /// Wait for every task and return their outputs in the order they finished.
    ///
    /// # Panics
    /// If a task panicked (the panic is resumed here) or was aborted; the other tasks are
    /// aborted when the set drops.
    pub async fn join_all(mut self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.len());
        while let Some(r) = self.join_next().await {
            match r {
                Ok(v) => out.push(v),
                Err(JoinError::Panic(p)) => std::panic::resume_unwind(p),
                Err(e) => panic!("JoinSet::join_all: {e}"),
            }
        }
        out
    }
}

impl<T: 'static> JoinSet<T> {
    /// Spawn `future` on the current core (it may be `!Send`) and add it to the set; the
    /// handle aborts this task alone.
    ///
    /// # Panics
    /// Outside a ringleader runtime.
    pub fn spawn<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + 'static,
    {
        let handle = AbortHandle::new();
        let task = ringleader_executor::spawn(abortable(future, handle.clone()));
        self.tasks.push(Entry::Spawned(task));
        handle
    }

    /// [`JoinSet::spawn`] under tokio's `!Send` name (every ringleader task is core-local).
    pub fn spawn_local<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + 'static,
    {
        self.spawn(future)
    }

    /// Spawn `f()` on core `core` of the current runtime (as [`crate::spawn_on`]) and add it.
    ///
    /// # Panics
    /// Outside a ringleader runtime, or if `core` is out of range.
    pub fn spawn_on<F, Fut>(&mut self, core: usize, f: F) -> AbortHandle
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
        T: Send,
    {
        let handle = AbortHandle::new();
        let h = handle.clone();
        let task = ringleader_executor::spawn_on(core, move || abortable(f(), h));
        self.tasks.push(Entry::Spawned(task));
        handle
    }

    /// Run `f` on the blocking pool (as [`crate::spawn_blocking`]) and add it; a panic in `f`
    /// comes back as [`JoinError::Panic`]. Aborting only stops waiting for it.
    ///
    /// # Panics
    /// Outside a ringleader runtime.
    pub fn spawn_blocking<F>(&mut self, f: F) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send,
    {
        let job = ringleader_executor::spawn_blocking(f);
        self.spawn(async move {
            match job.await {
                Ok(v) => v,
                Err(JoinError::Panic(p)) => std::panic::resume_unwind(p),
                Err(e) => panic!("{e}"),
            }
        })
    }
}

impl<T> Default for JoinSet<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Drop for JoinSet<T> {
    fn drop(&mut self) {
        self.abort_all();
    }
}

impl<T> fmt::Debug for JoinSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinSet").field("len", &self.len()).finish()
    }
}

impl<T: 'static> Extend<JoinHandle<T>> for JoinSet<T> {
    fn extend<I: IntoIterator<Item = JoinHandle<T>>>(&mut self, iter: I) {
        for h in iter {
            self.push(h);
        }
    }
}
