//! `sync::broadcast` and `sync::local::broadcast`: every receiver gets every value; a
//! receiver that falls behind the ring gets `Lagged(n)` and continues with the oldest value
//! kept; a dropped waiting `recv()` reads nothing; values are freed once read by all; and
//! receivers on both cores are woken by a send from core 1 or a plain thread.

mod sync_common;

use std::pin::pin;
use std::rc::Rc;

use futures::poll;
use ringleader::sync::{broadcast, local};
use sync_common::{BOTH, wake_across};

#[test]
fn every_receiver_gets_every_value() {
    ringleader::block_on(async {
        let (tx, mut a) = local::broadcast::channel(8);
        let mut b = tx.subscribe();
        for v in 0..5 {
            assert_eq!(tx.send(v).unwrap(), 2);
        }
        for v in 0..5 {
            assert_eq!(a.recv().await, Ok(v));
            assert_eq!(b.recv().await, Ok(v));
        }
        drop(tx);
        assert_eq!(
            a.recv().await,
            Err(local::broadcast::error::RecvError::Closed)
        );

        let (tx, mut a) = broadcast::channel(8);
        let mut b = tx.subscribe();
        for v in 0..5 {
            assert_eq!(tx.send(v).unwrap(), 2);
        }
        for v in 0..5 {
            assert_eq!(a.recv().await, Ok(v));
            assert_eq!(b.recv().await, Ok(v));
        }
        drop(tx);
        assert_eq!(a.recv().await, Err(broadcast::error::RecvError::Closed));
    });
}

#[test]
fn slow_receiver_lags_and_continues() {
    use local::broadcast::error::{RecvError, TryRecvError};
    ringleader::block_on(async {
        // Local: the ring holds exactly `capacity` values.
        let (tx, mut slow) = local::broadcast::channel(3);
        let mut fast = tx.subscribe();
        for v in 0..10 {
            tx.send(v).unwrap();
            assert_eq!(fast.recv().await, Ok(v));
        }
        assert_eq!(slow.recv().await, Err(RecvError::Lagged(7)));
        assert_eq!(slow.recv().await, Ok(7));
        assert_eq!(slow.try_recv(), Ok(8));
        assert_eq!(slow.try_recv(), Ok(9));
        assert_eq!(slow.try_recv(), Err(TryRecvError::Empty));
        assert!(tx.is_empty(), "every value read by all or pushed out");

        // Cross-core: tokio keeps a power of two; use one so the count is exact.
        let (tx, mut slow) = broadcast::channel(4);
        for v in 0..10 {
            tx.send(v).unwrap();
        }
        assert_eq!(
            slow.recv().await,
            Err(broadcast::error::RecvError::Lagged(6))
        );
        for v in 6..10 {
            assert_eq!(slow.recv().await, Ok(v));
        }
    });
}

#[test]
fn dropped_waiting_recv_reads_nothing() {
    ringleader::block_on(async {
        let (tx, mut rx) = local::broadcast::channel(2);
        {
            let mut r = pin!(rx.recv());
            assert!(poll!(r.as_mut()).is_pending());
            tx.send(1).unwrap();
        }
        assert_eq!(rx.recv().await, Ok(1));

        let (tx, mut rx) = broadcast::channel(2);
        {
            let mut r = pin!(rx.recv());
            assert!(poll!(r.as_mut()).is_pending());
            tx.send(2).unwrap();
        }
        assert_eq!(rx.recv().await, Ok(2));
    });
}

#[test]
fn local_values_freed_once_read_by_all() {
    ringleader::block_on(async {
        let (tx, mut a) = local::broadcast::channel(4);
        let mut b = tx.subscribe();
        let v = Rc::new(());
        tx.send(Rc::clone(&v)).unwrap();
        assert_eq!(Rc::strong_count(&v), 2);
        drop(a.recv().await.unwrap());
        assert_eq!(tx.len(), 1, "b has not read it");
        drop(b.recv().await.unwrap());
        assert_eq!(Rc::strong_count(&v), 1, "read by both: freed");
        tx.send(Rc::clone(&v)).unwrap();
        drop((a, b)); // unread receivers give up their claim
        assert_eq!(Rc::strong_count(&v), 1);
        assert!(tx.send(Rc::clone(&v)).is_err(), "no receiver left");
    });
}

#[test]
fn cross_core_receivers_woken() {
    for from in BOTH {
        let (tx, mut rx) = broadcast::channel::<u32>(4);
        let got = wake_across(
            from,
            move || async move { rx.recv().await },
            move || {
                tx.send(5).unwrap();
            },
        );
        assert_eq!(got, Ok(5), "{from:?}");
    }
    // Receivers on both cores, one send from a plain thread.
    let rt = sync_common::two_cores();
    let (tx, _) = broadcast::channel::<u32>(4);
    let listeners: Vec<_> = (0..2)
        .map(|core| {
            let mut rx = tx.subscribe();
            rt.spawn_on(core, move || async move {
                (rx.recv().await, ringleader::current_core())
            })
        })
        .collect();
    std::thread::spawn(move || tx.send(9).unwrap())
        .join()
        .unwrap();
    for (core, l) in listeners.into_iter().enumerate() {
        let got = futures::executor::block_on(l).unwrap();
        assert_eq!(got, (Ok(9), core));
    }
}
