//! The adaptive spin-before-park (the default of `Builder::spin_before_park`): it stops
//! spinning when spins find nothing, starts again when waits turn short, and sits out after
//! a spin lost its CPU to another thread, where spinning only burns CPU per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ringleader::Builder;

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
fn spinning_resumes_once_waits_are_short_again() {
    // Long waits first switch spinning off; then 100 µs waits, each well within the 5 ms
    // bound: the first is parked, and restores the budget for the next. A busy machine can
    // preempt a spin (which then sits out on purpose): try again a few times.
    for attempt in 1..=5 {
        let mut sleeps = vec![Duration::from_millis(20); 12];
        sleeps.extend(vec![Duration::from_micros(100); 20]);
        let (waits, _, holdoffs) = run(Duration::from_millis(5), false, sleeps);
        if holdoffs > 0 {
            eprintln!("attempt {attempt}: a spin lost its CPU ({holdoffs} hold-offs); again");
            continue;
        }
        // 12 long sleeps park; of the short ones only the first may (plus a couple the
        // timer's granularity lets slip past a spin).
        assert!(
            waits <= 12 + 4,
            "spinning did not resume on short waits: {waits} parks for 12 long and 20 short sleeps"
        );
        return;
    }
    panic!("every attempt had a spin preempted: the machine is too busy to tell");
}

#[test]
fn a_spin_that_loses_its_cpu_sits_out() {
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
