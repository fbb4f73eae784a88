//! Stop signals for the long-running examples (`nbd_server`, `proxy`, `echo`,
//! `http_server`), which include this file with `#[path]`: a task on core 0 listens with
//! `ringleader::signal` for SIGINT, SIGTERM and SIGHUP and hands each delivery to `main`,
//! which runs the normal shutdown (and removes temporary files) instead of dying
//! mid-write.
//!
//! The library does the signal work (see `ringleader::signal`): listening blocks the
//! signals on the cores, reads them from a signalfd through core 0's ring, and installs a
//! handler that passes a signal landing on any other thread on to core 0, so no thread
//! takes a signal's default action. That handler also replaces `SIG_IGN`, so a server that
//! a shell started in the background (SIGINT ignored) still stops on SIGINT. A SIGHUP
//! ignored on purpose (`nohup`) is not listened for and stays ignored.

use std::io;
use std::sync::mpsc;
use std::time::Duration;

use ringleader::Runtime;
use ringleader::signal::unix::{SignalKind, SignalSet, is_ignored};

/// The stop signals, as they arrive, for `main`.
pub struct StopSignals {
    rx: mpsc::Receiver<SignalKind>,
}

impl StopSignals {
    /// Start listening on core 0 of `rt`; returns once the signals are taken, so call it
    /// before announcing the server (a signal sent as soon as the address is known must stop
    /// it, not kill it).
    pub fn listen(rt: &Runtime) -> io::Result<StopSignals> {
        let mut kinds = vec![SignalKind::interrupt(), SignalKind::terminate()];
        if !is_ignored(SignalKind::hangup()) {
            kinds.push(SignalKind::hangup());
        }
        let (ready_tx, ready_rx) = mpsc::channel();
        let (tx, rx) = mpsc::channel();
        rt.spawn_on(0, move || async move {
            let mut set = match SignalSet::new(kinds) {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            // Ends with the runtime (or if the signal reader fails: `main` then hears of it
            // as a closed channel).
            while let Some(kind) = set.recv().await {
                if tx.send(kind).is_err() {
                    return;
                }
            }
        })
        .detach();
        ready_rx
            .recv()
            .map_err(|_| io::Error::other("core 0 stopped before listening for signals"))??;
        Ok(StopSignals { rx })
    }

    /// Wait for a stop signal; its number. An error if the listener failed (no signal can
    /// be heard any more).
    pub fn wait(&self) -> io::Result<i32> {
        self.rx
            .recv()
            .map(|k| k.as_raw_value())
            .map_err(|_| io::Error::other("the signal listener on core 0 failed"))
    }

    /// Wait up to `dur` for another stop signal; its number, or `None` (also when the
    /// listener failed: the caller's deadline still ends the wait).
    #[allow(dead_code)] // Only nbd_server's drain listens for a second signal.
    pub fn wait_timeout(&self, dur: Duration) -> Option<i32> {
        match self.rx.recv_timeout(dur) {
            Ok(k) => Some(k.as_raw_value()),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(dur);
                None
            }
        }
    }
}
