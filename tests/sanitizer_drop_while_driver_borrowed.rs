//! Issue 12, hole 1, under the quarantine allocator: an in-flight pipe read dropped while the
//! driver is borrowed (inside `with_submitter`, or by a waker's `clone` or `drop` while the
//! runtime stores a waker), after which the kernel's read completes, must not have written
//! into freed memory.
//!
//! Each scenario runs in a child process (this binary re-executed for one test), so that the
//! quarantine's abort, a crash or a panic shows as the child's failure. The child drops the
//! read (surviving a panic of the drop, to see what the kernel does next), fills the heap
//! with canary blocks of the buffer's size, writes into the pipe so that the kernel's read
//! completes, runs the loop until every op is reaped, then checks the quarantine (a freed
//! block whose poison changed aborts with a report) and the canaries (a freed and reused
//! block the kernel wrote into). Before the fix the drop panicked and the unwind freed the
//! buffer: the kernel's bytes landed in it.

#[path = "support/borrowed_drop.rs"]
mod borrowed_drop;
mod common;
#[path = "support/quarantine.rs"]
mod quarantine;
#[path = "support/reexec.rs"]
mod reexec;

#[global_allocator]
static ALLOC: quarantine::Quarantine = quarantine::Quarantine;

use std::panic::{AssertUnwindSafe, catch_unwind};

use borrowed_drop::{Bystander, Kind, Trigger, Victim, drop_while_borrowed};
use common::{get, until};

/// The victim buffer's size (and the canaries').
const SIZE: usize = 1000;
/// What the kernel's read brings.
const PAYLOAD: u8 = b'K';
const CANARY: u8 = 0xC3;
const CANARIES: usize = 512;

fn scenario(kind: Kind, trigger: Trigger) {
    ringleader::block_on(async {
        let baseline = ringleader::runtime::stats();
        let mut bystander = Bystander::new();
        let mut victim = Victim::new(kind, SIZE, PAYLOAD);
        ringleader::ops::nop().await.unwrap();

        let op = victim.op.take().unwrap();
        let dropped = catch_unwind(AssertUnwindSafe(|| {
            drop_while_borrowed(trigger, op, &mut bystander)
        }));
        let released_early = get(&victim.kernel_drops);
        // Where a freed buffer would be handed out again (were it not quarantined).
        let canaries: Vec<Vec<u8>> = (0..CANARIES).map(|_| vec![CANARY; SIZE]).collect();
        victim.feed();
        bystander.finish().await;
        until(
            || ringleader::runtime::stats().ops_in_flight == baseline.ops_in_flight,
            "every op reaped",
        )
        .await;
        for _ in 0..20 {
            ringleader::yield_now().await;
        }

        // Aborts with a report if the kernel wrote into a freed (quarantined) block.
        quarantine::check_all();
        for (i, c) in canaries.iter().enumerate() {
            if let Some(at) = c.iter().position(|&b| b != CANARY) {
                panic!(
                    "heap canary {i} changed at offset {at} to {:#04x}: the kernel wrote into \
                     a freed block that was handed out again",
                    c[at]
                );
            }
        }
        assert!(
            dropped.is_ok(),
            "dropping the op via {trigger:?} panicked (message above)"
        );
        assert_eq!(
            released_early, 0,
            "the buffer was released at the drop, while the kernel owned it"
        );
        victim.assert_released_once(trigger).await;
    });
    quarantine::check_all();
    assert!(quarantine::checks() > 0, "the quarantine checked blocks");
}

/// In the parent: run this test's scenario in a child and require a clean pass.
fn run(test: &str, kind: Kind, trigger: Trigger) {
    if reexec::case().is_some() {
        scenario(kind, trigger);
        return;
    }
    // A small scenario: keep deep free-site stacks for the report.
    reexec::run(test, "scenario", &[("RINGLEADER_QUARANTINE_FRAMES", "16")]).assert_passed();
}

#[test]
fn read_dropped_inside_with_submitter() {
    run(
        "read_dropped_inside_with_submitter",
        Kind::Read,
        Trigger::WithSubmitter,
    );
}

#[test]
fn read_dropped_by_a_waker_clone() {
    run(
        "read_dropped_by_a_waker_clone",
        Kind::Read,
        Trigger::WakerClone,
    );
}

#[test]
fn read_dropped_by_a_waker_drop() {
    run(
        "read_dropped_by_a_waker_drop",
        Kind::Read,
        Trigger::WakerDrop,
    );
}

#[test]
fn group_dropped_inside_with_submitter() {
    run(
        "group_dropped_inside_with_submitter",
        Kind::Group,
        Trigger::WithSubmitter,
    );
}
