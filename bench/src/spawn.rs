//! Spawn + join cost of a trivial task (it returns an integer), per runtime.
//!
//! Two shapes: **batch** spawns `n` tasks, then awaits every handle in order (the queue grows
//! to `n`); **sequential** spawns one task and awaits it before spawning the next (the queue
//! never holds more than one). The timed part is the whole loop inside the runtime's
//! `block_on`; runtime construction is outside it.
//!
//! Peers: tokio's current-thread runtime with `tokio::spawn` inside `Runtime::block_on` (the
//! idiomatic form for a `Send` task, as this one is) and with `tokio::task::spawn_local`
//! inside a `LocalSet` (the form that accepts `!Send` futures, as `ringleader::spawn` does);
//! async-executor's `LocalExecutor` driven by `futures_lite::future::block_on(ex.run(..))`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use async_executor::LocalExecutor;
use ringleader::runtime::LocalRuntime;

/// The order in which tasks are spawned and joined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Spawn all `n`, then await all `n`.
    Batch,
    /// Spawn one, await it, repeat `n` times.
    Sequential,
}

/// ringleader: `ringleader::spawn` inside `LocalRuntime::block_on`.
pub fn ringleader(rt: &LocalRuntime, n: u64, shape: Shape) -> Duration {
    rt.block_on(async move {
        let start = Instant::now();
        let mut sum = 0u64;
        match shape {
            Shape::Batch => {
                let handles: Vec<_> = (0..n)
                    .map(|i| ringleader::spawn(async move { black_box(i) }))
                    .collect();
                for h in handles {
                    sum += h.await.expect("ringleader task failed");
                }
            }
            Shape::Sequential => {
                for i in 0..n {
                    sum += ringleader::spawn(async move { black_box(i) })
                        .await
                        .expect("ringleader task failed");
                }
            }
        }
        let elapsed = start.elapsed();
        check_sum(sum, n);
        elapsed
    })
}

/// A tokio current-thread runtime (no I/O or time driver: tasks only).
pub fn tokio_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().build()
}

/// tokio: `tokio::spawn` inside a current-thread `Runtime::block_on`.
pub fn tokio_spawn(rt: &tokio::runtime::Runtime, n: u64, shape: Shape) -> Duration {
    rt.block_on(async move {
        let start = Instant::now();
        let mut sum = 0u64;
        match shape {
            Shape::Batch => {
                let handles: Vec<_> = (0..n)
                    .map(|i| tokio::spawn(async move { black_box(i) }))
                    .collect();
                for h in handles {
                    sum += h.await.expect("tokio task failed");
                }
            }
            Shape::Sequential => {
                for i in 0..n {
                    sum += tokio::spawn(async move { black_box(i) })
                        .await
                        .expect("tokio task failed");
                }
            }
        }
        let elapsed = start.elapsed();
        check_sum(sum, n);
        elapsed
    })
}

/// tokio: `tokio::task::spawn_local` inside a `LocalSet` on a current-thread runtime.
pub fn tokio_local(rt: &tokio::runtime::Runtime, n: u64, shape: Shape) -> Duration {
    let local = tokio::task::LocalSet::new();
    local.block_on(rt, async move {
        let start = Instant::now();
        let mut sum = 0u64;
        match shape {
            Shape::Batch => {
                let handles: Vec<_> = (0..n)
                    .map(|i| tokio::task::spawn_local(async move { black_box(i) }))
                    .collect();
                for h in handles {
                    sum += h.await.expect("tokio local task failed");
                }
            }
            Shape::Sequential => {
                for i in 0..n {
                    sum += tokio::task::spawn_local(async move { black_box(i) })
                        .await
                        .expect("tokio local task failed");
                }
            }
        }
        let elapsed = start.elapsed();
        check_sum(sum, n);
        elapsed
    })
}

/// async-executor: `LocalExecutor::spawn` inside `futures_lite::future::block_on(ex.run(..))`.
pub fn async_executor(ex: &LocalExecutor<'_>, n: u64, shape: Shape) -> Duration {
    futures_lite::future::block_on(ex.run(async {
        let start = Instant::now();
        let mut sum = 0u64;
        match shape {
            Shape::Batch => {
                let tasks: Vec<_> = (0..n)
                    .map(|i| ex.spawn(async move { black_box(i) }))
                    .collect();
                for t in tasks {
                    sum += t.await;
                }
            }
            Shape::Sequential => {
                for i in 0..n {
                    sum += ex.spawn(async move { black_box(i) }).await;
                }
            }
        }
        let elapsed = start.elapsed();
        check_sum(sum, n);
        elapsed
    }))
}

/// Every task ran exactly once and returned its own index.
fn check_sum(sum: u64, n: u64) {
    assert_eq!(
        sum,
        n * n.saturating_sub(1) / 2,
        "a task result went missing"
    );
}
