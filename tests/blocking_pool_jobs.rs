//! `spawn_blocking`: 1,000 jobs with correct results; the core's event loop keeps running
//! (a timer on the same core keeps firing) while jobs block; a panicking job is a JoinError.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

#[test]
fn thousand_jobs_give_correct_results() {
    ringleader::block_on(async {
        let hs: Vec<_> = (0..1000u64)
            .map(|i| ringleader::spawn_blocking(move || i * i + 1))
            .collect();
        for (i, h) in hs.into_iter().enumerate() {
            let i = i as u64;
            assert_eq!(h.await.unwrap(), i * i + 1);
        }
    });
}

#[test]
fn blocking_jobs_never_block_the_core_event_loop() {
    ringleader::block_on(async {
        let ticks = Rc::new(Cell::new(0u32));
        let t2 = ticks.clone();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        // A job that blocks its thread until the core has ticked many times.
        let job = ringleader::spawn_blocking(move || {
            stop_rx.recv().expect("released by the core");
            "released"
        });
        let timer = ringleader::spawn(async move {
            for _ in 0..20 {
                ringleader::time::sleep(Duration::from_millis(1)).await;
                t2.set(t2.get() + 1);
            }
        });
        timer.await.unwrap();
        assert_eq!(
            ticks.get(),
            20,
            "the timer kept firing while the job blocked"
        );
        stop_tx.send(()).unwrap();
        assert_eq!(job.await.unwrap(), "released");
    });
}

#[test]
fn panicking_job_gives_join_error() {
    ringleader::block_on(async {
        let err = ringleader::spawn_blocking(|| -> u8 { panic!("job failed") })
            .await
            .expect_err("panicked");
        assert!(err.is_panic());
        assert!(err.to_string().contains("job failed"));
        // The pool still works.
        assert_eq!(ringleader::spawn_blocking(|| 3).await.unwrap(), 3);
    });
}

#[test]
fn result_awaited_on_another_core_of_a_runtime() {
    let rt = ringleader::Runtime::builder().cores(2).build().unwrap();
    let v = futures::executor::block_on(rt.spawn_on(1, || async {
        let core = ringleader::current_core();
        let v = ringleader::spawn_blocking(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        (core, v)
    }))
    .unwrap();
    assert_eq!(v.0, 1);
    assert_eq!(v.1.as_deref(), Some("ringleader-blocking"));
}
