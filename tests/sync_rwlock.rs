//! `sync::RwLock` and `sync::local::RwLock`: readers share, a writer excludes, readers that
//! arrive behind a waiting writer wait (writers are not starved), a dropped waiting `write()`
//! lets the readers behind it in, and a task on core 0 is woken when core 1 or a plain thread
//! unlocks.

mod sync_common;

use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;

use futures::poll;
use ringleader::sync::{RwLock, local};
use sync_common::{BOTH, wake_across};

macro_rules! readers_share_writer_waits_readers_queue_behind {
    ($lock:expr) => {{
        let lock = $lock;
        let r1 = lock.read().await;
        let r2 = lock.try_read().unwrap();
        let mut w = pin!(lock.write());
        assert!(poll!(w.as_mut()).is_pending(), "a writer waits for readers");
        let mut r3 = pin!(lock.read());
        assert!(
            poll!(r3.as_mut()).is_pending(),
            "a reader behind a waiting writer waits"
        );
        assert!(lock.try_read().is_err());
        drop((r1, r2));
        let mut g = match poll!(w.as_mut()) {
            Poll::Ready(g) => g,
            Poll::Pending => panic!("the writer did not get the lock"),
        };
        *g += 1;
        assert!(poll!(r3.as_mut()).is_pending());
        drop(g);
        match poll!(r3.as_mut()) {
            Poll::Ready(r) => assert_eq!(*r, 1),
            Poll::Pending => panic!("the reader did not get the lock"),
        }
    }};
}

#[test]
fn readers_share_writer_waits_readers_queue_behind() {
    ringleader::block_on(async {
        readers_share_writer_waits_readers_queue_behind!(local::RwLock::new(0));
        readers_share_writer_waits_readers_queue_behind!(RwLock::new(0));
    });
}

macro_rules! dropped_waiting_write_lets_readers_in {
    ($lock:expr) => {{
        let lock = $lock;
        let r1 = lock.read().await;
        let mut w = Box::pin(lock.write());
        assert!(poll!(w.as_mut()).is_pending());
        let mut r2 = pin!(lock.read());
        assert!(poll!(r2.as_mut()).is_pending());
        drop(w);
        assert!(
            matches!(poll!(r2.as_mut()), Poll::Ready(_)),
            "the reader behind the cancelled writer moves up"
        );
        drop(r1);
        // Granted to a writer that is then dropped: the lock is free again.
        let r = lock.read().await;
        let mut w = Box::pin(lock.write());
        assert!(poll!(w.as_mut()).is_pending());
        drop(r);
        drop(w);
        assert!(lock.try_write().is_ok());
    }};
}

#[test]
fn dropped_waiting_write_lets_readers_in() {
    ringleader::block_on(async {
        dropped_waiting_write_lets_readers_in!(local::RwLock::new(()));
        dropped_waiting_write_lets_readers_in!(RwLock::new(()));
    });
}

#[test]
fn local_downgrade_and_owned_guards() {
    ringleader::block_on(async {
        let lock = Rc::new(local::RwLock::with_max_readers(5, 2));
        let w = Rc::clone(&lock).write_owned().await;
        let mut r = pin!(lock.read());
        assert!(poll!(r.as_mut()).is_pending());
        let r0 = w.downgrade();
        assert_eq!(*r0, 5);
        let Poll::Ready(r1) = poll!(r.as_mut()) else {
            panic!("the downgrade did not let the waiting reader in");
        };
        assert!(lock.try_read().is_err(), "max_readers is 2");
        drop((r0, r1));
        assert!(lock.try_write().is_ok(), "every permit came back");
    });
}

#[test]
fn cross_core_write_woken_by_read_unlock() {
    for from in BOTH {
        let lock = Arc::new(RwLock::new(String::from("a")));
        let reader = Arc::clone(&lock).try_read_owned().unwrap();
        let l0 = Arc::clone(&lock);
        let got = wake_across(
            from,
            move || async move {
                let mut g = l0.write().await;
                g.push('b');
                g.clone()
            },
            move || drop(reader),
        );
        assert_eq!(got, "ab", "{from:?}");
    }
}
