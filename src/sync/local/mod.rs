//! The single-core flavour: the same primitives for tasks that share one core.
//!
//! In a thread-per-core runtime most synchronisation is between tasks of one core: a
//! connection's reader and writer, a per-core cache, a per-core worker pool. These types are
//! built for that: `Rc`, `Cell` and `RefCell`, no atomics and no locks, and they never reach
//! another core's ring. Channel handles, guards and owned permits are `!Send` (the compiler
//! keeps them on their core); `Mutex`, `RwLock`, `Semaphore` and `Notify` are `!Sync`, so
//! they can move to another thread only while nobody uses them. Use
//! [`ringleader::sync`](crate::sync) for anything that crosses cores or threads.
//!
//! ```compile_fail
//! // A local channel cannot reach another core: its handles are `!Send`.
//! let (tx, _rx) = ringleader::sync::local::mpsc::channel::<u8>(1);
//! std::thread::spawn(move || drop(tx));
//! ```
//!
//! Names and signatures are tokio's (`Rc` where tokio takes an `Arc`), so
//! `tokio::sync::X` ports to `ringleader::sync::local::X`. There are no `blocking_*`
//! methods: a `!Send` handle cannot be on a thread that runs no core, and blocking the core
//! would block the task that should wake it.
//!
//! | primitive | waits are served | dropping a waiting future |
//! |---|---|---|
//! | [`Semaphore`] | FIFO; permits go to the head first, a large `acquire_many` is not starved | leaves the queue; permits it was given go to the next waiter |
//! | [`Mutex`], [`RwLock`] | FIFO (a `Semaphore` underneath); readers behind a waiting writer wait | as `Semaphore`: the next waiter gets the lock |
//! | [`Notify`] | `notify_one`: oldest first; `notify_waiters`: all | a `notify_one` it was chosen for goes to the next waiter (or is stored) |
//! | [`mpsc`] | values FIFO; waiting senders FIFO | `recv`: nothing taken; `reserve`: slot passed on; `send`: slot passed on, value dropped |
//! | [`oneshot`] | — | the `Receiver` may be polled again later; the value waits |
//! | [`watch`] | every receiver sees the latest value | `changed`: nothing marked seen |
//! | [`broadcast`] | every receiver sees every value, or `Lagged(n)` | `recv`: nothing read |
//!
//! ```
//! use std::rc::Rc;
//! use ringleader::sync::local::{Mutex, mpsc};
//!
//! ringleader::block_on(async {
//!     let hits = Rc::new(Mutex::new(0u32));
//!     let (tx, mut rx) = mpsc::channel::<u32>(8);
//!     for worker in 0..3 {
//!         let (hits, tx) = (Rc::clone(&hits), tx.clone());
//!         ringleader::spawn(async move {
//!             *hits.lock().await += 1;
//!             tx.send(worker).await.unwrap();
//!         });
//!     }
//!     drop(tx);
//!     let mut done = 0;
//!     while rx.recv().await.is_some() {
//!         done += 1;
//!     }
//!     assert_eq!((done, *hits.lock().await), (3, 3));
//! });
//! ```

pub mod broadcast;
pub mod mpsc;
mod mutex;
mod notify;
pub mod oneshot;
mod rwlock;
mod semaphore;
mod wait_list;
pub mod watch;

pub use mutex::{Mutex, MutexGuard, OwnedMutexGuard, TryLockError};
pub use notify::Notify;

/// Named futures, at tokio's path (`sync::futures::Notified`).
pub mod futures {
    pub use super::notify::Notified;
}
pub use rwlock::{
    OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
};
pub use semaphore::{
    AcquireError, OwnedSemaphorePermit, Semaphore, SemaphorePermit, TryAcquireError,
};
