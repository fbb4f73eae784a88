//! `sync::mpsc` and `sync::local::mpsc`: bounded backpressure, values come back on errors, a
//! dropped waiting `recv`/`send` loses nothing and passes its turn on, and a receiver on core
//! 0 is woken by a sender on core 1 or on a plain thread.

mod sync_common;

use std::cell::Cell;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;

use futures::poll;
use ringleader::sync::{local, mpsc};
use sync_common::{BOTH, settle, until, wake_across};

#[test]
fn local_bounded_send_waits_for_a_free_slot() {
    ringleader::block_on(async {
        let (tx, mut rx) = local::mpsc::channel::<u32>(2);
        let sent = Rc::new(Cell::new(0u32));
        let s = Rc::clone(&sent);
        let producer = ringleader::spawn(async move {
            for i in 0..10 {
                tx.send(i).await.unwrap();
                s.set(s.get() + 1);
            }
        });
        settle().await;
        assert_eq!(sent.get(), 2, "two slots: the third send waits");
        for taken in 1..=8 {
            assert_eq!(rx.recv().await, Some(taken - 1));
            settle().await;
            assert_eq!(
                sent.get(),
                (2 + taken).min(10),
                "one taken value lets one send in"
            );
            assert!(rx.len() <= 2);
        }
        let rest: Vec<u32> = [rx.recv().await, rx.recv().await, rx.recv().await]
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(rest, [8, 9]);
        producer.await.unwrap();
    });
}

#[test]
fn cross_core_bounded_send_waits_for_a_free_slot() {
    let rt = sync_common::two_cores();
    let (tx, mut rx) = mpsc::channel::<u32>(2);
    let sent = Arc::new(AtomicUsize::new(0));
    let s = Arc::clone(&sent);
    let producer = rt.spawn_on(1, move || async move {
        for i in 0..10 {
            tx.send(i).await.unwrap();
            s.fetch_add(1, Ordering::SeqCst);
        }
    });
    rt.block_on(move || async move {
        for taken in 0..10u32 {
            let want = (2 + taken as usize).min(10);
            until("the producer to fill the free slots", 5_000, || {
                sent.load(Ordering::SeqCst) >= want
            })
            .await;
            // However long we wait, the producer stays `capacity` ahead and no further.
            settle().await;
            assert_eq!(sent.load(Ordering::SeqCst), want);
            assert!(rx.len() <= 2);
            assert_eq!(rx.recv().await, Some(taken));
        }
        assert_eq!(rx.recv().await, None);
    });
    rt.block_on(move || async move { producer.await.unwrap() });
}

#[test]
fn errors_carry_the_value_back() {
    ringleader::block_on(async {
        let (tx, rx) = local::mpsc::channel::<String>(1);
        tx.try_send("a".into()).unwrap();
        match tx.try_send("b".into()) {
            Err(local::mpsc::error::TrySendError::Full(v)) => assert_eq!(v, "b"),
            other => panic!("{other:?}"),
        }
        drop(rx);
        assert_eq!(tx.send("c".into()).await.unwrap_err().0, "c");
        match tx.try_send("d".into()) {
            Err(local::mpsc::error::TrySendError::Closed(v)) => assert_eq!(v, "d"),
            other => panic!("{other:?}"),
        }
        let (utx, urx) = local::mpsc::unbounded_channel::<String>();
        drop(urx);
        assert_eq!(utx.send("e".into()).unwrap_err().0, "e");

        let (tx, rx) = mpsc::channel::<String>(1);
        drop(rx);
        assert_eq!(tx.send("f".into()).await.unwrap_err().0, "f");
        let (utx, urx) = mpsc::unbounded_channel::<String>();
        drop(urx);
        assert_eq!(utx.send("g".into()).unwrap_err().0, "g");
    });
}

#[test]
fn receiver_drains_then_sees_the_end() {
    ringleader::block_on(async {
        let (tx, mut rx) = local::mpsc::unbounded_channel();
        let tx2 = tx.clone();
        tx.send(1).unwrap();
        tx2.send(2).unwrap();
        drop((tx, tx2));
        let mut buf = Vec::new();
        assert_eq!(rx.recv_many(&mut buf, 10).await, 2);
        assert_eq!(buf, [1, 2]);
        assert_eq!(rx.recv().await, None);
        assert_eq!(
            rx.try_recv(),
            Err(local::mpsc::error::TryRecvError::Disconnected)
        );

        // Closing keeps what is queued receivable; waiting senders get their value back.
        let (tx, mut rx) = local::mpsc::channel(1);
        tx.send(1).await.unwrap();
        let mut blocked = pin!(tx.send(2));
        assert!(poll!(blocked.as_mut()).is_pending());
        rx.close();
        assert_eq!(blocked.await.unwrap_err().0, 2);
        assert!(tx.is_closed());
        tx.closed().await;
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.recv().await, None);
    });
}

#[test]
fn dropped_waiting_recv_loses_nothing() {
    ringleader::block_on(async {
        let (tx, mut rx) = local::mpsc::channel(4);
        {
            let mut r = pin!(rx.recv());
            assert!(poll!(r.as_mut()).is_pending());
            tx.send(7).await.unwrap(); // wakes the recv we are about to drop
        }
        assert_eq!(rx.recv().await, Some(7));

        let (tx, mut rx) = mpsc::channel(4);
        {
            let mut r = pin!(rx.recv());
            assert!(poll!(r.as_mut()).is_pending());
            tx.send(8).await.unwrap();
        }
        assert_eq!(rx.recv().await, Some(8));
    });
}

/// Two senders wait on a full channel; a slot frees and goes to the first; the first is
/// dropped before it runs; the second gets the slot and nothing is left stuck.
macro_rules! dropped_waiting_send_passes_the_slot_on {
    ($chan:path) => {{
        let (tx, mut rx) = $chan(1);
        tx.send(0).await.unwrap();
        let mut first = Box::pin(tx.send(1));
        let mut second = pin!(tx.send(2));
        assert!(poll!(first.as_mut()).is_pending());
        assert!(poll!(second.as_mut()).is_pending());
        assert_eq!(rx.recv().await, Some(0)); // the slot is handed to `first`
        drop(first);
        assert!(matches!(poll!(second.as_mut()), Poll::Ready(Ok(()))));
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(tx.capacity(), 1);
    }};
}

#[test]
fn dropped_waiting_send_passes_the_slot_on() {
    ringleader::block_on(async {
        dropped_waiting_send_passes_the_slot_on!(local::mpsc::channel);
        dropped_waiting_send_passes_the_slot_on!(mpsc::channel);
    });
}

#[test]
fn reserve_holds_a_slot_and_gives_it_back() {
    ringleader::block_on(async {
        let (tx, mut rx) = local::mpsc::channel::<u8>(1);
        let permit = tx.reserve().await.unwrap();
        assert!(matches!(
            tx.try_send(1),
            Err(local::mpsc::error::TrySendError::Full(1))
        ));
        drop(permit);
        let permit = tx.try_reserve().unwrap();
        permit.send(2);
        assert_eq!(rx.recv().await, Some(2));
    });
}

#[test]
fn cross_core_recv_woken_by_a_send() {
    for from in BOTH {
        let (tx, mut rx) = mpsc::channel::<u64>(1);
        let got = wake_across(
            from,
            move || async move { rx.recv().await },
            move || tx.try_send(42).unwrap(),
        );
        assert_eq!(got, Some(42), "{from:?}");

        let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
        let got = wake_across(
            from,
            move || async move { rx.recv().await },
            move || drop(tx),
        );
        assert_eq!(got, None, "{from:?}: the last sender's drop wakes too");
    }
}

#[test]
fn cross_core_send_woken_by_a_recv() {
    for from in BOTH {
        let (tx, rx) = mpsc::channel::<u64>(1);
        tx.try_send(1).unwrap();
        // The receiver outlives the wake: dropping it would close the channel.
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let taker = Arc::clone(&rx);
        let got = wake_across(
            from,
            move || async move { tx.send(2).await.map_err(|e| e.0) },
            move || assert_eq!(taker.lock().unwrap().try_recv(), Ok(1)),
        );
        assert_eq!(got, Ok(()), "{from:?}");
        assert_eq!(rx.lock().unwrap().try_recv(), Ok(2));
    }
}

#[test]
fn blocking_send_and_recv_from_threads() {
    let rt = sync_common::two_cores();
    let (tx, mut rx) = mpsc::channel::<u32>(1);
    let (back_tx, back_rx) = mpsc::channel::<u32>(1);
    let echo = rt.spawn_on(1, move || async move {
        while let Some(v) = rx.recv().await {
            back_tx.send(v * 2).await.unwrap();
        }
    });
    let mut back_rx = back_rx;
    let got: Vec<u32> = (0..20)
        .map(|i| {
            tx.blocking_send(i).unwrap();
            back_rx.blocking_recv().unwrap()
        })
        .collect();
    drop(tx);
    assert_eq!(got, (0..20).map(|i| i * 2).collect::<Vec<_>>());
    rt.block_on(move || async move { echo.await.unwrap() });
}
