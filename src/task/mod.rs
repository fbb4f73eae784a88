//! Tasks, under tokio's names: [`spawn`], [`spawn_local`], [`spawn_on`],
//! [`spawn_blocking`], [`yield_now`], [`JoinHandle`], [`JoinError`], [`JoinSet`] and the
//! [`AbortHandle`] its `spawn` returns.
//!
//! # Every task is core-local
//!
//! A ringleader task lives on the core that spawned it (or the core named by `spawn_on`)
//! for its whole life: it is polled and dropped on that thread only, so its future may be
//! `!Send` (hold an `Rc`, a `RefCell`, a socket). So [`spawn`] is what tokio calls
//! `spawn_local`, without a `LocalSet`: there is no work-stealing pool to keep `!Send` work
//! away from, hence nothing like `tokio::task::LocalSet` here (and none is needed).
//! [`spawn_local`] is the same function under tokio's other name, so ported code compiles
//! either way. Spreading work over cores is explicit: [`spawn_on`] (from a core) or
//! [`Handle::spawn_on`](crate::Handle::spawn_on) (from any thread) take a `Send` closure that
//! builds the future on the target core.
//!
//! ```
//! use ringleader::task::{self, JoinSet};
//!
//! ringleader::block_on(async {
//!     let shared = std::rc::Rc::new(std::cell::Cell::new(0)); // !Send is fine
//!     let mut set = JoinSet::new();
//!     for i in 0..4 {
//!         let shared = shared.clone();
//!         set.spawn(async move {
//!             task::yield_now().await;
//!             shared.set(shared.get() + i);
//!             i
//!         });
//!     }
//!     let mut sum = 0;
//!     while let Some(res) = set.join_next().await {
//!         sum += res.unwrap();
//!     }
//!     assert_eq!((sum, shared.get()), (6, 6));
//! });
//! ```

mod abort;
mod join_set;

pub use abort::AbortHandle;
pub use join_set::JoinSet;
pub use ringleader_executor::{
    BlockingHandle, JoinError, JoinHandle, YieldNow, spawn, spawn_blocking, spawn_on, yield_now,
};

/// [`spawn`] under tokio's name for spawning a `!Send` future: every ringleader task is
/// local to its core, so the two are the same function and no `LocalSet` is needed.
///
/// ```
/// ringleader::block_on(async {
///     let rc = std::rc::Rc::new(7);
///     let h = ringleader::task::spawn_local(async move { *rc });
///     assert_eq!(h.await.unwrap(), 7);
/// });
/// ```
///
/// # Panics
/// Outside a ringleader runtime.
pub fn spawn_local<F>(future: F) -> JoinHandle<F::Output>
where
    F: std::future::Future + 'static,
    F::Output: 'static,
{
    spawn(future)
}
