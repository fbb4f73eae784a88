//! The kernel serves ops that cannot complete inline from io-wq worker threads, one thread
//! per blocked op: a splice from an empty pipe blocks its worker until data comes. Without a
//! cap, a burst of such ops makes as many threads as ops (`RLIMIT_NPROC` is the kernel's
//! only limit for this "unbounded" class). Every ring ringleader builds caps its io-wq
//! (`IORING_REGISTER_IOWQ_MAX_WORKERS`, right after creation): by default at 64 unbounded
//! workers per ring.
//!
//! The case runs on a thread of its own (the io-wq belongs to the thread that submits) and
//! counts the process's `iou-wrk-*` threads while `BURST` splices wait on empty pipes, then
//! checks every splice completes (`support/iowq_burst.rs`). One test per binary, so no other
//! test adds workers while it counts.

#[path = "support/iowq_burst.rs"]
mod iowq_burst;

use iowq_burst::{BURST, burst, on_own_thread};
use ringleader::Builder;

#[test]
fn iowq_workers_stay_under_the_default_cap_after_a_burst_of_blocking_splices() {
    let seen = on_own_thread(|| {
        let rt = Builder::new().build_local().expect("runtime");
        let seen = burst(&rt);
        eprintln!("default: at most {seen} io-wq workers for {BURST} blocked splices");
        seen
    });
    assert!(seen > 0, "the splices ran in io-wq workers");
    assert!(
        seen <= 64,
        "{seen} io-wq workers for {BURST} blocked splices: the default cap (64 unbounded \
         workers per ring) was not applied"
    );
}
