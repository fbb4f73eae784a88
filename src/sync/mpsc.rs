//! Multi-producer, single-consumer queues between tasks on any cores or threads (tokio's
//! `mpsc`).
//!
//! [`channel(capacity)`](channel) is bounded: `send().await` waits while `capacity` values
//! are queued, senders are served in the order they started waiting, and each value the
//! receiver takes lets the longest-waiting sender in. [`unbounded_channel()`] never waits.
//! Send errors carry the value back ([`error::SendError<T>`](error::SendError)).
//! `blocking_send`/`blocking_recv` are for threads that run no core. For tasks of one core,
//! [`local::mpsc`](super::local::mpsc) is cheaper (see the measurement in
//! [`sync`](super)).
//!
//! **Cancellation:** `recv` and `reserve` are cancel-safe; a dropped `send` gives up its
//! place (a slot it was just handed goes to the next sender) and its value is dropped.
//!
//! ```
//! let rt = ringleader::Runtime::builder().cores(2).build().unwrap();
//! let (tx, mut rx) = ringleader::sync::mpsc::channel(1);
//! rt.spawn_on(1, move || async move {
//!     for i in 0..3 {
//!         tx.send(i).await.unwrap(); // each waits until core 0 took the one before
//!     }
//! });
//! let got = rt.block_on(move || async move {
//!     let mut got = Vec::new();
//!     while let Some(v) = rx.recv().await {
//!         got.push(v);
//!     }
//!     got
//! });
//! assert_eq!(got, [0, 1, 2]);
//! ```

pub use tokio::sync::mpsc::*;
