//! ringleader's executor: one io_uring per thread, tasks woken straight from the CQ.
//!
//! # Model
//!
//! A **core** is one thread with one ring ([`driver`](crate::Builder)), one local run queue
//! of tasks, and an event loop. An **op** ([`Op`]) is a future that owns every resource its
//! SQE points at; its SQE is pushed when the op is created and goes to the kernel with the
//! core's next `io_uring_enter`, together with every other SQE pushed in the same tick. A CQE
//! stores the result in the op's slot and wakes the task that awaits it.
//!
//! ```
//! use ringleader::{block_on, spawn, ops::nop};
//!
//! block_on(async {
//!     let tasks: Vec<_> = (0..4).map(|i| spawn(async move {
//!         nop().await.unwrap();
//!         i * 2
//!     })).collect();
//!     let mut sum = 0;
//!     for t in tasks {
//!         sum += t.await.unwrap();
//!     }
//!     assert_eq!(sum, 12);
//! });
//! ```
//!
//! # Invariants
//!
//! - **Ownership across the kernel boundary.** From the push of an SQE until its final CQE
//!   (the one without `IORING_CQE_F_MORE`), the op's resources are owned by the op or, once
//!   its future is dropped, by its slot. Dropping parks them and pushes `ASYNC_CANCEL`; they
//!   are released at the final CQE. `mem::forget` of an op leaks them, never frees them.
//! - **No lost or doubled SQE.** A full SQ is flushed and the push retried; SQEs the kernel
//!   has not consumed stay queued.
//! - **One thread per task.** A task is polled and dropped only on its core, so `spawn`
//!   takes `!Send` futures. Cross-core wakes travel by `IORING_OP_MSG_RING`.
//! - **Shutdown** drops every task on its own core, cancels and reaps every op, then frees the
//!   slots and the ring; an op the kernel refuses to finish is leaked, not freed.
//!
//! Minimum kernel: 6.1 for the default flags (older kernels fall back, see [`SetupInfo`]);
//! 6.13 for cross-thread wake-ups from threads that run no core.

mod blocking;
mod context;
mod core;
mod driver;
mod group;
mod handle;
mod lane;
mod lifecycle;
mod op;
mod ops;
mod ring;
mod runtime;
mod setup;
mod shared;
mod stats;
mod sys;
mod task;

pub use blocking::{BlockingHandle, spawn_blocking};
pub use group::{GroupOp, GroupOptions, GroupOutput, MemberLen, MemberPrep, MemberSpec, ZeroFill};
pub use handle::Handle;
pub use lane::Lane;
pub use lifecycle::Cqe;
pub use op::{Completable, MultiCompletable, MultiOp, Op, Orphan};
pub use ops::{Nop, nop, nop_with_result};
pub use runtime::{Builder, LocalRuntime, Runtime};
pub use setup::{SetupFlags, SetupInfo};
pub use stats::Stats;
pub use sys::{CQE_F_MORE, CQE_F_NOTIF};
pub use task::{JoinError, JoinHandle, YieldNow, spawn, spawn_on, yield_now};

/// Run `fut` on a new single-core runtime on this thread, with default settings.
///
/// # Panics
/// If the ring cannot be set up (the message says what is missing and what to do; use
/// [`Builder::build_local`] to handle that as an error), or inside another runtime.
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    let rt = Builder::new()
        .build_local()
        .unwrap_or_else(|e| panic!("ringleader::block_on: {e}"));
    rt.block_on(fut)
}

/// The index of the core running the current task.
///
/// # Panics
/// Outside a ringleader runtime.
pub fn current_core() -> usize {
    context::with_core(|c| c.shared.id).expect("ringleader::current_core outside a runtime")
}

/// Number of cores of the current runtime (1 for a [`LocalRuntime`]).
///
/// # Panics
/// Outside a ringleader runtime.
pub fn core_count() -> usize {
    context::with_core(|c| c.cores.borrow().as_ref().map_or(1, |t| t.len()))
        .expect("ringleader::core_count outside a runtime")
}

/// The current core's ring counters (see [`Stats`]).
///
/// # Panics
/// Outside a ringleader runtime.
pub fn stats() -> Stats {
    context::with_core(|c| {
        let mut s = c.stats();
        s.tasks_active = task::active_tasks() as u64;
        s
    })
    .expect("ringleader::runtime::stats outside a runtime")
}

/// What the current core's ring was set up with, including refused flags and why.
///
/// # Panics
/// Outside a ringleader runtime.
pub fn setup_info() -> SetupInfo {
    context::with_core(|c| c.driver.borrow().info().clone())
        .expect("ringleader::runtime::setup_info outside a runtime")
}

/// Run `f` with the current core's ring submitter, for registration calls (fixed buffers,
/// provided-buffer rings, files). Registrations are per ring, hence per core.
///
/// `f` runs outside the runtime's internal borrows, so it may use the runtime freely: create,
/// await-free poll or drop ops, read [`stats`].
///
/// # Panics
/// Outside a ringleader runtime.
pub fn with_submitter<R>(f: impl FnOnce(io_uring::Submitter<'_>) -> R) -> R {
    let ring = context::with_core(|c| c.driver.borrow().ring())
        .expect("ringleader::ops::with_submitter outside a runtime");
    f(ring.submitter())
}

/// An identity of the current core's ring, unique within the process and never reused, or
/// `None` outside a runtime. Registrations (fixed buffers, buffer rings) belong to one ring:
/// pools and buffer rings record it to tell when they are used on another.
#[inline]
pub fn ring_id() -> Option<u64> {
    context::with_core(|c| c.driver_id)
}

/// The raw fd of the current core's ring (for `IORING_REGISTER_CLONE_BUFFERS` sources).
///
/// # Panics
/// Outside a ringleader runtime.
pub fn ring_fd() -> i32 {
    context::with_core(|c| c.driver.borrow().ring_fd())
        .expect("ringleader::ops::ring_fd outside a runtime")
}

/// Push several SQEs all together or not at all, each becoming an op (used by kernel-linked
/// chains, which must never be half-queued).
///
/// # Safety
/// As for [`Op::submit`], for each entry and its data.
pub unsafe fn submit_linked<T: Completable>(
    entries: Vec<(io_uring::squeue::Entry, T)>,
) -> Vec<Op<T>> {
    // SAFETY: forwarded to the caller.
    unsafe { op::submit_all(entries) }
}
