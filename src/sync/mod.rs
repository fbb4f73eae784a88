//! Synchronisation between tasks: channels, locks, semaphores, notifications, with tokio's
//! names and signatures, in two flavours.
//!
//! | | `ringleader::sync::*` (cross-core) | [`ringleader::sync::local::*`](local) (one core) |
//! |---|---|---|
//! | who may share it | tasks on any core, and plain threads | tasks of one core |
//! | handles | `Send + Sync` (for `Send` values) | `!Send` (`Rc`), locks `!Sync` |
//! | built on | tokio's runtime-agnostic `sync` module | `Rc`/`Cell`/`RefCell`, no atomics |
//! | a wake of a task on another core | travels by `MSG_RING` into that core's ring | cannot happen |
//! | `blocking_*` methods | yes, for threads that run no core | none |
//!
//! Both flavours have [`oneshot`], [`mpsc`] (bounded with backpressure, and unbounded),
//! [`Mutex`], [`RwLock`], [`Notify`], [`Semaphore`], [`watch`] and [`broadcast`]; the
//! cross-core flavour also has tokio's [`Barrier`], [`OnceCell`] and [`SetOnce`]. Code
//! written against `tokio::sync` ports by replacing `tokio::sync` with `ringleader::sync`
//! (or `ringleader::sync::local`, with `Rc` for `Arc`).
//!
//! # Which flavour
//!
//! A thread-per-core program keeps most state per core, so most synchronisation is between
//! tasks of one core: use [`local`]. It costs a `Cell` update where the cross-core flavour
//! pays atomic read-modify-writes, and its wakes are a push onto the core's own run queue.
//! Use the cross-core flavour where a value really crosses cores: a task handing work to
//! another core, a shutdown signal every core watches, a connection count shared by all.
//!
//! # How a cross-core wake travels
//!
//! These primitives park a waiting task by keeping its std [`Waker`](std::task::Waker) and
//! wake it by calling it. A ringleader waker knows its task's core: called on that core it
//! pushes the task onto the local run queue; called on another core it pushes the task onto
//! the owner's injection queue and sends an `IORING_OP_MSG_RING` CQE into the owner's ring
//! (from the caller's own ring, with its next submit), which ends the owner's wait in
//! `io_uring_enter`; called from a thread that runs no core (a `std::thread`, the blocking
//! pool) it posts that CQE with `IORING_REGISTER_SEND_MSG_RING` (Linux 6.13+). So any crate
//! built on `Waker`s works across cores; nothing here knows about rings.
//!
//! # Why these crates
//!
//! The cross-core flavour **is** tokio's `sync` module (the `tokio` crate with only its
//! `sync` feature: no tokio runtime, reactor or timer is built, and tokio documents these
//! types as runtime-agnostic). It was chosen over assembling `async-lock` (locks,
//! semaphore), `async-channel` (mpsc), `async-broadcast` and futures' `oneshot`, because:
//!
//! - the goal is that tokio code ports by search-and-replace, and only tokio's own types
//!   have tokio's signatures and error types exactly (`acquire_many`, `close` and
//!   `AcquireError` on `Semaphore`, `lock_owned`, `watch`'s `changed`/`borrow_and_update`,
//!   `SendError<T>` carrying the value, `broadcast`'s `Lagged(n)`); wrapping the others to
//!   match would be as much code as the primitives, and new bugs;
//! - it is fair where it matters (FIFO `Semaphore`, `Mutex`, `RwLock` and senders), its
//!   cancellation semantics are written down per method, and it is tested with loom;
//! - there is no `watch` in the others, and `async-broadcast`'s overflow mode reports lag
//!   differently;
//! - it was already in the dependency tree (for `compat::tokio`).
//!
//! The single-core flavour is written here (about 3,000 lines with docs and unit tests; the
//! only `unsafe` is in the lock guards' accessors and `OwnedRwLockWriteGuard::downgrade`,
//! each argued): the crates above all pay for atomics and cross-thread
//! wake-ups, and the `!Send` crates that exist (`local-sync`, `local-channel`,
//! futures-intrusive's `Local*` types) each cover a few of the eight primitives, with other
//! names. Its [`local::Semaphore`] is a fair batch semaphore over an O(1) wait list, and
//! `Mutex`, `RwLock` and bounded `mpsc` are built on it, as in tokio.
//!
//! **Measured** with `cargo run --release --example sync_pingpong` (best of 5 runs, on the
//! project's 2-CPU machine while other benchmarks kept its load average near 4, so read the
//! ratios rather than the absolute numbers). A value's round trip between two tasks over two
//! bounded channels: `local::mpsc` on one core 0.22-0.25 µs; `sync::mpsc` on one core
//! 0.56-1.2 µs (2.3-5.6x); futures' `mpsc` on one core 0.44-0.63 µs; `sync::mpsc` between
//! core 0 and core 1 about 100 µs, with exactly one `MSG_RING` wake-up received by core 0
//! per round trip (each core parks in `io_uring_enter` in between, so this is two thread
//! wake-ups, which the loaded machine made slow). An uncontended `lock().await` + unlock:
//! `local::Mutex` 8 ns, `sync::Mutex` 40-50 ns.
//!
//! # Cancellation
//!
//! Dropping a future that waits loses nothing and keeps the order of those behind it, in
//! both flavours:
//!
//! - `recv()` (mpsc, broadcast), `changed()` (watch), and a `oneshot::Receiver` put aside
//!   take nothing: the value stays for the next call;
//! - a waiting `lock()`, `read()`, `write()`, `acquire()` or mpsc `reserve()` leaves the
//!   queue; if the lock or permits had already been handed to it, they go to the next waiter;
//! - a waiting mpsc `send()` does the same, and its value is dropped with it (use
//!   `reserve()` then `Permit::send` to keep the value under `select!`);
//! - [`Notify`]: `notify_one` with nobody waiting stores one permit for the next
//!   `notified()`; a `Notified` dropped after `notify_one` chose it passes the notification
//!   on; `notify_waiters` wakes every `Notified` that exists at the call (polled or not) and
//!   stores nothing.
//!
//! # Cautions (cross-core flavour)
//!
//! - `blocking_recv`, `blocking_lock`, `blocking_send` and friends park the calling thread:
//!   call them only from threads that run no core (a `std::thread`, [`spawn_blocking`]).
//!   On a core they stop the core, and every task on it, including the one that would
//!   have woken them. (tokio panics in its own runtime's threads; ringleader's are not
//!   tokio's, so nothing detects it.)
//! - A `std` guard (`MutexGuard` of `std::sync`) must not be held across `.await`; these
//!   async locks are made for that.
//! - Wakes from threads that run no core need Linux 6.13 (`IORING_REGISTER_SEND_MSG_RING`);
//!   wakes between cores need only `MSG_RING` (Linux 5.18).
//! - `broadcast::channel(n)` rounds `n` up to a power of two (tokio's rule); the local one
//!   holds exactly `n`.
//!
//! [`spawn_blocking`]: crate::spawn_blocking
//!
//! # Example
//!
//! A task on core 1 hands values to a task on core 0 over a bounded channel and gets an
//! answer back on a oneshot; a plain thread bumps a shared counter under the same `Mutex`.
//!
//! ```
//! use std::sync::Arc;
//! use ringleader::sync::{Mutex, mpsc, oneshot};
//!
//! let rt = ringleader::Runtime::builder().cores(2).build().unwrap();
//! let (tx, mut rx) = mpsc::channel::<u64>(4);
//! let (done_tx, done_rx) = oneshot::channel();
//! let total = Arc::new(Mutex::new(0u64));
//!
//! let t = Arc::clone(&total);
//! let consumer = rt.spawn_on(0, move || async move {
//!     while let Some(v) = rx.recv().await {
//!         *t.lock().await += v;
//!     }
//!     done_tx.send(ringleader::current_core()).unwrap();
//! });
//! rt.spawn_on(1, move || async move {
//!     for v in 1..=10 {
//!         tx.send(v).await.unwrap(); // waits while 4 are queued
//!     }
//! });
//! let t = Arc::clone(&total);
//! std::thread::spawn(move || *t.blocking_lock() += 100).join().unwrap();
//!
//! let core = rt.block_on(move || async move { done_rx.await.unwrap() });
//! rt.block_on(move || async move { consumer.await.unwrap() });
//! assert_eq!(core, 0);
//! assert_eq!(*total.blocking_lock(), 155);
//! ```

pub mod broadcast;
pub mod local;
pub mod mpsc;
pub mod oneshot;
pub mod watch;

pub use tokio::sync::{
    AcquireError, Barrier, BarrierWaitResult, MappedMutexGuard, Mutex, MutexGuard, Notify,
    OnceCell, OwnedMappedMutexGuard, OwnedMutexGuard, OwnedRwLockMappedWriteGuard,
    OwnedRwLockReadGuard, OwnedRwLockWriteGuard, OwnedSemaphorePermit, RwLock,
    RwLockMappedWriteGuard, RwLockReadGuard, RwLockWriteGuard, Semaphore, SemaphorePermit,
    SetError, SetOnce, SetOnceError, TryAcquireError, TryLockError,
};

/// Named futures, at tokio's path (`sync::futures::Notified`).
pub mod futures {
    pub use tokio::sync::futures::{Notified, OwnedNotified};
}
