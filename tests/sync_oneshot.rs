//! `sync::oneshot` and `sync::local::oneshot`: the value or the sender's drop arrives, a
//! receiver put aside loses nothing, `send` to a gone receiver returns the value, and a
//! receiver on core 0 is woken by a send on core 1 or on a plain thread.

mod sync_common;

use std::pin::pin;

use futures::poll;
use ringleader::sync::{local, oneshot};
use sync_common::{BOTH, wake_across};

#[test]
fn local_value_or_closed() {
    ringleader::block_on(async {
        let (tx, mut rx) = local::oneshot::channel::<u8>();
        assert_eq!(
            rx.try_recv(),
            Err(local::oneshot::error::TryRecvError::Empty)
        );
        let h = ringleader::spawn(async move { tx.send(3).unwrap() });
        assert_eq!((&mut rx).await, Ok(3));
        assert!(rx.is_terminated());
        h.await.unwrap();

        let (tx, rx) = local::oneshot::channel::<u8>();
        drop(tx);
        assert!(rx.await.is_err());

        let (tx, mut rx) = local::oneshot::channel::<String>();
        rx.close();
        assert!(tx.is_closed());
        assert_eq!(tx.send("back".into()), Err("back".to_string()));
        assert_eq!(
            rx.try_recv(),
            Err(local::oneshot::error::TryRecvError::Closed)
        );
    });
}

#[test]
fn receiver_put_aside_loses_nothing() {
    ringleader::block_on(async {
        let (tx, mut rx) = local::oneshot::channel::<u8>();
        assert!(poll!(&mut rx).is_pending());
        tx.send(9).unwrap();
        // A `select!` that took another branch drops only the borrow; the value waits.
        assert_eq!(rx.await, Ok(9));

        let (tx, mut rx) = oneshot::channel::<u8>();
        assert!(poll!(&mut rx).is_pending());
        tx.send(10).unwrap();
        assert_eq!(rx.await, Ok(10));
    });
}

#[test]
fn sender_closed_resolves_when_the_receiver_goes() {
    ringleader::block_on(async {
        let (mut tx, rx) = local::oneshot::channel::<u8>();
        assert!(!tx.is_closed());
        let mut closed = pin!(tx.closed());
        assert!(poll!(closed.as_mut()).is_pending());
        drop(rx);
        closed.await;

        let (mut tx, rx) = oneshot::channel::<u8>();
        let mut closed = pin!(tx.closed());
        assert!(poll!(closed.as_mut()).is_pending());
        drop(rx);
        closed.await;
    });
}

#[test]
fn cross_core_receiver_woken_by_send_or_drop() {
    for from in BOTH {
        let (tx, rx) = oneshot::channel::<&str>();
        let got = wake_across(from, move || rx, move || tx.send("hi").unwrap());
        assert_eq!(got, Ok("hi"), "{from:?}");

        let (tx, rx) = oneshot::channel::<&str>();
        let got = wake_across(from, move || rx, move || drop(tx));
        assert!(
            got.is_err(),
            "{from:?}: a dropped sender wakes the receiver"
        );
    }
}

#[test]
fn blocking_recv_on_a_thread() {
    let rt = sync_common::two_cores();
    let (tx, rx) = oneshot::channel();
    rt.spawn_on(1, move || async move {
        tx.send(ringleader::current_core()).unwrap()
    })
    .detach();
    assert_eq!(rx.blocking_recv(), Ok(1));
}
