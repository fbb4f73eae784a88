//! Multi-producer, single-consumer queues for the tasks of one core (tokio's `mpsc`).
//!
//! - [`channel(capacity)`](channel): **bounded**. At most `capacity` values are queued;
//!   [`Sender::send`] waits for a free slot, senders are served in the order they started
//!   waiting, and each value the receiver takes frees one slot for the longest-waiting
//!   sender. This is the backpressure: a fast producer runs at the consumer's pace.
//! - [`unbounded_channel()`](unbounded_channel): `send` is synchronous and never waits.
//!
//! Values come out in the order they were queued. When every sender is gone the receiver
//! drains what is queued, then gets `None`. When the receiver closes or is dropped, sends
//! fail with [`error::SendError`] carrying the value back.
//!
//! **Cancellation.** `recv`/`recv_many` are cancel-safe: a dropped call took nothing.
//! `reserve` is cancel-safe: a slot handed to a dropped `reserve` goes to the next waiting
//! sender. A dropped `send` gives up its place the same way, but its value is dropped with it
//! (as in tokio); to keep the value under `select!`, `reserve()` first, then
//! [`Permit::send`].
//!
//! ```
//! use ringleader::sync::local::mpsc;
//!
//! ringleader::block_on(async {
//!     let (tx, mut rx) = mpsc::channel(2);
//!     let producer = ringleader::spawn(async move {
//!         for i in 0..10 {
//!             tx.send(i).await.unwrap(); // waits while 2 values are queued
//!         }
//!     });
//!     let mut got = Vec::new();
//!     while let Some(v) = rx.recv().await {
//!         got.push(v);
//!     }
//!     producer.await.unwrap();
//!     assert_eq!(got, (0..10).collect::<Vec<_>>());
//! });
//! ```

mod bounded;
mod chan;
pub mod error;
mod unbounded;

pub use bounded::{Permit, Receiver, Sender, channel};
pub use unbounded::{UnboundedReceiver, UnboundedSender, unbounded_channel};
