//! Adversarial review of `SignalSet` (`io/src/signal/unix/set.rs`): what happens to a signal
//! that comes while a core has no listener left.
//!
//! The module docs promise: the last listener's drop stops the core's reader, so a signal
//! that arrives meanwhile stays pending in the kernel and goes to the next listener, and
//! the handler installed by the first `signal()` stays, so it never takes the default
//! action (for SIGUSR2: terminate). A signal directed at the core's thread (which blocks
//! it) waits in that thread's queue for the next reader.

use std::time::Duration;

use ringleader::signal::unix::{SignalKind, SignalSet};

fn tgkill_self(sig: libc::c_int) {
    // SAFETY: tgkill only sends a signal, to this thread of this process.
    let r = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), libc::gettid(), sig) };
    assert_eq!(r, 0);
}

fn raise(sig: libc::c_int) {
    // SAFETY: kill only sends a signal, to this process.
    assert_eq!(unsafe { libc::kill(libc::getpid(), sig) }, 0);
}

#[ringleader::test]
async fn adversarial_signal_set_dropped_then_signalled_next_set_receives() {
    let usr2 = SignalKind::user_defined2();
    for round in 0..20 {
        let set = SignalSet::new([usr2, SignalKind::window_change()]).unwrap();
        drop(set);
        // Let the core cancel its reader's read.
        for _ in 0..3 {
            ringleader::yield_now().await;
        }
        // Nobody listens: to this (blocking) thread's queue.
        tgkill_self(libc::SIGUSR2);
        let mut next = SignalSet::new([SignalKind::window_change(), usr2]).unwrap();
        let got = ringleader::time::timeout(Duration::from_secs(10), next.recv()).await;
        assert_eq!(
            got.ok().flatten(),
            Some(usr2),
            "round {round}: a SIGUSR2 that came while no listener was left was lost"
        );
    }
    // Process-directed while nobody listens: it may land on a thread that does not block it
    // (documented loss), but must never terminate the process.
    let set = SignalSet::new([usr2]).unwrap();
    drop(set);
    ringleader::yield_now().await;
    for _ in 0..10 {
        raise(libc::SIGUSR2);
    }
    ringleader::time::sleep(Duration::from_millis(50)).await;
    // Still here; and a new listener still hears the next one.
    let mut next = SignalSet::new([usr2]).unwrap();
    tgkill_self(libc::SIGUSR2);
    let got = ringleader::time::timeout(Duration::from_secs(10), next.recv()).await;
    assert_eq!(got.ok().flatten(), Some(usr2));
}
