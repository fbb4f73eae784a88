//! `sync::Notify` and `sync::local::Notify` keep tokio's permit semantics: `notify_one` with
//! nobody waiting stores one permit, `notify_waiters` wakes every `Notified` that exists
//! (polled or not) and stores nothing, a `Notified` dropped after `notify_one` chose it
//! passes the notification on; and a task on core 0 is woken from core 1 or a plain thread.

mod sync_common;

use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use futures::poll;
use ringleader::sync::{Notify, local};
use sync_common::{BOTH, wake_across};

macro_rules! notify_one_stores_one_permit {
    ($n:expr) => {{
        let n = $n;
        n.notify_one();
        n.notify_one(); // still one permit
        n.notified().await;
        let mut second = pin!(n.notified());
        assert!(
            poll!(second.as_mut()).is_pending(),
            "only one permit was stored"
        );
        n.notify_one();
        assert_eq!(poll!(second.as_mut()), Poll::Ready(()));
    }};
}

#[test]
fn notify_one_stores_one_permit() {
    ringleader::block_on(async {
        notify_one_stores_one_permit!(local::Notify::new());
        notify_one_stores_one_permit!(Notify::new());
    });
}

macro_rules! notify_waiters_wakes_all_existing_stores_nothing {
    ($n:expr) => {{
        let n = $n;
        let mut polled = pin!(n.notified());
        assert!(poll!(polled.as_mut()).is_pending());
        let mut never_polled = pin!(n.notified());
        n.notify_waiters();
        let mut later = pin!(n.notified());
        assert_eq!(poll!(polled.as_mut()), Poll::Ready(()));
        assert_eq!(
            poll!(never_polled.as_mut()),
            Poll::Ready(()),
            "a Notified made before the call counts"
        );
        assert!(poll!(later.as_mut()).is_pending(), "no permit was stored");
    }};
}

#[test]
fn notify_waiters_wakes_all_existing_stores_nothing() {
    ringleader::block_on(async {
        notify_waiters_wakes_all_existing_stores_nothing!(local::Notify::new());
        notify_waiters_wakes_all_existing_stores_nothing!(Notify::new());
    });
}

macro_rules! dropped_notified_passes_notify_one_on {
    ($n:expr) => {{
        let n = $n;
        let mut a = Box::pin(n.notified());
        let mut b = pin!(n.notified());
        assert!(poll!(a.as_mut()).is_pending());
        assert!(poll!(b.as_mut()).is_pending());
        n.notify_one(); // chooses `a`, the oldest
        drop(a);
        assert_eq!(poll!(b.as_mut()), Poll::Ready(()), "passed on to `b`");

        // With nobody else waiting it becomes the stored permit.
        let mut c = Box::pin(n.notified());
        assert!(poll!(c.as_mut()).is_pending());
        n.notify_one();
        drop(c);
        n.notified().await;
    }};
}

#[test]
fn dropped_notified_passes_notify_one_on() {
    ringleader::block_on(async {
        dropped_notified_passes_notify_one_on!(local::Notify::new());
        dropped_notified_passes_notify_one_on!(Notify::new());
    });
}

macro_rules! enable_queues_before_the_first_poll {
    ($n:expr) => {{
        let n = $n;
        let mut a = pin!(n.notified());
        assert!(!a.as_mut().enable());
        let mut b = pin!(n.notified());
        assert!(poll!(b.as_mut()).is_pending());
        n.notify_one(); // `a` queued first, so it is chosen
        assert_eq!(poll!(a.as_mut()), Poll::Ready(()));
        assert!(poll!(b.as_mut()).is_pending());
        n.notify_last();
        assert_eq!(poll!(b.as_mut()), Poll::Ready(()));
    }};
}

#[test]
fn enable_queues_before_the_first_poll() {
    ringleader::block_on(async {
        enable_queues_before_the_first_poll!(local::Notify::new());
        enable_queues_before_the_first_poll!(Notify::new());
    });
}

#[test]
fn cross_core_notified_woken() {
    for from in BOTH {
        let n = Arc::new(Notify::new());
        let (n0, n1) = (Arc::clone(&n), Arc::clone(&n));
        wake_across(
            from,
            move || async move { n0.notified().await },
            move || n1.notify_one(),
        );
        let (n0, n1) = (Arc::clone(&n), Arc::clone(&n));
        wake_across(
            from,
            move || async move { n0.notified().await },
            move || n1.notify_waiters(),
        );
    }
}
