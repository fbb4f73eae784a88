//! A one-value channel between tasks on any cores or threads (tokio's `oneshot`).
//!
//! `Sender::send(value)` returns `Err(value)` if the receiver is gone; the `Receiver` is a
//! future of `Result<T, RecvError>`. `Receiver::blocking_recv` is for threads that run no
//! core. For two tasks of one core, [`local::oneshot`](super::local::oneshot) is cheaper.
//!
//! **Cancellation:** a `Receiver` polled and put aside loses nothing; dropping it closes the
//! channel (`Sender::closed()` resolves, a later `send` fails with the value).
//!
//! ```
//! let rt = ringleader::Runtime::builder().cores(2).build().unwrap();
//! let (tx, rx) = ringleader::sync::oneshot::channel();
//! rt.spawn_on(1, move || async move { tx.send(ringleader::current_core()).unwrap() });
//! assert_eq!(rt.block_on(|| async { rx.await }), Ok(1)); // awaited on core 0
//! ```

pub use tokio::sync::oneshot::*;
