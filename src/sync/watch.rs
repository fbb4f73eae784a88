//! One value that tasks on any cores watch for changes (tokio's `watch`).
//!
//! Receivers see the **latest** value: sends between two `changed().await`s coalesce into
//! one wake-up. A typical use is configuration or a shutdown flag that every core watches.
//! For tasks of one core, [`local::watch`](super::local::watch) is cheaper.
//!
//! **Cancellation:** `changed()` is cancel-safe; dropping it marks nothing as seen. Do not
//! hold a `borrow()` across `.await`: it holds a read lock that `send` waits for.
//!
//! ```
//! let rt = ringleader::Runtime::builder().cores(2).build().unwrap();
//! let (tx, mut rx) = ringleader::sync::watch::channel(false);
//! let watcher = rt.spawn_on(1, move || async move {
//!     while !*rx.borrow_and_update() {
//!         rx.changed().await.unwrap();
//!     }
//!     "stopping"
//! });
//! tx.send(true).unwrap(); // from this thread, which runs no core
//! assert_eq!(rt.block_on(|| async { watcher.await.unwrap() }), "stopping");
//! ```

pub use tokio::sync::watch::*;
