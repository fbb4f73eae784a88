//! `sync::Semaphore` and `sync::local::Semaphore`: permits are granted in arrival order (a
//! large `acquire_many` is not starved by small ones), a dropped waiting `acquire` passes
//! what it was given on, `close` fails waiters, and a task on core 0 is woken by
//! `add_permits` or a permit's drop on core 1 or a plain thread.

mod sync_common;

use std::cell::RefCell;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;

use futures::poll;
use ringleader::sync::{Semaphore, local};
use sync_common::{BOTH, settle, wake_across};

macro_rules! large_acquire_is_not_starved {
    ($sem:expr) => {{
        let sem = $sem;
        let one = sem.acquire().await.unwrap();
        let mut big = pin!(sem.acquire_many(3));
        assert!(poll!(big.as_mut()).is_pending());
        let mut small = pin!(sem.acquire());
        assert!(
            poll!(small.as_mut()).is_pending(),
            "no overtaking the big one"
        );
        assert!(sem.try_acquire().is_err());
        drop(one);
        match poll!(big.as_mut()) {
            Poll::Ready(Ok(p)) => {
                assert_eq!(p.num_permits(), 3);
                assert!(poll!(small.as_mut()).is_pending());
                drop(p);
            }
            _ => panic!("the big acquire did not get its permits"),
        }
        assert!(matches!(poll!(small.as_mut()), Poll::Ready(Ok(_))));
    }};
}

#[test]
fn large_acquire_is_not_starved() {
    ringleader::block_on(async {
        large_acquire_is_not_starved!(local::Semaphore::new(3));
        large_acquire_is_not_starved!(Semaphore::new(3));
    });
}

macro_rules! dropped_waiting_acquire_passes_permits_on {
    ($sem:expr) => {{
        let sem = $sem;
        let all = sem.acquire_many(2).await.unwrap();
        let mut a = Box::pin(sem.acquire_many(2));
        let mut b = pin!(sem.acquire());
        assert!(poll!(a.as_mut()).is_pending());
        assert!(poll!(b.as_mut()).is_pending());
        let mut all = all;
        let one = all.split(1).unwrap();
        drop(one); // one permit goes to `a` (it keeps it while waiting for the second)
        assert!(poll!(b.as_mut()).is_pending());
        drop(a); // its permit goes on to `b`
        match poll!(b.as_mut()) {
            Poll::Ready(Ok(p)) => drop(p),
            _ => panic!("the permit `a` held was not passed on"),
        }
        drop(all);
        assert_eq!(sem.available_permits(), 2, "nothing lost");
    }};
}

#[test]
fn dropped_waiting_acquire_passes_permits_on() {
    ringleader::block_on(async {
        dropped_waiting_acquire_passes_permits_on!(local::Semaphore::new(2));
        dropped_waiting_acquire_passes_permits_on!(Semaphore::new(2));
    });
}

macro_rules! close_fails_waiters_keeps_held_permits {
    ($sem:expr) => {{
        let sem = $sem;
        let held = sem.acquire().await.unwrap();
        let mut w = pin!(sem.acquire());
        assert!(poll!(w.as_mut()).is_pending());
        sem.close();
        assert!(sem.is_closed());
        assert!(matches!(poll!(w.as_mut()), Poll::Ready(Err(_))));
        assert!(sem.acquire().await.is_err());
        drop(held);
        assert_eq!(sem.available_permits(), 1);
        assert!(sem.try_acquire().is_err(), "closed");
    }};
}

#[test]
fn close_fails_waiters_keeps_held_permits() {
    ringleader::block_on(async {
        close_fails_waiters_keeps_held_permits!(local::Semaphore::new(1));
        close_fails_waiters_keeps_held_permits!(Semaphore::new(1));
    });
}

#[test]
fn local_fifo_add_forget_and_owned_permits() {
    ringleader::block_on(async {
        let sem = Rc::new(local::Semaphore::new(0));
        let order = Rc::new(RefCell::new(Vec::new()));
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let (sem, order) = (Rc::clone(&sem), Rc::clone(&order));
                ringleader::spawn(async move {
                    let p = sem.acquire_owned().await.unwrap();
                    order.borrow_mut().push(i);
                    p.forget();
                })
            })
            .collect();
        settle().await;
        sem.add_permits(4);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.borrow(), [0, 1, 2, 3]);
        assert_eq!(sem.available_permits(), 0, "forgotten permits stay out");
        sem.add_permits(3);
        assert_eq!(sem.forget_permits(2), 2);
        let mut p = Rc::clone(&sem).try_acquire_owned().unwrap();
        assert!(sem.try_acquire().is_err());
        let q = Rc::clone(&sem).try_acquire_many_owned(0).unwrap();
        p.merge(q);
        assert_eq!(p.num_permits(), 1);
    });
}

#[test]
fn cross_core_acquire_woken_by_add_permits_or_drop() {
    for from in BOTH {
        let sem = Arc::new(Semaphore::new(0));
        let s0 = Arc::clone(&sem);
        let s1 = Arc::clone(&sem);
        let got = wake_across(
            from,
            move || async move { s0.acquire_many_owned(2).await.unwrap().num_permits() },
            move || s1.add_permits(2),
        );
        assert_eq!(got, 2, "{from:?}");

        let sem = Arc::new(Semaphore::new(1));
        let held = Arc::clone(&sem).try_acquire_owned().unwrap();
        let s0 = Arc::clone(&sem);
        let got = wake_across(
            from,
            move || async move { s0.acquire().await.is_ok() },
            move || drop(held),
        );
        assert!(got, "{from:?}");
    }
}
