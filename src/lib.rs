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
//!         ringleader::ops::nop().await.unwrap();
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

// The root holds what an application uses; the ring-level building blocks are in `ops`,
// runtime introspection and set-up details in `runtime`.
pub use ringleader_executor::{
    Builder, Handle, JoinError, JoinHandle, Runtime, block_on, core_count, current_core, spawn,
    spawn_blocking, spawn_on, yield_now,
};

/// The runtime beyond the root's `Runtime`/`Builder`: a single-thread runtime, the set-up
/// the kernel granted, counters, and the blocking pool's handle.
pub mod runtime {
    pub use ringleader_executor::{
        BlockingHandle, LocalRuntime, SetupFlags, SetupInfo, Stats, YieldNow, setup_info, stats,
    };
}

pub mod ops {
    //! Ring-level building blocks, for people writing their own ops.
    //!
    //! An application does not need this module: `fs`, `net`, `pipe`, `time` and `group` are
    //! built on it. Here are the pieces they use: [`Op`] (a future owning an in-flight SQE's
    //! resources until its final CQE), [`Completable`]/[`MultiCompletable`] (what an op does with
    //! its CQE(s)), [`Orphan`] (what a dropped op leaves for the driver to release), [`Cqe`],
    //! [`Lane`] (ops ordered per socket), [`with_submitter`] (raw access to this core's ring), and
    //! the group primitives ([`GroupOp`], [`MemberSpec`], [`MemberLen`], [`MemberPrep`],
    //! [`ZeroFill`], [`GroupOptions`], the ring-level [`GroupOutput`]) that `ringleader::group`
    //! wraps. The rules they keep are in `docs/design.md` §2 and §4.
    //!
    //! ```
    //! ringleader::block_on(async {
    //!     ringleader::ops::nop().await.unwrap();
    //! });
    //! ```

    pub use ringleader_executor::{
        Completable, Cqe, GroupOp, GroupOptions, GroupOutput, Lane, MemberLen, MemberPrep,
        MemberSpec, MultiCompletable, MultiOp, Op, Orphan, ZeroFill, nop, nop_with_result, ring_fd,
        ring_id, with_submitter,
    };
    pub use ringleader_io::uring_cmd::{CMD_MAX, Cmd, UringCmd, uring_cmd};
}

/// Buffers: owned buffers, and (growing) registered pools and leases.
pub mod buf {
    pub use ringleader_buf::*;
}

pub use ringleader_buf::BufResult;
pub use ringleader_io::cmd_slot;
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

/// The README's code blocks, compiled and run as doctests (`cargo test --doc`).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The Rust code blocks of `docs/` (the ones not marked `ignore`), compiled as doctests,
/// so the guides cannot drift from the API.
#[cfg(doctest)]
pub mod docs_doctests {
    #[doc = include_str!("../docs/design.md")]
    pub struct Design;
    #[doc = include_str!("../docs/groups.md")]
    pub struct Groups;
    #[doc = include_str!("../docs/from-tokio.md")]
    pub struct FromTokio;
    #[doc = include_str!("../docs/cancellation.md")]
    pub struct Cancellation;
    #[doc = include_str!("../docs/kernel-notes.md")]
    pub struct KernelNotes;
    #[doc = include_str!("../docs/operating.md")]
    pub struct Operating;
    #[doc = include_str!("../docs/proxy.md")]
    pub struct Proxy;
    #[cfg(feature = "tokio")]
    #[doc = include_str!("../docs/tokio-interop.md")]
    pub struct TokioInterop;
}
