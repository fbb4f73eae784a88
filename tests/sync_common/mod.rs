//! Helpers shared by the `sync_*` tests: a cross-core wake harness and bounded waits.
#![allow(dead_code)]

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use ringleader::Runtime;

/// Where the wake of a task waiting on core 0 comes from.
#[derive(Clone, Copy, Debug)]
pub enum From {
    /// A task on core 1 (an `IORING_OP_MSG_RING` SQE on core 1's ring).
    Core1,
    /// A `std::thread` that runs no core (`IORING_REGISTER_SEND_MSG_RING`).
    Thread,
}

pub const BOTH: [From; 2] = [From::Core1, From::Thread];

/// A two-core runtime.
pub fn two_cores() -> Runtime {
    Runtime::builder()
        .cores(2)
        .build()
        .expect("a two-core runtime")
}

/// Run `wait()` on core 0 and prove it waits (its first poll is pending); then run `wake`
/// on core 1 or on a plain thread, and return what the waiter resolved to. The wake reaches
/// core 0 through its injection queue plus a `MSG_RING` CQE that ends its wait in
/// `io_uring_enter`. `Stats::msg_ring_received` is deliberately not asserted: in 3 of about
/// 160 runs of these tests on a loaded machine no such CQE was counted on core 0 within 5 s
/// after the wait began (the task was woken all the same, through the injection queue).
pub fn wake_across<W, Fut, T>(from: From, wait: W, wake: impl FnOnce() + Send + 'static) -> T
where
    W: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let rt = two_cores();
    let (ready_tx, ready_rx) = ringleader::sync::oneshot::channel::<()>();
    let waiter = rt.spawn_on(0, move || async move {
        let mut fut = pin!(wait());
        assert!(
            futures::poll!(fut.as_mut()).is_pending(),
            "the waiter must be waiting before the wake"
        );
        ready_tx.send(()).expect("harness");
        let out = fut.await;
        assert_eq!(ringleader::current_core(), 0);
        out
    });
    match from {
        From::Core1 => {
            let waker = rt.spawn_on(1, move || async move {
                ready_rx.await.expect("harness");
                assert_eq!(ringleader::current_core(), 1);
                wake();
            });
            rt.block_on(move || async move { waker.await.expect("waker task") });
        }
        From::Thread => std::thread::spawn(move || {
            ready_rx.blocking_recv().expect("harness");
            wake();
        })
        .join()
        .expect("waker thread"),
    }
    futures::executor::block_on(waiter).expect("waiter task")
}

/// Yield (and, past the first rounds, sleep 1 ms) until `done()` holds, at most `rounds`
/// times. Panics with `what` if it never does. Never asserts how long it took.
pub async fn until(what: &str, rounds: usize, mut done: impl FnMut() -> bool) {
    for i in 0..rounds {
        if done() {
            return;
        }
        if i < 100 {
            ringleader::yield_now().await;
        } else {
            ringleader::time::sleep(Duration::from_millis(1)).await;
        }
    }
    panic!("gave up waiting for {what}");
}

/// Let the other tasks of this core run for a while (a bounded number of yields).
pub async fn settle() {
    for _ in 0..50 {
        ringleader::yield_now().await;
    }
}
