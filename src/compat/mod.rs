//! Adapters that let crates written for other runtimes' traits run on ringleader.
//!
//! ringleader's streams implement `futures::io::{AsyncRead, AsyncBufRead, AsyncWrite}`
//! (see [`net`](crate::net) and [`fs`](crate::fs)); crates written against those traits need
//! nothing from here. This module covers the two other trait families the ecosystem uses:
//!
//! - `hyper` (cargo feature `hyper`): hyper 1.x's runtime traits, `hyper::rt::{Read,
//!   Write, Executor, Timer, Sleep}`, so hyper's HTTP/1 and HTTP/2 servers and clients run
//!   on ringleader's cores;
//! - `tokio` (cargo feature `tokio`): tokio's `AsyncRead`/`AsyncWrite`, for crates such
//!   as `tokio-util`'s codecs that are written against them. `docs/tokio-interop.md` says
//!   what that costs and how it compares with `tokio-util`'s own compat layer.
//!
//! # Invariants
//!
//! Nothing here touches an op or a buffer the kernel may be using: the adapters sit on the
//! futures-io traits, whose implementations keep in-flight buffers inside their ops. There is
//! no `unsafe` in this module. Types that the other runtime requires to be `Send + Sync`
//! (`hyper::HyperSleep`) hold no op and no `Rc`; they talk to the core that serves them
//! through atomics and a mutex.

#[cfg(feature = "hyper")]
pub mod hyper;

#[cfg(feature = "tokio")]
pub mod tokio;
