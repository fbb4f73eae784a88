//! Signals reach every listener on every core: `SIGTERM` raised to the whole process
//! (`kill(getpid())`, from the test thread, which does not block it) wakes a
//! `signal(SignalKind::terminate())` on core 0 and one on core 1, and `SIGINT` then
//! resolves `ctrl_c()` on both cores. The process is not terminated: the signals are
//! blocked on the cores and read from the signalfd, and a delivery to a thread that does
//! not block them is forwarded. Repeated deliveries wake a listener again, a dropped `recv`
//! future loses nothing; an invalid signal is refused.

use std::time::Duration;

use futures::channel::oneshot;
use ringleader::signal::unix::{SignalKind, signal};

fn raise(sig: libc::c_int) {
    // SAFETY: kill only sends a signal, to this process.
    assert_eq!(unsafe { libc::kill(libc::getpid(), sig) }, 0);
}

#[test]
fn terminate_and_ctrl_c_on_two_cores() {
    let rt = ringleader::Runtime::builder().cores(2).build().unwrap();
    rt.block_on(|| async {
        let mut term0 = signal(SignalKind::terminate()).unwrap();
        let ctrl_c0 = ringleader::spawn(ringleader::signal::ctrl_c());

        let (ready_tx, ready_rx) = oneshot::channel();
        let on1 = ringleader::spawn_on(1, move || async move {
            let mut term1 = signal(SignalKind::terminate()).unwrap();
            let mut int1 = signal(SignalKind::interrupt()).unwrap();
            ready_tx.send(()).unwrap();
            term1.recv().await.unwrap();
            let got_term = ringleader::current_core();
            int1.recv().await.unwrap();
            (got_term, ringleader::current_core())
        });
        ready_rx.await.unwrap();
        ringleader::yield_now().await; // ctrl_c0 starts listening
        assert!(!ctrl_c0.is_finished());

        // From a plain thread, as `kill` from outside would.
        std::thread::spawn(|| raise(libc::SIGTERM)).join().unwrap();
        ringleader::time::timeout(Duration::from_secs(10), term0.recv())
            .await
            .expect("SIGTERM reaches core 0")
            .unwrap();
        assert!(!ctrl_c0.is_finished(), "SIGTERM is not SIGINT");

        raise(libc::SIGINT);
        ringleader::time::timeout(Duration::from_secs(10), ctrl_c0)
            .await
            .expect("SIGINT reaches ctrl_c on core 0")
            .unwrap()
            .unwrap();
        let (t, i) = ringleader::time::timeout(Duration::from_secs(10), on1)
            .await
            .expect("both signals reach core 1")
            .unwrap();
        assert_eq!((t, i), (1, 1));

        // A second delivery wakes the same listener again.
        raise(libc::SIGTERM);
        ringleader::time::timeout(Duration::from_secs(10), term0.recv())
            .await
            .expect("a second SIGTERM")
            .unwrap();
    });
    // Still alive: neither signal ran its default action.
    rt.shutdown();
}

#[test]
fn user_signal_on_a_local_runtime_and_refused_kinds() {
    ringleader::block_on(async {
        for bad in [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, 0, 65, -1] {
            let err = signal(SignalKind::from_raw(bad)).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{bad}");
        }
        let mut a = signal(SignalKind::user_defined2()).unwrap();
        let mut b = signal(SignalKind::user_defined2()).unwrap();
        raise(libc::SIGUSR2);
        a.recv().await.unwrap();
        b.recv().await.unwrap();
        // A recv future dropped before the delivery loses nothing: the next recv sees it.
        assert!(futures::FutureExt::now_or_never(a.recv()).is_none());
        raise(libc::SIGUSR2);
        ringleader::time::timeout(Duration::from_secs(10), a.recv())
            .await
            .expect("a delivery after a dropped recv")
            .unwrap();
        b.recv().await.unwrap();
        // Deliveries coalesce per listener: two raises before a recv may give one.
        drop(b);
        raise(libc::SIGUSR2);
        ringleader::time::timeout(Duration::from_secs(10), a.recv())
            .await
            .expect("a listener outlives another's drop")
            .unwrap();
    });
}
