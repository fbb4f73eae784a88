//! Acceptance c: an op dropped after the kernel already finished it (its result races the
//! cancel) releases its resources exactly once, and a result that arrives for a dropped op
//! is handed to the op's recycling hook.

mod common;
#[path = "support/quarantine.rs"]
mod quarantine;
#[global_allocator]
static ALLOC: quarantine::Quarantine = quarantine::Quarantine;

use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use common::{CountedBuf, Rng, counter, get, pipe, until, write_all};
use io_uring::opcode;
use ringleader::ops::{Completable, Cqe, Op, Orphan};

#[test]
fn op_completed_before_drop_releases_once() {
    ringleader::block_on(async {
        let drops = counter();
        let base = ringleader::runtime::stats();
        let (r, w) = pipe();
        write_all(&w, b"ready");
        let op = ringleader::fd::read(&Rc::new(r), CountedBuf::new(16, &drops), u64::MAX);
        // Let the kernel complete it and the driver reap it, without polling the op.
        until(
            || ringleader::runtime::stats().ops_in_flight == base.ops_in_flight,
            "read completed",
        )
        .await;
        assert_eq!(
            ringleader::runtime::stats().slots_occupied,
            base.slots_occupied + 1,
            "result waits in its slot"
        );
        assert_eq!(get(&drops), 0);
        drop(op);
        assert_eq!(get(&drops), 1, "released right away, once");
        assert_eq!(
            ringleader::runtime::stats().slots_occupied,
            base.slots_occupied
        );
        ringleader::yield_now().await;
        ringleader::yield_now().await;
        assert_eq!(get(&drops), 1, "and never again");
    });
    quarantine::check_all();
}

/// An op whose late result is recorded by its recycling hook.
struct Recorder {
    seen: Arc<AtomicI32>,
    drops: Arc<AtomicUsize>,
    _buf: Vec<u8>,
}
impl Drop for Recorder {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}
impl Orphan for Recorder {
    fn orphan_cqe(&mut self, cqe: &Cqe) {
        self.seen.store(cqe.result, Ordering::SeqCst);
    }
}
impl Completable for Recorder {
    type Output = i32;
    fn complete(self, cqe: Cqe) -> i32 {
        cqe.result
    }
}

#[test]
fn result_racing_the_cancel_is_recycled_and_released_once() {
    ringleader::block_on(async {
        let mut rng = Rng::new(0x5eed);
        let base = ringleader::runtime::stats();
        let drops = counter();
        let mut completed_anyway = 0;
        let iterations = 2_000;
        for i in 0..iterations {
            let (r, w) = pipe();
            let seen = Arc::new(AtomicI32::new(i32::MIN));
            let mut buf = Vec::with_capacity(8);
            let entry =
                opcode::Read::new(io_uring::types::Fd(r.as_raw_fd()), buf.as_mut_ptr(), 8).build();
            // SAFETY: the Vec's heap buffer is owned by the op data until the final CQE.
            let op = unsafe {
                Op::submit(
                    entry,
                    Recorder {
                        seen: seen.clone(),
                        drops: drops.clone(),
                        _buf: buf,
                    },
                )
            };
            // Random interleavings of: submit, data arrives, drop.
            match rng.below(3) {
                0 => {
                    write_all(&w, b"abc");
                    drop(op);
                }
                1 => {
                    ringleader::yield_now().await; // submitted, armed
                    write_all(&w, b"abc"); // completion pending as task work
                    drop(op); // cancel races the result
                }
                _ => {
                    ringleader::yield_now().await;
                    drop(op); // cancelled while idle
                    write_all(&w, b"abc");
                }
            }
            until(
                || ringleader::runtime::stats().ops_in_flight == base.ops_in_flight,
                "op finished",
            )
            .await;
            assert_eq!(get(&drops), i + 1, "iteration {i}: released exactly once");
            let s = seen.load(Ordering::SeqCst);
            assert!(
                s == 3 || s == -libc::ECANCELED,
                "iteration {i}: unexpected late result {s}"
            );
            if s == 3 {
                completed_anyway += 1;
            }
            drop((r, w));
        }
        assert_eq!(
            ringleader::runtime::stats().slots_occupied,
            base.slots_occupied
        );
        assert!(
            completed_anyway > 0,
            "some results raced the cancel and were recycled"
        );
    });
    quarantine::check_all();
}
