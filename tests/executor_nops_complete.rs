//! Acceptance a: many tasks and ops complete with correct results, including when the SQ is
//! too small for the ops in flight (SQ-full path) and when the CQ is smaller than the number
//! of simultaneous completions (CQ overflow path).

mod common;

use std::rc::Rc;

use common::{CountedBuf, counter, pipe, write_all};
use ringleader::{Builder, ops::nop, runtime::SetupFlags, spawn};

#[test]
fn thousand_tasks_times_hundred_nops() {
    let total = ringleader::block_on(async {
        let handles: Vec<_> = (0..1000u64)
            .map(|i| {
                spawn(async move {
                    let mut ok = 0u64;
                    for _ in 0..100 {
                        nop().await.expect("nop");
                        ok += 1;
                    }
                    (i, ok)
                })
            })
            .collect();
        let mut total = 0;
        for (i, h) in handles.into_iter().enumerate() {
            let (id, ok) = h.await.expect("task");
            assert_eq!(id, i as u64, "each handle returns its own task's output");
            total += ok;
        }
        total
    });
    assert_eq!(total, 100_000);
}

#[test]
fn injected_results_reach_the_right_op() {
    ringleader::block_on(async {
        let ops: Vec<_> = (1..=64)
            .map(|e| ringleader::ops::nop_with_result(-e))
            .collect();
        for (i, op) in ops.into_iter().enumerate() {
            let err = op.await.expect_err("injected error");
            assert_eq!(err.raw_os_error(), Some(i as i32 + 1));
        }
    });
}

#[test]
fn four_times_sq_size_of_concurrent_ops_all_complete() {
    let rt = Builder::new().entries(8).build_local().expect("ring");
    let sq = rt.setup_info().sq_entries as usize;
    assert_eq!(sq, 8);
    rt.block_on(async move {
        // Reads on pipes stay in flight, so 4x the SQ of them are pending at once.
        let n = 4 * sq;
        let pipes: Vec<_> = (0..n)
            .map(|_| {
                let (r, w) = pipe();
                (Rc::new(r), w)
            })
            .collect();
        let drops = counter();
        let reads: Vec<_> = pipes
            .iter()
            .map(|(r, _)| {
                let r = Rc::clone(r);
                let buf = CountedBuf::new(16, &drops);
                spawn(async move { ringleader::fd::read(&r, buf, u64::MAX).await })
            })
            .collect();
        // Plus a burst of NOPs from one task, pushed in one poll.
        let nops: Vec<_> = (0..n).map(|_| nop()).collect();
        for op in nops {
            op.await.expect("nop");
        }
        ringleader::yield_now().await;
        let before = ringleader::runtime::stats();
        assert!(before.sq_full > 0, "the SQ-full path ran: {before:?}");
        assert_eq!(
            before.ops_in_flight as usize, n,
            "all reads in flight at once"
        );
        for (i, (_, w)) in pipes.iter().enumerate() {
            write_all(w, &[i as u8; 3]);
        }
        for (i, h) in reads.into_iter().enumerate() {
            let (res, buf) = h.await.expect("task");
            assert_eq!(res.expect("read"), 3);
            assert_eq!(buf.bytes, vec![i as u8; 3]);
        }
    });
}

fn overflow_case(flags: SetupFlags) -> ringleader::runtime::Stats {
    let rt = Builder::new()
        .entries(8)
        .cq_entries(8)
        .setup_flags(flags)
        .build_local()
        .expect("ring");
    assert_eq!(rt.setup_info().cq_entries, 8);
    rt.block_on(async {
        let n = 256;
        let pipes: Vec<_> = (0..n)
            .map(|_| {
                let (r, w) = pipe();
                (Rc::new(r), w)
            })
            .collect();
        let drops = counter();
        let reads: Vec<_> = pipes
            .iter()
            .map(|(r, _)| {
                let r = Rc::clone(r);
                let buf = CountedBuf::new(8, &drops);
                spawn(async move { ringleader::fd::read(&r, buf, u64::MAX).await })
            })
            .collect();
        common::until(
            || ringleader::runtime::stats().ops_in_flight as usize == n,
            "all reads in flight",
        )
        .await;
        // All 256 completions become ready at once; the CQ holds 8.
        for (i, (_, w)) in pipes.iter().enumerate() {
            write_all(w, &(i as u32).to_le_bytes());
        }
        for (i, h) in reads.into_iter().enumerate() {
            let (res, buf) = h.await.expect("task");
            assert_eq!(res.expect("read"), 4);
            assert_eq!(buf.bytes, (i as u32).to_le_bytes());
        }
        drop(pipes);
        ringleader::runtime::stats()
    })
}

#[test]
fn cq_smaller_than_completions_loses_none() {
    // Without deferred task work, the writes' completions are posted as they happen: far more
    // than the CQ holds, so the kernel's overflow list must be flushed.
    let s = overflow_case(SetupFlags::SUBMIT_ALL | SetupFlags::SINGLE_ISSUER);
    assert!(s.cq_overflow > 0, "the overflow path ran: {s:?}");
    // With the default flags (DEFER_TASKRUN) nothing may be lost either.
    overflow_case(SetupFlags::default_set());
}
