//! # ringleader
//!
//! A thread-per-core async runtime for Linux io_uring: one ring per core, tasks woken straight
//! from the completion queue, and **groups**: a leader op leases a kernel-visible buffer and
//! member ops borrow it zero-copy (see `docs/design.md` for the design and its contract).
//!
//! ```
//! use std::time::Duration;
//!
//! ringleader::block_on(async {
//!     let h = ringleader::spawn(async {
//!         ringleader::time::sleep(Duration::from_millis(1)).await;
//!         ringleader::nop().await.unwrap();
//!         "done"
//!     });
//!     assert_eq!(h.await.unwrap(), "done");
//! });
//! ```
//!
//! A multi-core runtime runs one pinned thread per core:
//!
//! ```
//! let rt = ringleader::Runtime::builder().cores(2).build().unwrap();
//! let on1 = rt.spawn_on(1, || async { ringleader::current_core() });
//! assert_eq!(rt.block_on(|| async move { on1.await.unwrap() }), 1);
//! ```

pub use ringleader_executor::{
    BlockingHandle, Builder, Completable, Cqe, GroupOp, GroupOptions, GroupOutput, Handle,
    JoinError, JoinHandle, Lane, LocalRuntime, MemberLen, MemberPrep, MemberSpec, MultiCompletable,
    MultiOp, Op, Orphan, Runtime, SetupFlags, SetupInfo, Stats, YieldNow, ZeroFill, block_on,
    core_count, current_core, nop, nop_with_result, ring_fd, ring_id, setup_info, spawn,
    spawn_blocking, spawn_on, stats, with_submitter, yield_now,
};

/// Buffers: owned buffers, and (growing) registered pools and leases.
pub mod buf {
    pub use ringleader_buf::*;
}

pub use ringleader_buf::BufResult;
pub use ringleader_io::group;
pub use ringleader_io::lease_ops;
pub use ringleader_io::{fd, fs, net, pipe, signal, time};

pub mod compat;
pub mod sync;
pub mod task;
pub use ringleader_macros::{main, test};

// `select!`, `join!`, `try_join!`: tokio's macros under ringleader's path (src/macros.rs).
mod macros;
#[doc(hidden)]
pub use macros::__private;
