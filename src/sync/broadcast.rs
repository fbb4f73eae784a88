//! Every value to every receiver, on any cores (tokio's `broadcast`).
//!
//! The channel keeps the last `capacity` values (rounded up to a power of two); a receiver
//! that falls further behind gets `RecvError::Lagged(n)` with the number it missed, then
//! continues from the oldest value kept. Senders never wait. For tasks of one core,
//! [`local::broadcast`](super::local::broadcast) is cheaper.
//!
//! **Cancellation:** `recv()` is cancel-safe: a dropped call read nothing.
//!
//! ```
//! let rt = ringleader::Runtime::builder().cores(2).build().unwrap();
//! let (tx, _) = ringleader::sync::broadcast::channel::<&str>(16);
//! let listeners: Vec<_> = (0..2).map(|core| {
//!     let mut rx = tx.subscribe();
//!     rt.spawn_on(core, move || async move { rx.recv().await.unwrap() })
//! }).collect();
//! tx.send("hello").unwrap();
//! for l in listeners {
//!     assert_eq!(rt.block_on(|| async { l.await.unwrap() }), "hello");
//! }
//! ```

pub use tokio::sync::broadcast::*;
