//! Acceptance f: shutting down with ops in flight returns and frees everything.

mod common;

use std::rc::Rc;
use std::sync::Arc;

use common::{CountedBuf, counter, get, pipe};
use ringleader::{Builder, Runtime};

#[test]
fn multi_core_shutdown_with_ops_in_flight_frees_everything() {
    let rt = Runtime::builder().cores(2).build().expect("runtime");
    let drops = counter();
    // The write ends stay here (open, so the reads wait); each task reads a dup of its
    // pipe's read end, which its read keeps open until its final CQE.
    let (readers, writers): (Vec<_>, Vec<_>) = (0..64).map(|_| pipe()).unzip();
    let fds = Arc::new(readers);
    let started = counter();
    for core in 0..2 {
        for k in 0..32 {
            let fds = fds.clone();
            let drops = drops.clone();
            let started = started.clone();
            let h = rt.spawn_on(core, move || async move {
                started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let fd = Rc::new(fds[core * 32 + k].try_clone().unwrap());
                let (_r, _b) =
                    ringleader::fd::read(&fd, CountedBuf::new(32, &drops), u64::MAX).await;
                // Also a long sleep, never reached.
                ringleader::time::sleep(std::time::Duration::from_secs(3600)).await;
            });
            h.detach();
        }
    }
    while get(&started) < 64 {
        std::thread::yield_now();
    }
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(get(&drops), 0);
    rt.shutdown();
    assert_eq!(get(&drops), 64, "every parked buffer freed exactly once");
    drop(writers);
}

#[test]
fn local_runtime_drop_cancels_pending_tasks() {
    let drops = counter();
    let (r, _w) = pipe();
    let r = Rc::new(r);
    {
        let rt = Builder::new().build_local().unwrap();
        let d = drops.clone();
        rt.block_on(async move {
            for _ in 0..10 {
                let (d, r) = (d.clone(), Rc::clone(&r));
                ringleader::spawn(async move {
                    let _ = ringleader::fd::read(&r, CountedBuf::new(8, &d), u64::MAX).await;
                })
                .detach();
            }
            ringleader::yield_now().await;
            ringleader::yield_now().await;
            assert_eq!(ringleader::runtime::stats().ops_in_flight, 10);
        });
        assert_eq!(get(&drops), 0, "tasks outlive block_on");
    }
    assert_eq!(
        get(&drops),
        10,
        "dropping the runtime freed every task's buffer once"
    );
}

#[test]
fn join_handle_of_task_cut_by_shutdown_reports_cancelled() {
    let rt = Runtime::builder().cores(1).build().unwrap();
    let h = rt.spawn_on(0, || async {
        ringleader::time::sleep(std::time::Duration::from_secs(3600)).await;
    });
    std::thread::sleep(std::time::Duration::from_millis(10));
    rt.shutdown();
    let err = futures::executor::block_on(h).expect_err("cut by shutdown");
    assert!(err.is_cancelled());
}
