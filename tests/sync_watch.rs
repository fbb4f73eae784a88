//! `sync::watch` and `sync::local::watch`: sends coalesce (a receiver sees the latest value
//! once, not every value), `changed()` dropped while waiting marks nothing seen, the
//! senders' drop ends it, and a watcher on core 0 is woken from core 1 or a plain thread.

mod sync_common;

use std::cell::Cell;
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;

use futures::poll;
use ringleader::sync::{local, watch};
use sync_common::{BOTH, settle, wake_across};

macro_rules! sends_coalesce {
    ($chan:path) => {{
        let (tx, mut rx) = $chan(0u32);
        assert!(matches!(rx.has_changed(), Ok(false)));
        for v in 1..=5 {
            tx.send(v).unwrap();
        }
        assert!(rx.borrow().has_changed());
        rx.changed().await.unwrap();
        assert_eq!(*rx.borrow_and_update(), 5, "the latest value");
        {
            let mut next = pin!(rx.changed());
            assert!(
                poll!(next.as_mut()).is_pending(),
                "five sends, one change seen"
            );
            tx.send_modify(|v| *v += 1);
            assert!(matches!(poll!(next.as_mut()), Poll::Ready(Ok(()))));
        }
        assert_eq!(*rx.borrow(), 6);
        assert!(!tx.send_if_modified(|_| false));
        assert!(matches!(rx.has_changed(), Ok(false)));
        drop(tx);
        assert!(rx.changed().await.is_err());
        assert!(rx.has_changed().is_err());
    }};
}

#[test]
fn sends_coalesce() {
    ringleader::block_on(async {
        sends_coalesce!(local::watch::channel);
        sends_coalesce!(watch::channel);
    });
}

macro_rules! dropped_changed_marks_nothing_seen {
    ($chan:path) => {{
        let (tx, mut rx) = $chan("a");
        {
            let mut c = pin!(rx.changed());
            assert!(poll!(c.as_mut()).is_pending());
            tx.send("b").unwrap();
        } // dropped after the send woke it, before it ran
        rx.changed().await.unwrap();
        assert_eq!(*rx.borrow_and_update(), "b");
        // An unseen value is still reported after the sender is gone.
        tx.send("c").unwrap();
        drop(tx);
        assert!(rx.changed().await.is_ok());
        assert!(rx.changed().await.is_err());
    }};
}

#[test]
fn dropped_changed_marks_nothing_seen() {
    ringleader::block_on(async {
        dropped_changed_marks_nothing_seen!(local::watch::channel);
        dropped_changed_marks_nothing_seen!(watch::channel);
    });
}

#[test]
fn local_many_watchers_see_the_latest() {
    ringleader::block_on(async {
        let (tx, rx) = local::watch::channel(0u32);
        let wakeups = Rc::new(Cell::new(0u32));
        let watchers: Vec<_> = (0..3)
            .map(|_| {
                let mut rx = rx.clone();
                let wakeups = Rc::clone(&wakeups);
                ringleader::spawn(async move {
                    let v = *rx.wait_for(|v| *v >= 100).await.unwrap();
                    wakeups.set(wakeups.get() + 1);
                    v
                })
            })
            .collect();
        settle().await;
        for v in 1..=100 {
            tx.send(v).unwrap(); // no task runs in between: all coalesce
        }
        for w in watchers {
            assert_eq!(w.await.unwrap(), 100);
        }
        assert_eq!(wakeups.get(), 3);
        drop(rx);
        let mut closed = pin!(tx.closed());
        assert!(poll!(closed.as_mut()).is_ready(), "every receiver is gone");
        assert_eq!(tx.send(1).unwrap_err().0, 1);
        assert_eq!(tx.send_replace(2), 100);
        assert_eq!(*tx.borrow(), 2);
    });
}

#[test]
fn cross_core_watcher_woken() {
    for from in BOTH {
        let (tx, mut rx) = watch::channel(0u32);
        let got = wake_across(
            from,
            move || async move {
                rx.changed().await.unwrap();
                *rx.borrow_and_update()
            },
            move || {
                for v in 1..=10 {
                    // `send_replace`: the watcher may be done (and gone) before the last.
                    tx.send_replace(v);
                }
                // The sender is dropped here too: the value must still be seen.
            },
        );
        assert!((1..=10).contains(&got), "{from:?}: {got}");
    }
}
