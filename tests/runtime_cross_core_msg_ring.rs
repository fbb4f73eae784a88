//! Acceptance e: on a two-core runtime, a task on core 1 is woken by an event on core 0
//! through `IORING_OP_MSG_RING`; `spawn_on` returns a handle awaitable from another core.

use futures::channel::oneshot;
use ringleader::{Runtime, runtime::stats, spawn_on};

#[test]
fn core1_task_woken_by_core0_event_through_msg_ring() {
    let rt = Runtime::builder().cores(2).build().expect("runtime");
    let (ready_tx, ready_rx) = oneshot::channel::<()>();
    let (tx, rx) = oneshot::channel::<u32>();

    let waiter = rt.spawn_on(1, move || async move {
        assert_eq!(ringleader::current_core(), 1);
        let before = stats().msg_ring_received;
        ready_tx.send(()).unwrap();
        let v = rx.await.unwrap();
        (v, stats().msg_ring_received - before)
    });
    let sender = rt.spawn_on(0, move || async move {
        ready_rx.await.unwrap();
        // Let core 1 park in io_uring_enter, waiting for its channel.
        ringleader::time::sleep(std::time::Duration::from_millis(20)).await;
        let before = stats().msg_ring_sent;
        tx.send(42).unwrap(); // wakes core 1's task from core 0
        ringleader::ops::nop().await.unwrap(); // the tick that submits the MSG_RING SQE
        stats().msg_ring_sent - before
    });
    let sent = futures::executor::block_on(sender).unwrap();
    let (v, received) = futures::executor::block_on(waiter).unwrap();
    assert_eq!(v, 42);
    assert!(
        sent >= 1,
        "core 0 sent the wake-up on its own ring with MSG_RING"
    );
    assert!(received >= 1, "core 1 got the wake-up as a MSG_RING CQE");
}

#[test]
fn spawn_on_handle_awaitable_from_another_core() {
    let rt = Runtime::builder().cores(2).build().expect("runtime");
    let out = rt.block_on(|| async {
        assert_eq!(ringleader::current_core(), 0);
        let h = spawn_on(1, || async {
            ringleader::ops::nop().await.unwrap();
            // A !Send value lives across an await on core 1.
            let rc = std::rc::Rc::new(ringleader::current_core());
            ringleader::yield_now().await;
            *rc * 10
        });
        h.await.unwrap()
    });
    assert_eq!(out, 10);
    rt.shutdown();
}

#[test]
fn each_core_has_its_own_ring() {
    let rt = Runtime::builder().cores(2).build().expect("runtime");
    let a = rt.spawn_on(0, || async { ringleader::runtime::setup_info() });
    let b = rt.spawn_on(1, || async { ringleader::runtime::setup_info() });
    let (a, b) = futures::executor::block_on(async { (a.await.unwrap(), b.await.unwrap()) });
    assert_eq!(a.applied, b.applied);
    assert!(
        a.applied
            .contains(ringleader::runtime::SetupFlags::SINGLE_ISSUER)
    );
    let cores =
        futures::executor::block_on(rt.spawn_on(1, || async { ringleader::core_count() })).unwrap();
    assert_eq!(cores, 2);
}
