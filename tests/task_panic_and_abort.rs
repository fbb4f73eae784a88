//! Acceptance d: a panicking task yields a panic `JoinError` and the other tasks go on;
//! `abort()` cancels the aborted task's in-flight ops.

mod common;

use std::rc::Rc;
use std::time::Duration;

use common::{CountedBuf, counter, get, pipe, until};
use ringleader::{spawn, yield_now};

#[test]
fn panicking_task_gives_join_error_and_others_continue() {
    ringleader::block_on(async {
        let steady = spawn(async {
            let mut n = 0;
            for _ in 0..50 {
                ringleader::ops::nop().await.unwrap();
                yield_now().await;
                n += 1;
            }
            n
        });
        let bad = spawn(async {
            ringleader::ops::nop().await.unwrap();
            if ringleader::current_core() == 0 {
                panic!("boom in task");
            }
            7
        });
        let err = bad.await.expect_err("the task panicked");
        assert!(err.is_panic());
        assert!(err.to_string().contains("boom in task"), "{err}");
        // Spawning after the panic still works, and the steady task finished its work.
        let after = spawn(async { ringleader::ops::nop().await.map(|_| 1) });
        assert_eq!(after.await.unwrap().unwrap(), 1);
        assert_eq!(steady.await.unwrap(), 50);
    });
}

#[test]
fn abort_cancels_the_tasks_in_flight_ops() {
    ringleader::block_on(async {
        let drops = counter();
        let base = ringleader::runtime::stats();
        let (r, _w) = pipe();
        let r = Rc::new(r);
        let fd = Rc::clone(&r);
        let d = drops.clone();
        let h = spawn(async move {
            let (res, _buf) = ringleader::fd::read(&fd, CountedBuf::new(8, &d), u64::MAX).await;
            res.map(|_| ())
        });
        until(
            || ringleader::runtime::stats().ops_in_flight == base.ops_in_flight + 1,
            "read in flight",
        )
        .await;
        h.abort();
        until(
            || ringleader::runtime::stats().ops_in_flight == base.ops_in_flight,
            "read cancelled",
        )
        .await;
        assert_eq!(
            get(&drops),
            1,
            "the aborted task's buffer was released once"
        );
        let err = h.await.expect_err("aborted");
        assert!(err.is_cancelled());
        assert!(
            ringleader::runtime::stats().cancels > base.cancels,
            "an ASYNC_CANCEL was issued"
        );
    });
}

#[test]
fn detached_task_keeps_running() {
    ringleader::block_on(async {
        let (tx, rx) = futures::channel::oneshot::channel();
        let h = spawn(async move {
            ringleader::time::sleep(Duration::from_millis(2)).await;
            tx.send(5).unwrap();
        });
        drop(h);
        assert_eq!(rx.await.unwrap(), 5);
    });
}

#[test]
fn spawn_accepts_non_send_futures() {
    ringleader::block_on(async {
        let shared = std::rc::Rc::new(std::cell::Cell::new(0));
        let s2 = shared.clone();
        spawn(async move {
            ringleader::ops::nop().await.unwrap();
            s2.set(9);
        })
        .await
        .unwrap();
        assert_eq!(shared.get(), 9);
    });
}
