//! `timeout` on a read that never completes returns a timeout error and leaves no op behind;
//! `timeout_op` gives the read's buffer back.

mod common;

use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{CountedBuf, counter, get, pipe, until};
use ringleader::time::{interval, sleep, timeout, timeout_op};

#[test]
fn timeout_on_a_never_completing_read_errors_and_leaves_no_op() {
    ringleader::block_on(async {
        let drops = counter();
        let (r, _w) = pipe();
        let base = ringleader::runtime::stats();
        let res = timeout(
            Duration::from_millis(10),
            ringleader::fd::read(&Rc::new(r), CountedBuf::new(32, &drops), u64::MAX),
        )
        .await;
        let Err(err) = res else {
            panic!("the read never completes, yet the timeout returned Ok")
        };
        assert_eq!(
            std::io::Error::from(err).kind(),
            std::io::ErrorKind::TimedOut
        );
        until(
            || ringleader::runtime::stats().slots_occupied == base.slots_occupied,
            "slots back to baseline",
        )
        .await;
        assert_eq!(
            ringleader::runtime::stats().ops_in_flight,
            base.ops_in_flight
        );
        assert_eq!(get(&drops), 1, "the parked buffer was released once");
    });
}

#[test]
fn timeout_op_returns_the_buffer_and_leaves_no_op() {
    ringleader::block_on(async {
        let (r, _w) = pipe();
        let base = ringleader::runtime::stats();
        let read = ringleader::fd::read(&Rc::new(r), Vec::with_capacity(128), u64::MAX);
        let out = timeout_op(Duration::from_millis(5), read)
            .await
            .expect_err("times out");
        let (res, buf) = out.output;
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
        assert_eq!(buf.capacity(), 128, "the same buffer came back");
        let s = ringleader::runtime::stats();
        assert_eq!(s.slots_occupied, base.slots_occupied);
        assert_eq!(s.ops_in_flight, base.ops_in_flight);
    });
}

#[test]
fn timeout_that_does_not_expire_gives_the_value() {
    ringleader::block_on(async {
        let v = timeout(Duration::from_secs(10), async { 5 }).await.unwrap();
        assert_eq!(v, 5);
        let (r, w) = pipe();
        common::write_all(&w, b"ok");
        let (res, buf) = timeout_op(
            Duration::from_secs(10),
            ringleader::fd::read(&Rc::new(r), Vec::with_capacity(8), u64::MAX),
        )
        .await
        .unwrap();
        assert_eq!((res.unwrap(), &buf[..]), (2, &b"ok"[..]));
    });
}

#[test]
fn sleep_waits_at_least_its_duration_and_interval_ticks() {
    ringleader::block_on(async {
        let t = Instant::now();
        sleep(Duration::from_millis(3)).await;
        assert!(
            t.elapsed() >= Duration::from_millis(3),
            "a sleep never ends early"
        );
        let mut iv = interval(Duration::from_millis(2));
        let first = iv.tick().await;
        let second = iv.tick().await;
        assert!(
            second >= first + Duration::from_millis(2),
            "ticks are a period apart"
        );
    });
}
