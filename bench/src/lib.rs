//! ringleader's benchmark harness: ringleader beside raw io_uring and peer runtimes, on the
//! same workload, in one run, on one pinned CPU.
//!
//! # Model
//!
//! Each bench binary (`src/bin/*.rs`) measures a few **rows**. A row is one workload on one
//! runtime, run once untimed (warm-up) and then `R` times; each run returns the wall time of
//! its timed part only (runtime and ring construction are outside it). A row is reported as
//! the median of its runs with the min and max beside it, and rows that compete are printed
//! side by side with the ratio of their medians.
//!
//! - [`nop`]: `IORING_OP_NOP` round trips through ringleader and through a raw `io-uring`
//!   loop on a ring set up exactly like ringleader's (the limit a runtime can approach).
//! - [`spawn`]: the cost of spawning and joining a trivial task, on ringleader, tokio's
//!   current-thread runtime and async-executor's `LocalExecutor`.
//! - [`procfs`]: a server process's CPU time and how busy the CPUs are, for the benches that
//!   run servers as child processes (`echo`, `nbd`).
//!
//! # Invariants
//!
//! - Everything runs on the calling thread, which [`pin::pin_to_cpu`] pins first, so that the
//!   rings' deferred task work and the timed loops share one CPU.
//! - Timed parts never print or allocate beyond what the workload itself does.
//! - Tests never assert timings; nothing here is built by `cargo test` at the repository root.

pub mod measure;
pub mod nop;
pub mod pin;
pub mod procfs;
pub mod spawn;
pub mod table;
