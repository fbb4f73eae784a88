//! `Builder::iowq_max_workers(bounded, unbounded)` caps the io-wq worker threads of every
//! ring it builds (`IORING_REGISTER_IOWQ_MAX_WORKERS`), reports the caps in force in
//! `SetupInfo::iowq_max_workers`, and work beyond the cap waits for a worker instead of
//! starting a thread: a burst of `BURST` splices blocked on empty pipes never has more than
//! `bounded + unbounded` workers, and every splice still completes once data comes
//! (`support/iowq_burst.rs`). One test per binary, so no other test adds workers while it
//! counts.

#[path = "support/iowq_burst.rs"]
mod iowq_burst;

use iowq_burst::{BURST, burst, on_own_thread};
use ringleader::Builder;

#[test]
fn iowq_max_workers_caps_the_workers_of_a_burst_of_blocking_splices() {
    let seen = on_own_thread(|| {
        let rt = Builder::new()
            .iowq_max_workers(2, 8)
            .build_local()
            .expect("runtime");
        let caps = rt.setup_info().iowq_max_workers;
        assert_eq!(caps, Some([2, 8]), "the caps in force");
        let seen = burst(&rt);
        eprintln!("iowq_max_workers(2, 8): at most {seen} io-wq workers for {BURST} splices");
        seen
    });
    assert!(seen > 0, "the splices ran in io-wq workers");
    assert!(
        seen <= 2 + 8,
        "{seen} io-wq workers with iowq_max_workers(2, 8)"
    );
}
