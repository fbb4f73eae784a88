//! Acceptance b: dropping 10,000 in-flight ops (reads on a pipe nobody writes, long
//! timeouts) leaks nothing: every parked resource is dropped exactly once, no slot stays
//! occupied once the cancels complete, and the process's fd count is unchanged.
//!
//! This file holds one test so that the fd count is not disturbed by other tests' threads.

mod common;
#[path = "support/quarantine.rs"]
mod quarantine;
#[global_allocator]
static ALLOC: quarantine::Quarantine = quarantine::Quarantine;

use std::rc::Rc;
use std::time::Duration;

use common::{CountedBuf, counter, fd_count, get, pipe, until};
use io_uring::{opcode, types::Timespec};
use ringleader::ops::{Completable, Cqe, Op, Orphan};

/// A long timeout whose timespec drop is counted.
struct CountedTimeout {
    _ts: Box<Timespec>,
    drops: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}
impl Drop for CountedTimeout {
    fn drop(&mut self) {
        self.drops.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}
impl Orphan for CountedTimeout {}
impl Completable for CountedTimeout {
    type Output = i32;
    fn complete(self, cqe: Cqe) -> i32 {
        cqe.result
    }
}

fn long_timeout(drops: &std::sync::Arc<std::sync::atomic::AtomicUsize>) -> Op<CountedTimeout> {
    let ts = Box::new(Timespec::new().sec(3600));
    let entry = opcode::Timeout::new(&*ts as *const Timespec).build();
    // SAFETY: the boxed timespec is owned by the op's data until its final CQE.
    unsafe {
        Op::submit(
            entry,
            CountedTimeout {
                _ts: ts,
                drops: drops.clone(),
            },
        )
    }
}

#[test]
fn dropping_ten_thousand_in_flight_ops_leaks_nothing() {
    let fds_before = fd_count();
    let read_drops = counter();
    let timer_drops = counter();
    ringleader::block_on(async {
        let baseline = ringleader::runtime::stats();
        let (r, w) = pipe();
        let r = Rc::new(r);
        let mut reads = Vec::new();
        let mut timers = Vec::new();
        for _ in 0..5_000 {
            reads.push(ringleader::fd::read(
                &r,
                CountedBuf::new(64, &read_drops),
                u64::MAX,
            ));
            timers.push(long_timeout(&timer_drops));
        }
        // Let the kernel take them all.
        until(
            || ringleader::runtime::stats().ops_in_flight == baseline.ops_in_flight + 10_000,
            "10,000 ops in flight",
        )
        .await;
        assert_eq!(
            get(&read_drops) + get(&timer_drops),
            0,
            "nothing released early"
        );

        drop(reads);
        drop(timers);
        // Parked, not freed: the kernel may still own them until the cancels complete.
        until(
            || ringleader::runtime::stats().ops_in_flight == baseline.ops_in_flight,
            "cancels reaped",
        )
        .await;
        ringleader::time::sleep(Duration::from_millis(5)).await;
        let after = ringleader::runtime::stats();
        assert_eq!(
            after.slots_occupied, baseline.slots_occupied,
            "no slot stays occupied"
        );
        assert!(
            after.cancels >= 10_000,
            "each drop pushed an ASYNC_CANCEL: {after:?}"
        );
        assert_eq!(
            get(&read_drops),
            5_000,
            "every read buffer dropped exactly once"
        );
        assert_eq!(
            get(&timer_drops),
            5_000,
            "every timespec dropped exactly once"
        );
        // The pipe still works and nobody consumed from it.
        common::write_all(&w, b"x");
        let (n, buf) = ringleader::fd::read(&r, Vec::with_capacity(4), u64::MAX).await;
        assert_eq!((n.unwrap(), &buf[..]), (1, &b"x"[..]));
    });
    assert_eq!(get(&read_drops), 5_000);
    assert_eq!(get(&timer_drops), 5_000);
    assert_eq!(fd_count(), fds_before, "fd count unchanged");
    quarantine::check_all();
}
