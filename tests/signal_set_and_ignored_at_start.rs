//! `SignalSet` says which of its signals came, reports each waiting one in turn (a kind
//! delivered again does not starve another), loses nothing when a `recv` is dropped, and
//! refuses an empty or invalid set. `is_ignored` sees a signal the process was started
//! ignoring (`nohup`, a shell's background job); `signal()` listens for it all the same,
//! and afterwards it is no longer ignored.

use std::pin::pin;

use futures::FutureExt;
use ringleader::signal::unix::{Signal, SignalKind, SignalSet, is_ignored, signal};

fn raise(sig: libc::c_int) {
    // SAFETY: kill only sends a signal, to this process.
    assert_eq!(unsafe { libc::kill(libc::getpid(), sig) }, 0);
}

/// Raise each of `sigs` and wait until the readers have broadcast them (seen by `probes`).
async fn deliver(sigs: &[libc::c_int], probes: &mut [&mut Signal]) {
    for &s in sigs {
        raise(s);
    }
    for p in probes.iter_mut() {
        p.recv().await.unwrap();
    }
}

/// One test, in steps: the signal state is process-wide, and a core that stops listening
/// while another core's delivery is in its reader could drop that delivery (see `Signal`).
#[ringleader::test]
async fn signal_set_and_is_ignored() {
    set_reports_which_signal_came_and_each_in_turn().await;
    empty_or_invalid_sets_are_refused();
    a_signal_ignored_at_start_is_seen_by_is_ignored_and_still_listened_for().await;
}

async fn set_reports_which_signal_came_and_each_in_turn() {
    let (a, b) = (SignalKind::user_defined2(), SignalKind::window_change());
    let mut set = SignalSet::new([a, b, a]).unwrap();
    assert_eq!(
        set.kinds().collect::<Vec<_>>(),
        [a, b],
        "duplicates count once"
    );
    let mut pa = signal(a).unwrap();
    let mut pb = signal(b).unwrap();

    deliver(&[libc::SIGWINCH], &mut [&mut pb]).await;
    assert_eq!(set.recv().await, Some(b));

    // Both waiting: one each, in turn, starting after the kind reported last (`b`).
    deliver(&[libc::SIGUSR2, libc::SIGWINCH], &mut [&mut pa, &mut pb]).await;
    assert_eq!(set.recv().await, Some(a));
    assert_eq!(set.recv().await, Some(b));
    assert!(
        set.recv().now_or_never().is_none(),
        "nothing else is waiting"
    );

    // Both waiting again; `a` is reported, then comes again before the next recv: `b` is
    // reported next all the same (a busy kind does not starve another).
    deliver(&[libc::SIGUSR2, libc::SIGWINCH], &mut [&mut pa, &mut pb]).await;
    assert_eq!(set.recv().await, Some(a));
    deliver(&[libc::SIGUSR2], &mut [&mut pa]).await;
    assert_eq!(set.recv().await, Some(b));
    assert_eq!(set.recv().await, Some(a));

    // A dropped recv loses nothing.
    while set.recv().now_or_never().is_some() {}
    {
        let mut r = pin!(set.recv());
        assert!(futures::poll!(r.as_mut()).is_pending());
        deliver(&[libc::SIGUSR2], &mut [&mut pa]).await;
    }
    assert_eq!(set.recv().await, Some(a));
}

fn empty_or_invalid_sets_are_refused() {
    let e = SignalSet::new([]).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    let e = SignalSet::new([SignalKind::alarm(), SignalKind::from_raw(libc::SIGKILL)]).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
}

async fn a_signal_ignored_at_start_is_seen_by_is_ignored_and_still_listened_for() {
    // SAFETY: setting SIG_IGN installs no handler code; nothing else here uses SIGUSR1.
    unsafe { libc::signal(libc::SIGUSR1, libc::SIG_IGN) };
    let usr1 = SignalKind::user_defined1();
    assert!(is_ignored(usr1));
    assert!(!is_ignored(SignalKind::quit()), "SIGQUIT keeps its default");
    assert!(!is_ignored(SignalKind::from_raw(0)), "not a signal");
    let mut s = signal(usr1).unwrap();
    assert!(!is_ignored(usr1), "signal() replaced SIG_IGN");
    raise(libc::SIGUSR1);
    s.recv().await.unwrap();
}
