//! Setup flags are probed; what was applied and why anything was dropped is queryable.

use ringleader::{Builder, runtime::SetupFlags};

#[test]
fn default_flags_are_applied_on_this_kernel() {
    let rt = Builder::new().build_local().unwrap();
    let info = rt.setup_info();
    assert_eq!(info.requested, SetupFlags::default_set());
    assert_eq!(
        info.applied,
        SetupFlags::default_set(),
        "fallbacks: {:?}",
        info.fallbacks
    );
    assert!(info.ring_fd_registered);
    assert!(info.nodrop);
    assert_eq!(info.cq_entries, 4 * info.sq_entries);
}

#[test]
fn sqpoll_drops_defer_taskrun_and_says_why_and_still_runs_ops() {
    let rt = Builder::new().sqpoll(50).build_local().unwrap();
    let info = rt.setup_info();
    assert!(info.applied.contains(SetupFlags::SQPOLL));
    assert!(!info.applied.contains(SetupFlags::DEFER_TASKRUN));
    assert!(
        info.fallbacks.iter().any(|f| f.contains("DEFER_TASKRUN")),
        "{:?}",
        info.fallbacks
    );
    rt.block_on(async {
        for _ in 0..100 {
            ringleader::ops::nop().await.unwrap();
        }
        ringleader::time::sleep(std::time::Duration::from_millis(1)).await;
    });
}

#[test]
fn plain_ring_without_optional_flags_runs_ops() {
    let rt = Builder::new()
        .setup_flags(SetupFlags::empty())
        .register_ring_fd(false)
        .build_local()
        .unwrap();
    assert!(!rt.setup_info().ring_fd_registered);
    rt.block_on(async {
        let hs: Vec<_> = (0..32)
            .map(|_| ringleader::spawn(ringleader::ops::nop()))
            .collect();
        for h in hs {
            h.await.unwrap().unwrap();
        }
    });
}
