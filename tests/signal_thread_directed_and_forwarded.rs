//! The two ways a signal reaches the signalfd readers: sent to a core's thread (which
//! blocks it), it waits in that thread's queue and that core's read takes it; sent to a
//! thread that does not block it (this test's thread), the handler installed by the first
//! `signal()` runs there and forwards it with `tgkill` to a reading core. Either way every
//! listener on both cores wakes. With no listener left, a delivery is not fatal.

use std::time::Duration;

use futures::channel::oneshot;
use ringleader::signal::unix::{SignalKind, signal};

fn tgkill(tid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: tgkill only sends a signal, to a thread of this process.
    let r = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, sig) };
    assert_eq!(r, 0, "tgkill: {}", std::io::Error::last_os_error());
}

fn gettid() -> libc::pid_t {
    // SAFETY: no preconditions.
    unsafe { libc::gettid() }
}

fn is_blocked_here(sig: libc::c_int) -> bool {
    // SAFETY: a zeroed sigset_t is valid storage for pthread_sigmask to fill; the new set
    // is null, so nothing changes.
    unsafe {
        let mut cur: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut cur);
        libc::sigismember(&cur, sig) == 1
    }
}

#[test]
fn core_thread_and_unblocked_thread_deliveries_reach_both_cores() {
    let rt = ringleader::Runtime::builder().cores(2).build().unwrap();
    let (tids_tx, tids_rx) = std::sync::mpsc::channel();
    let (ack_tx, ack_rx) = std::sync::mpsc::channel::<usize>();

    // The sender: a plain thread that does not block SIGUSR1. Each delivery waits for both
    // cores' acknowledgements (deliveries coalesce per listener otherwise).
    let sender = std::thread::spawn(move || {
        let (tid0, tid1) = tids_rx.recv().unwrap();
        assert!(
            !is_blocked_here(libc::SIGUSR1),
            "the sender lets it through"
        );
        // To core 1's thread, to core 0's thread, to this thread (forwarded by the handler).
        for tid in [tid1, tid0, gettid()] {
            tgkill(tid, libc::SIGUSR1);
            let mut cores = [
                ack_rx
                    .recv_timeout(Duration::from_secs(10))
                    .expect("an ack"),
                ack_rx
                    .recv_timeout(Duration::from_secs(10))
                    .expect("an ack"),
            ];
            cores.sort();
            assert_eq!(cores, [0, 1], "both cores saw the delivery to {tid}");
        }
    });

    let ack1 = ack_tx.clone();
    rt.block_on(move || async move {
        let mut s0 = signal(SignalKind::user_defined1()).unwrap();
        assert!(
            is_blocked_here(libc::SIGUSR1),
            "signal() blocks it on its core"
        );
        let (ready_tx, ready_rx) = oneshot::channel();
        let on1 = ringleader::spawn_on(1, move || async move {
            let mut s1 = signal(SignalKind::user_defined1()).unwrap();
            ready_tx.send(gettid()).unwrap();
            for _ in 0..3 {
                s1.recv().await.unwrap();
                ack1.send(1).unwrap();
            }
        });
        let tid1 = ready_rx.await.unwrap();
        tids_tx.send((gettid(), tid1)).unwrap();
        for _ in 0..3 {
            ringleader::time::timeout(Duration::from_secs(10), s0.recv())
                .await
                .expect("delivery reaches core 0")
                .unwrap();
            ack_tx.send(0).unwrap();
        }
        ringleader::time::timeout(Duration::from_secs(10), on1)
            .await
            .expect("deliveries reach core 1")
            .unwrap();
    });
    sender.join().unwrap();

    // No listener left: a delivery to an unblocked thread runs the handler, which finds no
    // reader; the process lives on.
    tgkill(gettid(), libc::SIGUSR1);
    std::thread::sleep(Duration::from_millis(20));
    rt.shutdown();
}
