//! The cooperative budget: a task that never waits on the ring (it only yields) cannot
//! starve completion reaping, because the loop reaps at least every `tick_budget` polls.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

#[test]
fn busy_yielding_task_does_not_starve_a_timer() {
    let rt = ringleader::Builder::new()
        .tick_budget(16)
        .build_local()
        .unwrap();
    rt.block_on(async {
        let fired = Rc::new(Cell::new(false));
        let f2 = fired.clone();
        let timer = ringleader::spawn(async move {
            ringleader::time::sleep(Duration::from_millis(5)).await;
            f2.set(true);
        });
        // Several busy tasks keep the run queue non-empty for as long as the timer is pending.
        let spinners: Vec<_> = (0..4)
            .map(|_| {
                let fired = fired.clone();
                ringleader::spawn(async move {
                    let mut spins = 0u64;
                    while !fired.get() {
                        ringleader::yield_now().await;
                        spins += 1;
                        assert!(spins < 50_000_000, "the timer never fired");
                    }
                    spins
                })
            })
            .collect();
        timer.await.unwrap();
        for s in spinners {
            assert!(s.await.unwrap() > 0);
        }
    });
}
