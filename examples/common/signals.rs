//! Stop signals for the long-running examples (`nbd_server`, `proxy`, `echo`,
//! `http_server`), which include this file with `#[path]`: block them in every thread, then
//! take them in `main` with `sigwait`, so a Ctrl-C or SIGTERM runs the normal shutdown (and
//! removes temporary files) instead of killing the process mid-write.

/// Block SIGINT, SIGTERM and SIGHUP in the calling thread (and the threads it starts), so
/// that only [`wait_for_stop`] receives them. SIGINT and SIGTERM are first reset to their
/// default action: a shell starts background jobs with SIGINT ignored, and an ignored signal
/// is discarded instead of waiting to be taken. A SIGHUP ignored on purpose (`nohup`) stays
/// ignored.
pub fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: `sigset_t` is plain data; sigemptyset initialises it before any other use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid signal numbers; signal() with SIG_DFL installs no handler code, and
    // querying SIGHUP's disposition (set, then restored) runs no handler either; `set` is a
    // valid sigset_t that pthread_sigmask only reads (no old mask is written).
    unsafe {
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM] {
            libc::signal(sig, libc::SIG_DFL);
            libc::sigaddset(&mut set, sig);
        }
        let hup = libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, hup);
        if hup != libc::SIG_IGN {
            libc::sigaddset(&mut set, libc::SIGHUP);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    set
}

/// Wait for one of the blocked stop signals; returns its number.
pub fn wait_for_stop(set: &libc::sigset_t) -> i32 {
    loop {
        let mut sig = 0;
        // SAFETY: `set` is an initialised sigset_t and `sig` a writable int.
        if unsafe { libc::sigwait(set, &mut sig) } == 0 {
            return sig;
        }
    }
}
