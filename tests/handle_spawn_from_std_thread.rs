//! `Runtime::handle()` and `Handle::current()` name the same runtime; a plain std thread
//! that runs no core spawns onto each core through a handle and gets the results (the wake
//! travels by `IORING_REGISTER_SEND_MSG_RING`); a spawn after shutdown resolves Cancelled.

use std::sync::mpsc;

use ringleader::{Handle, Runtime};

#[test]
fn std_thread_spawns_on_every_core() {
    let rt = Runtime::builder().cores(2).build().unwrap();
    let handle = rt.handle();
    assert_eq!(handle.cores(), 2);
    assert!(
        Handle::try_current().is_none(),
        "the test thread runs no core"
    );

    let from_core = rt.block_on(|| async { Handle::current() });
    assert!(from_core.same_runtime(&handle));

    let h = handle.clone();
    let got = std::thread::spawn(move || {
        let tasks: Vec<_> = (0..2)
            .flat_map(|core| (0..50).map(move |i| (core, i)))
            .map(|(core, i)| {
                h.spawn_on(core, move || async move {
                    ringleader::yield_now().await;
                    ringleader::ops::nop().await.unwrap();
                    (ringleader::current_core(), i)
                })
            })
            .collect();
        tasks
            .into_iter()
            .map(|t| futures::executor::block_on(t).unwrap())
            .collect::<Vec<_>>()
    })
    .join()
    .unwrap();
    assert_eq!(got.len(), 100);
    for (n, (core, i)) in got.into_iter().enumerate() {
        assert_eq!((core, i), (n / 50, n % 50));
    }

    // Handle::block_on from a plain thread, with a !Send future on the core.
    let h = handle.clone();
    let v = std::thread::spawn(move || {
        h.block_on(1, || async {
            let local = std::rc::Rc::new(5);
            ringleader::yield_now().await;
            *local + ringleader::current_core()
        })
    })
    .join()
    .unwrap();
    assert_eq!(v, 6);
    // tokio's Handle::spawn: Send futures spread over the cores.
    let h = handle.clone();
    let mut cores = std::thread::spawn(move || {
        let hs: Vec<_> = (0..8)
            .map(|_| h.spawn(async { ringleader::current_core() }))
            .collect();
        hs.into_iter()
            .map(|t| futures::executor::block_on(t).unwrap())
            .collect::<Vec<_>>()
    })
    .join()
    .unwrap();
    cores.sort();
    cores.dedup();
    assert_eq!(cores, [0, 1], "round robin reaches both cores");
    rt.shutdown();

    let late = handle.spawn_on(0, || async { 1 });
    let err = futures::executor::block_on(late).unwrap_err();
    assert!(err.is_cancelled(), "{err}");
}

#[test]
fn handle_current_on_a_core_spawns_onto_another() {
    let rt = Runtime::builder().cores(2).build().unwrap();
    let (tx, rx) = mpsc::channel();
    let out = rt.block_on(move || async move {
        let h = Handle::current();
        // A thread started from a core still runs no core: it needs the handle.
        std::thread::spawn(move || {
            let t = h.spawn_on(1, || async { ringleader::current_core() });
            tx.send(futures::executor::block_on(t).unwrap()).unwrap();
        });
        Handle::current()
            .spawn_on(1, || async { ringleader::current_core() + 10 })
            .await
            .unwrap()
    });
    assert_eq!(out, 11);
    assert_eq!(rx.recv().unwrap(), 1);
}

#[test]
#[should_panic(expected = "on a core's thread")]
fn handle_block_on_refuses_a_core_thread() {
    ringleader::block_on(async {
        Handle::current().block_on(0, || async {});
    });
}
