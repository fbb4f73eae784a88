//! [`Handle`]: a `Send + Sync` reference to a runtime's cores, for spawning onto them from
//! anywhere, including threads that run no core.
//!
//! A handle holds the runtime's core table (each core's injection queue and a duplicate of
//! its ring fd), not the runtime: it does not keep the cores running. Work spawned through a
//! handle after its runtime has shut down is dropped at once and its [`JoinHandle`] resolves
//! to [`JoinError::Cancelled`](crate::JoinError::Cancelled).
//!
//! From a core's thread a spawn wakes the target with an `IORING_OP_MSG_RING` SQE on the
//! calling core's ring; from any other thread with `IORING_REGISTER_SEND_MSG_RING` (Linux
//! 6.13), so no eventfd and no lock is held across the wake (see `shared.rs`).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::context;
use crate::core::CoreTable;
use crate::task::{JoinHandle, spawn_on_shared};

/// A handle to a runtime's cores: `Clone`, `Send` and `Sync`.
///
/// Get one with [`Runtime::handle`](crate::Runtime::handle) or, on a core,
/// [`Handle::current`]. [`Handle::spawn_on`] works from any thread:
///
/// ```
/// let rt = ringleader::Runtime::builder().cores(2).build().unwrap();
/// let handle = rt.handle();
/// let out = std::thread::spawn(move || {
///     // A plain thread that runs no core.
///     let h = handle.spawn_on(1, || async { ringleader::current_core() * 10 });
///     handle.block_on(1, || async move { h.await.unwrap() })
/// })
/// .join()
/// .unwrap();
/// assert_eq!(out, 10);
/// ```
#[derive(Clone)]
pub struct Handle {
    table: CoreTable,
}

impl Handle {
    pub(crate) fn new(table: CoreTable) -> Handle {
        Handle { table }
    }

    /// The handle of the runtime whose core runs on this thread.
    ///
    /// ```
    /// ringleader::block_on(async {
    ///     assert_eq!(ringleader::Handle::current().cores(), 1);
    /// });
    /// ```
    ///
    /// # Panics
    /// Outside a ringleader runtime (use [`Handle::try_current`] to get an `Option`).
    pub fn current() -> Handle {
        Self::try_current().expect("ringleader::Handle::current called outside a runtime")
    }

    /// The handle of the runtime whose core runs on this thread, or `None` on a thread that
    /// runs no core.
    pub fn try_current() -> Option<Handle> {
        context::with_core(|c| c.cores.borrow().clone())
            .flatten()
            .map(Handle::new)
    }

    /// Number of cores of the runtime.
    pub fn cores(&self) -> usize {
        self.table.len()
    }

    /// Spawn `f()` on core `core`: `f` is `Send` and runs there, the future it returns need
    /// not be `Send` and never leaves that core. Works from a core of any runtime and from a
    /// thread that runs none; the returned handle can be awaited anywhere (on a core, or with
    /// [`Handle::block_on`] / `futures::executor::block_on` on a plain thread).
    ///
    /// Cancellation: dropping the `JoinHandle` detaches the task;
    /// [`JoinHandle::abort`] drops its future on its core.
    ///
    /// # Panics
    /// If `core` is out of range.
    pub fn spawn_on<F, Fut>(&self, core: usize, f: F) -> JoinHandle<Fut::Output>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        let target = self.table.get(core).unwrap_or_else(|| {
            panic!(
                "Handle::spawn_on: core {core} out of range ({} cores)",
                self.table.len()
            )
        });
        spawn_on_shared(target, f)
    }

    /// Spawn a `Send` future on one of the runtime's cores, chosen round robin (tokio's
    /// `Handle::spawn`, for code that hands ready-made futures around). The future moves to
    /// its core once and is polled only there. For `!Send` work, build the future on the
    /// core with [`Handle::spawn_on`].
    ///
    /// ```
    /// let rt = ringleader::Runtime::builder().cores(2).build().unwrap();
    /// let handle = rt.handle();
    /// let hs: Vec<_> = (0..4).map(|i| handle.spawn(async move { i * 2 })).collect();
    /// let sum: i32 = hs.into_iter().map(|h| futures::executor::block_on(h).unwrap()).sum();
    /// assert_eq!(sum, 12);
    /// ```
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let core = NEXT.fetch_add(1, Ordering::Relaxed) % self.table.len();
        spawn_on_shared(&self.table[core], move || future)
    }

    /// Run `f()` on core `core` and block the calling thread until it finishes.
    ///
    /// For threads that run no core: calling it on a core's own thread would block that
    /// core's event loop, so it panics there instead of deadlocking.
    ///
    /// # Panics
    /// On a thread that runs a ringleader core, if `core` is out of range, if the task panics
    /// (the panic is resumed here), or if the core shuts down before the task finishes.
    pub fn block_on<F, Fut>(&self, core: usize, f: F) -> Fut::Output
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        assert!(
            context::with_core(|_| ()).is_none(),
            "Handle::block_on called on a core's thread (it would block the core); \
             .await a spawn_on handle instead"
        );
        let h = self.spawn_on(core, f);
        match futures::executor::block_on(h) {
            Ok(v) => v,
            Err(crate::JoinError::Panic(p)) => std::panic::resume_unwind(p),
            Err(e) => panic!("Handle::block_on: {e}"),
        }
    }

    /// Whether `self` and `other` name the same runtime.
    pub fn same_runtime(&self, other: &Handle) -> bool {
        Arc::ptr_eq(&self.table, &other.table)
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("cores", &self.table.len())
            .finish()
    }
}
