//! `ringleader::select!`/`try_join!` drop the futures that lose, and for a ringleader op
//! dropping is cancelling: the losing read's buffer is released exactly once (at the op's
//! final CQE) and the read consumed nothing, so the next read sees the data. tokio's
//! `select!` syntax (`biased;`, `, if`, refutable patterns, `else`) behaves as in tokio.

mod common;

use std::io;
use std::rc::Rc;
use std::time::Duration;

use common::{CountedBuf, counter, get, until};
use ringleader::fd;
use ringleader::sync::oneshot;
use ringleader::time;

#[test]
fn the_losing_read_is_cancelled_its_buffer_released_once_and_nothing_consumed() {
    let drops = counter();
    let d = drops.clone();
    ringleader::block_on(async move {
        let (r, w) = common::pipe();
        let r = Rc::new(r);
        let taken = ringleader::select! {
            res = fd::read(&r, CountedBuf::new(8, &d), u64::MAX) => {
                drop(res);
                "read"
            }
            _ = time::sleep(Duration::from_millis(10)) => "sleep",
        };
        assert_eq!(
            taken, "sleep",
            "nothing was written, so the read cannot win"
        );
        until(|| get(&d) == 1, "the losing read's buffer is released").await;

        common::write_all(&w, b"x");
        let (n, buf) = fd::read(&r, Vec::with_capacity(8), u64::MAX).await;
        assert_eq!(n.unwrap(), 1, "the cancelled read consumed nothing");
        assert_eq!(buf, b"x");
    });
    assert_eq!(get(&drops), 1, "the buffer is dropped exactly once");
}

#[test]
fn try_join_cancels_the_others_on_the_first_error() {
    let drops = counter();
    let d = drops.clone();
    ringleader::block_on(async move {
        let (r, _w) = common::pipe();
        let r = Rc::new(r);
        let read = async {
            let (n, _buf) = fd::read(&r, CountedBuf::new(8, &d), u64::MAX).await;
            n
        };
        let failed = async {
            time::sleep(Duration::from_millis(5)).await;
            Err::<(), _>(io::Error::other("second failed"))
        };
        let err = ringleader::try_join!(read, failed).unwrap_err();
        assert_eq!(err.to_string(), "second failed");
        until(|| get(&d) == 1, "the pending read's buffer is released").await;
    });
    assert_eq!(get(&drops), 1);
}

#[test]
fn tokio_syntax_biased_preconditions_refutable_patterns_and_else() {
    ringleader::block_on(async {
        // `biased;`: with both ready, the first branch wins every time.
        for _ in 0..20 {
            let v = ringleader::select! {
                biased;
                a = async { 1 } => a,
                b = async { 2 } => b,
            };
            assert_eq!(v, 1);
        }

        // A pattern that does not match disables its branch; the other branch still wins.
        let (tx, rx) = oneshot::channel();
        let sender = ringleader::spawn(async move {
            time::sleep(Duration::from_millis(2)).await;
            tx.send(7).unwrap();
        });
        let v = ringleader::select! {
            Some(x) = async { None::<i32> } => x,
            v = rx => v.unwrap(),
        };
        assert_eq!(v, 7);
        sender.await.unwrap();

        // A false precondition: the branch is never polled; with every branch disabled,
        // `else` runs.
        let polled = std::cell::Cell::new(false);
        let v = ringleader::select! {
            _ = async { polled.set(true) }, if false => 0,
            Some(x) = async { None::<i32> } => x,
            else => -1,
        };
        assert_eq!(v, -1);
        assert!(!polled.get());

        // `join!` runs both on this task; nothing is dropped early.
        let (a, b) = ringleader::join!(time::sleep(Duration::from_millis(1)), async { 3 });
        assert_eq!((a, b), ((), 3));
    });
}
