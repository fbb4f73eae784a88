//! ringleader's buffers: owned buffers, registered pools, provided-buffer rings, pipes, and
//! the lease that lends their memory to the kernel.
//!
//! # Model
//!
//! The kernel may read or write an op's buffer until the op's final CQE, so ops take buffers
//! **by value** and give them back in a [`BufResult`], on success and on error:
//!
//! - [`IoBuf`] / [`IoBufMut`]: owned buffers with a stable address (`Vec<u8>`, `Box<[u8]>`,
//!   `&'static [u8]`, [`AlignedBuf`] for `O_DIRECT`), and [`Slice`] (`buf.slice(range)`) for
//!   a range of one that keeps ownership.
//! - [`FixedPool`]: memory registered once as fixed buffers, handed out as [`Lease`]s; asking
//!   for a lease waits while the pool is empty (backpressure).
//! - [`BufRing`]: a provided-buffer ring; the kernel picks a buffer for a recv and the
//!   chosen buffer becomes a [`Lease`] that returns to the ring when it ends.
//! - [`PipeLease`]: a pipe pair holding data in kernel pages for splice and tee.
//!
//! ```
//! use ringleader::buf::{FixedPool, IoBuf};
//! ringleader::block_on(async {
//!     let pool = FixedPool::builder().class(4096, 8).class(65536, 2).build().unwrap();
//!     let mut lease = pool.lease(10_000).await.unwrap(); // from the 64 KiB class
//!     lease.extend_from_slice(b"header");
//!     assert_eq!((lease.capacity(), lease.bytes_init()), (10_000, 6));
//! });
//! ```
//!
//! # Invariants
//!
//! - **The lease safety rule.** A lease's memory is reused only after every CQE (and every
//!   `SEND_ZC` notification) of every op that referenced it has been reaped. The count that
//!   guards reuse lives in values the runtime owns (the op data holds the `Lease` or a
//!   [`LeaseRef`]), so it holds under drop, panic and `mem::forget`: a dropped op returns the
//!   slot at its final CQE, a forgotten one leaks it. See `lease.rs`.
//! - **The lease access rule.** Each slot also counts the kernel *writers* and *readers* in
//!   flight (a [`LeaseRef`] of kind [`LeaseAccess::KernelWriter`] or
//!   [`LeaseAccess::KernelReader`] in an op's data). Safe code gets no `&[u8]` of a lease
//!   while a writer is in flight, and no `&mut [u8]` while a writer or reader is: the access
//!   panics, or its `try_` form returns [`LeaseBusy`]. A dropped op keeps its count until its
//!   final CQE, a forgotten one forever: the lease is then busy, never racy.
//! - **One core.** Pools, rings and leases are `!Send`: registrations belong to one ring,
//!   which belongs to one core.
//! - **Errors** are `std::io::Error` with the kernel's errno kind and context; a registration
//!   refused for want of locked memory carries a [`MemlockError`] that says what to do.
//!   Nothing here prints or exits.
//!
//! Minimum kernel: 5.19 for pools (sparse table) and buffer rings; 6.1 for
//! `STATX_DIOALIGN` (older kernels fall back to page alignment).

mod aligned;
mod fixed;
mod lease;
mod memlock;
mod owned;
mod pipe;
mod region;
mod ring;
mod slice;
mod sys;
mod table;

pub use aligned::{AlignedBuf, DioAlign, dio_align};
pub use fixed::{FixedPool, FixedPoolBuilder, LeaseFuture};
pub use lease::{Lease, LeaseAccess, LeaseBusy, LeaseRef};
pub use memlock::MemlockError;
pub use owned::{BufResult, IoBuf, IoBufMut};
pub use pipe::{PipeLease, PipeRef};
pub use ring::{BufRing, WaitReturned};
pub use slice::Slice;
