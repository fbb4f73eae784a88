//! A cross-core wake-up (`IORING_OP_MSG_RING`) names its target ring by fd number, and the
//! kernel resolves the number only when the sender next enters. If the target ring closed in
//! between and the number went to another io_uring, that ring would receive a completion it
//! never asked for. The runtime keeps the target's fd open until the message is submitted.

use std::cell::RefCell;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::task::Waker;

#[test]
fn wake_queued_for_a_closed_ring_never_reaches_the_ring_that_reused_its_fd() {
    // Runtime Y: one idle task whose waker we keep.
    let y = ringleader::Builder::new().build_local().unwrap();
    let waker: Rc<RefCell<Option<Waker>>> = Rc::default();
    {
        let waker = Rc::clone(&waker);
        y.block_on(async move {
            drop(ringleader::spawn(std::future::poll_fn(move |cx| {
                *waker.borrow_mut() = Some(cx.waker().clone());
                std::task::Poll::<()>::Pending
            })));
            ringleader::yield_now().await;
        });
    }
    let y_waker = waker.borrow_mut().take().expect("the task ran");
    // Runtime X, on the same thread.
    let x = ringleader::Builder::new().build_local().unwrap();
    let received = x.block_on(async move {
        // From X, a wake of Y's task: a MSG_RING to Y's ring, queued in X's SQ.
        y_waker.wake_by_ref();
        // Y goes away before X enters; its ring closes.
        drop(y);
        // A new io_uring takes the lowest free fd number: the one Y's ring had.
        let raw = io_uring::IoUring::new(8).unwrap();
        // X enters: the queued MSG_RING goes to the kernel.
        for _ in 0..4 {
            ringleader::yield_now().await;
        }
        let _ = ringleader::ops::nop().await;
        drop(y_waker);
        let mut raw = raw;
        let n = raw.completion().len();
        (n, raw.as_raw_fd())
    });
    assert_eq!(
        received.0, 0,
        "io_uring fd {} received a wake-up meant for a closed ring",
        received.1
    );
}
