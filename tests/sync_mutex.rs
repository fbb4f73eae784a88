//! `sync::Mutex` and `sync::local::Mutex`: first come first served, a dropped waiting
//! `lock()` passes the lock on, guards are held across awaits, and a task on core 0 waiting
//! for the lock is woken when core 1 or a plain thread unlocks.

mod sync_common;

use std::cell::RefCell;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;

use futures::poll;
use ringleader::sync::{Mutex, local};
use sync_common::{BOTH, settle, wake_across};

#[test]
fn local_lock_is_fifo_and_held_across_awaits() {
    ringleader::block_on(async {
        let m = Rc::new(local::Mutex::new(Vec::new()));
        let order = Rc::new(RefCell::new(Vec::new()));
        let first = m.lock().await;
        let tasks: Vec<_> = (0..5)
            .map(|i| {
                let (m, order) = (Rc::clone(&m), Rc::clone(&order));
                ringleader::spawn(async move {
                    let mut g = m.lock().await;
                    order.borrow_mut().push(i);
                    ringleader::yield_now().await; // held across an await
                    g.push(i);
                })
            })
            .collect();
        settle().await; // all five queue, in spawn order
        assert!(m.try_lock().is_err());
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.borrow(), [0, 1, 2, 3, 4]);
        assert_eq!(*m.lock().await, [0, 1, 2, 3, 4]);
    });
}

macro_rules! dropped_waiting_lock_passes_it_on {
    ($m:expr) => {{
        let m = $m;
        let held = m.lock().await;
        let mut a = Box::pin(m.lock());
        let mut b = pin!(m.lock());
        assert!(poll!(a.as_mut()).is_pending());
        assert!(poll!(b.as_mut()).is_pending());
        drop(held); // the lock is handed to `a`
        drop(a); // ... which is cancelled before it runs
        let mut g = match poll!(b.as_mut()) {
            std::task::Poll::Ready(g) => g,
            std::task::Poll::Pending => panic!("the next waiter did not get the lock"),
        };
        *g += 1;
        drop(g);
        assert_eq!(*m.try_lock().unwrap(), 1);
    }};
}

#[test]
fn dropped_waiting_lock_passes_it_on() {
    ringleader::block_on(async {
        dropped_waiting_lock_passes_it_on!(local::Mutex::new(0));
        dropped_waiting_lock_passes_it_on!(Mutex::new(0));
    });
}

#[test]
fn local_owned_guards() {
    ringleader::block_on(async {
        let m = Rc::new(local::Mutex::new(1));
        let g = Rc::clone(&m).lock_owned().await;
        assert!(Rc::clone(&m).try_lock_owned().is_err());
        let waiter = ringleader::spawn({
            let m = Rc::clone(&m);
            async move { *m.lock_owned().await * 10 }
        });
        settle().await;
        drop(g);
        assert_eq!(waiter.await.unwrap(), 10);
        let m = Rc::try_unwrap(m).unwrap();
        assert_eq!(m.into_inner(), 1);
    });
}

#[test]
fn cross_core_lock_woken_by_unlock() {
    for from in BOTH {
        let m = Arc::new(Mutex::new(0u32));
        let held = Arc::clone(&m).try_lock_owned().unwrap();
        let m0 = Arc::clone(&m);
        let got = wake_across(
            from,
            move || async move {
                let mut g = m0.lock().await;
                *g += 1;
                *g
            },
            move || {
                let mut held = held;
                *held += 10;
                drop(held);
            },
        );
        assert_eq!(got, 11, "{from:?}");
    }
}

#[test]
fn cores_and_threads_share_one_mutex() {
    let rt = sync_common::two_cores();
    let m = Arc::new(Mutex::new(0u64));
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let m = Arc::clone(&m);
            rt.spawn_on(i % 2, move || async move {
                for _ in 0..250 {
                    let mut g = m.lock().await;
                    let v = *g;
                    ringleader::yield_now().await; // a lost update would show here
                    *g = v + 1;
                }
            })
        })
        .collect();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                for _ in 0..250 {
                    *m.blocking_lock() += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    rt.block_on(move || async move {
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert_eq!(*m.blocking_lock(), 1500);
}
