//! `Builder::spin_before_park`: a core that runs out of work keeps reaping for the spin time
//! before it blocks, so a completion arriving within it is taken without a blocking wait; one
//! arriving later is still taken, after the spin parked. (The fixed mode, which spins the
//! whole bound every time; the adaptive default is in `executor_adaptive_spin.rs`.)

use std::time::Duration;

use ringleader::Builder;

fn waits_and_parks(spin: Duration, sleep: Duration) -> (u64, u64) {
    let rt = Builder::new()
        .spin_before_park(spin)
        .spin_fixed(true)
        .build_local()
        .unwrap();
    rt.block_on(async move {
        let before = ringleader::runtime::stats();
        ringleader::time::sleep(sleep).await;
        let after = ringleader::runtime::stats();
        (
            after.waits - before.waits,
            after.spin_parks - before.spin_parks,
        )
    })
}

#[test]
fn a_completion_within_the_spin_is_reaped_without_parking() {
    let (waits, parks) = waits_and_parks(Duration::from_secs(5), Duration::from_millis(1));
    assert_eq!(
        (waits, parks),
        (0, 0),
        "the timer fired while the core spun"
    );
}

#[test]
fn without_spin_the_core_parks_for_the_same_completion() {
    let (waits, parks) = waits_and_parks(Duration::ZERO, Duration::from_millis(1));
    assert!(waits >= 1, "no spin: the core blocks for the timer");
    assert_eq!(parks, 0);
}

#[test]
fn a_completion_after_the_spin_is_still_reaped_after_parking() {
    let (waits, parks) = waits_and_parks(Duration::from_micros(100), Duration::from_millis(30));
    assert!(parks >= 1, "the spin ran out and the core parked");
    assert!(waits >= 1);
}
