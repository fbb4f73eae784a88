//! The adaptive spin-before-park (the default of `Builder::spin_before_park`), through a
//! runtime: it stops spinning when spins find nothing, and sits out after a spin lost its
//! CPU to another thread, where spinning only burns CPU per request. The policy's every
//! rule (including growing back on short waits, which a busy machine makes untestable
//! here) has unit tests in executor/src/core.rs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ringleader::Builder;

/// One test at a time: the CPU-sharing test's busy thread would make the others' spins
/// lose their CPU (and sit out, as they should).
fn alone() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// `(waits, spin_parks, spin_holdoffs)` over `sleeps` on a local runtime.
fn run(spin: Duration, fixed: bool, sleeps: Vec<Duration>) -> (u64, u64, u64) {
    let rt = Builder::new()
        .spin_before_park(spin)
        .spin_fixed(fixed)
        .build_local()
        .unwrap();
    rt.block_on(async move {
        let before = ringleader::runtime::stats();
        for d in sleeps {
            ringleader::time::sleep(d).await;
        }
        let after = ringleader::runtime::stats();
        (
            after.waits - before.waits,
            after.spin_parks - before.spin_parks,
            after.spin_holdoffs - before.spin_holdoffs,
        )
    })
}

#[test]
fn fruitless_spins_back_off_where_the_fixed_spin_keeps_spinning() {
    let _alone = alone();
    let long = vec![Duration::from_millis(3); 20];
    let (_, fixed_parks, _) = run(Duration::from_micros(200), true, long.clone());
    assert_eq!(fixed_parks, 20, "the fixed spin spins before every park");
    let (waits, parks, _) = run(Duration::from_micros(200), false, long);
    assert!(waits >= 20, "every 3 ms sleep ends in a park");
    // 200, 100, 50, 25, 12, 6, 3 µs, then below the 2 µs floor: at most 7 spins.
    assert!(
        parks <= 7,
        "the adaptive spin kept spinning on long waits: {parks} fruitless spins of 20"
    );
}

#[test]
fn a_spin_that_loses_its_cpu_sits_out() {
    let _alone = alone();
    // Pin this thread and a busy thread to the same CPU: a 50 ms spin waiting for a 20 ms
    // timer shares the CPU with it, so its CPU time falls far short of its wall time.
    let cpu = pin_to_any_cpu();
    let stop = Arc::new(AtomicBool::new(false));
    let busy = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            pin_to(cpu);
            while !stop.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        })
    };
    let sleeps = vec![Duration::from_millis(20); 6];
    let (waits, _, holdoffs) = run(Duration::from_millis(50), false, sleeps);
    stop.store(true, Ordering::Relaxed);
    busy.join().unwrap();
    assert!(holdoffs >= 1, "a spin sharing its CPU was not noticed");
    assert!(
        waits >= 5,
        "after losing the CPU the core parks instead of spinning: {waits} parks of 6 sleeps"
    );
}

fn pin_to_any_cpu() -> usize {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is writable and its size is passed.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    assert_eq!(r, 0);
    // SAFETY: CPU_ISSET reads the set for a CPU number below CPU_SETSIZE.
    let cpu = (0..libc::CPU_SETSIZE as usize)
        .find(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .expect("an allowed CPU");
    pin_to(cpu);
    cpu
}

fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET adds one CPU below
    // CPU_SETSIZE; sched_setaffinity reads the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set),
            0
        );
    }
}
