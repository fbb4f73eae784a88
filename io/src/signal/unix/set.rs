//! [`SignalSet`]: one stream for several signals, which says which one came.

use std::fmt;
use std::io;
use std::task::{Context, Poll};

use super::{Signal, SignalKind, signal};

/// Listeners for several signals at once; [`recv`](SignalSet::recv) says which one came.
///
/// What a server's stop needs: "SIGINT or SIGTERM (or SIGHUP), and which". It is a
/// [`Signal`] per kind (so everything said about [`signal`] holds for each), polled in
/// turn. tokio has no such type; there one writes a `select!` over the streams, which
/// works here too.
///
/// ```
/// use ringleader::signal::unix::{SignalKind, SignalSet};
///
/// ringleader::block_on(async {
///     let mut stop = SignalSet::new([SignalKind::terminate(), SignalKind::user_defined2()])?;
///     // SAFETY: kill only sends a signal, to this process.
///     unsafe { libc::kill(libc::getpid(), libc::SIGUSR2) };
///     assert_eq!(stop.recv().await, Some(SignalKind::user_defined2()));
///     Ok::<_, std::io::Error>(())
/// }).unwrap();
/// ```
///
/// Deliveries coalesce per kind, as for [`Signal`]: each `recv` reports one kind that was
/// delivered since that kind was last reported. When several are waiting, successive calls
/// report each of them, in turn from the one after the kind reported last, so no kind
/// starves another.
///
/// Cancellation: dropping a `recv` future loses nothing; the delivery stays noted.
pub struct SignalSet {
    members: Vec<(SignalKind, Signal)>,
    /// Where the next poll starts looking (one past the kind reported last).
    next: usize,
}

impl SignalSet {
    /// Listen for each of `kinds` (duplicates count once) on the current core.
    ///
    /// # Errors
    /// `InvalidInput` if `kinds` is empty; otherwise the first error of [`signal`] for one
    /// of them (the listeners made before it are dropped; the process-wide changes that
    /// [`signal`] makes for a signal number stay, as they always do).
    ///
    /// # Panics
    /// Outside a ringleader runtime.
    pub fn new(kinds: impl IntoIterator<Item = SignalKind>) -> io::Result<SignalSet> {
        let mut members: Vec<(SignalKind, Signal)> = Vec::new();
        for kind in kinds {
            if members.iter().all(|(k, _)| *k != kind) {
                members.push((kind, signal(kind)?));
            }
        }
        if members.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "ringleader::signal::unix::SignalSet: no signal to listen for",
            ));
        }
        Ok(SignalSet { members, next: 0 })
    }

    /// The kinds listened for, in the order given (without duplicates).
    pub fn kinds(&self) -> impl Iterator<Item = SignalKind> + '_ {
        self.members.iter().map(|(k, _)| *k)
    }

    /// Wait for the next delivery of any of the kinds and say which. `None` only if this
    /// core's signal reader failed (see [`Signal::recv`]).
    pub async fn recv(&mut self) -> Option<SignalKind> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Poll form of [`recv`](SignalSet::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<SignalKind>> {
        let n = self.members.len();
        for i in 0..n {
            let at = (self.next + i) % n;
            let (kind, s) = &mut self.members[at];
            match s.poll_recv(cx) {
                Poll::Ready(Some(())) => {
                    self.next = (at + 1) % n;
                    return Poll::Ready(Some(*kind));
                }
                // Every listener of the core shares its reader: one failed, all did.
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {}
            }
        }
        Poll::Pending
    }
}

impl fmt::Debug for SignalSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalSet")
            .field("kinds", &self.kinds().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}
