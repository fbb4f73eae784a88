//! An op polled with a waker whose clones never `will_wake` the original (each clone is a
//! new allocation) returns `Pending` and is woken through the stored clone: the runtime
//! clones the task's waker outside its driver borrow, and must not keep re-registering.

mod common;

use std::future::Future;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::task::{Context, RawWaker, RawWakerVTable, Waker};
use std::time::Duration;

use common::{pipe, write_all};

/// Each clone boxes a fresh copy of the counter handle: a new data pointer every time.
fn distinct_clones_waker(wakes: Arc<AtomicUsize>) -> Waker {
    unsafe fn clone(p: *const ()) -> RawWaker {
        // SAFETY: `p` came from `Box::into_raw` of an `Arc<AtomicUsize>` below.
        let a = unsafe { &*(p as *const Arc<AtomicUsize>) };
        RawWaker::new(Box::into_raw(Box::new(Arc::clone(a))) as *const (), &VTABLE)
    }
    unsafe fn wake(p: *const ()) {
        // SAFETY: as in `clone`; consumes the box.
        let a = unsafe { Box::from_raw(p as *mut Arc<AtomicUsize>) };
        a.fetch_add(1, Ordering::SeqCst);
    }
    unsafe fn wake_by_ref(p: *const ()) {
        // SAFETY: as in `clone`.
        let a = unsafe { &*(p as *const Arc<AtomicUsize>) };
        a.fetch_add(1, Ordering::SeqCst);
    }
    unsafe fn drop_waker(p: *const ()) {
        // SAFETY: as in `clone`; consumes the box.
        drop(unsafe { Box::from_raw(p as *mut Arc<AtomicUsize>) });
    }
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_waker);
    let raw = RawWaker::new(Box::into_raw(Box::new(wakes)) as *const (), &VTABLE);
    // SAFETY: the vtable functions uphold the RawWaker contract for the boxed Arc.
    unsafe { Waker::from_raw(raw) }
}

#[test]
fn poll_returns_pending_and_the_stored_clone_wakes() {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (r, w) = pipe();
        let r: Rc<OwnedFd> = Rc::new(r);
        let wakes = Arc::new(AtomicUsize::new(0));
        let waker = distinct_clones_waker(Arc::clone(&wakes));
        ringleader::block_on(async {
            let mut read = ringleader::fd::read(&r, vec![0u8; 16], u64::MAX);
            let mut cx = Context::from_waker(&waker);
            let first = Pin::new(&mut read).poll(&mut cx).is_pending();
            // A second poll with the same (non-`will_wake`) waker registers again, once.
            let second = Pin::new(&mut read).poll(&mut cx).is_pending();
            write_all(&w, b"hi");
            common::until(|| wakes.load(Ordering::SeqCst) > 0, "the stored clone woke").await;
            let (n, buf) = read.await;
            tx.send((
                first,
                second,
                n.unwrap(),
                buf[..2].to_vec(),
                r.as_raw_fd() >= 0,
            ))
            .unwrap();
        });
    });
    let (first, second, n, bytes, _) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("polling with such a waker never returned");
    assert!(first && second, "Pending while nothing was written");
    assert_eq!((n, &bytes[..]), (2, &b"hi"[..]));
}
