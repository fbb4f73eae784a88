//! Unix signals by kind: [`signal`] returns a [`Signal`] stream (tokio's
//! `tokio::signal::unix`); [`SignalSet`] listens for several and says which came;
//! [`is_ignored`] tells whether the process was started ignoring a signal (`nohup`).

mod set;

pub use set::SignalSet;

use std::fmt;
use std::io;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::process::{self, SLOTS};
use super::reader::CoreSignals;

/// Which signal to listen for (tokio's `SignalKind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SignalKind(libc::c_int);

impl SignalKind {
    /// Any signal by number (`libc::SIGUSR1`, a real-time signal, ...). [`signal`] refuses
    /// the ones that cannot be taken this way (see there).
    pub const fn from_raw(signum: libc::c_int) -> SignalKind {
        SignalKind(signum)
    }
    /// The signal number.
    pub const fn as_raw_value(&self) -> libc::c_int {
        self.0
    }
    /// `SIGALRM`.
    pub const fn alarm() -> SignalKind {
        SignalKind(libc::SIGALRM)
    }
    /// `SIGCHLD`.
    pub const fn child() -> SignalKind {
        SignalKind(libc::SIGCHLD)
    }
    /// `SIGHUP`: the terminal went away, or (by convention) "reload your configuration".
    pub const fn hangup() -> SignalKind {
        SignalKind(libc::SIGHUP)
    }
    /// `SIGINT`: Ctrl-C.
    pub const fn interrupt() -> SignalKind {
        SignalKind(libc::SIGINT)
    }
    /// `SIGIO`.
    pub const fn io() -> SignalKind {
        SignalKind(libc::SIGIO)
    }
    /// `SIGPIPE` (ringleader's sends never raise it; other code may).
    pub const fn pipe() -> SignalKind {
        SignalKind(libc::SIGPIPE)
    }
    /// `SIGQUIT`.
    pub const fn quit() -> SignalKind {
        SignalKind(libc::SIGQUIT)
    }
    /// `SIGTERM`: the polite request to stop (what `kill` and service managers send).
    pub const fn terminate() -> SignalKind {
        SignalKind(libc::SIGTERM)
    }
    /// `SIGUSR1`.
    pub const fn user_defined1() -> SignalKind {
        SignalKind(libc::SIGUSR1)
    }
    /// `SIGUSR2`.
    pub const fn user_defined2() -> SignalKind {
        SignalKind(libc::SIGUSR2)
    }
    /// `SIGWINCH`.
    pub const fn window_change() -> SignalKind {
        SignalKind(libc::SIGWINCH)
    }
}

impl From<libc::c_int> for SignalKind {
    fn from(signum: libc::c_int) -> SignalKind {
        SignalKind(signum)
    }
}

impl From<SignalKind> for libc::c_int {
    fn from(kind: SignalKind) -> libc::c_int {
        kind.0
    }
}

/// Listen for `kind` on the current core: from now on every delivery of the signal to the
/// process wakes this [`Signal`] (and every other one, on any core).
///
/// The first call for a signal number changes how the process handles it, for good (as
/// tokio does): the signal is blocked on this core's thread (and, by a message, on the
/// runtime's other cores) and read from a signalfd, and a handler is installed for the
/// threads that still let it through, so it no longer terminates the process. See the
/// [module docs](super) for the whole design and its caveats.
///
/// ```
/// use ringleader::signal::unix::{SignalKind, signal};
///
/// ringleader::block_on(async {
///     let mut usr1 = signal(SignalKind::user_defined1())?;
///     // SAFETY: kill only sends a signal, to this process.
///     unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
///     usr1.recv().await.expect("the reader runs");
///     Ok::<_, std::io::Error>(())
/// }).unwrap();
/// ```
///
/// # Errors
/// `InvalidInput` for signals that cannot be taken (`SIGKILL`, `SIGSTOP`, the faults
/// `SIGILL`, `SIGFPE`, `SIGSEGV`, `SIGBUS`, `SIGTRAP`, the real-time signals the C library
/// keeps for itself, and numbers out of range); the errno of `signalfd`, `sigaction` or
/// `fcntl` if the kernel refuses.
///
/// # Panics
/// Outside a ringleader runtime.
pub fn signal(kind: SignalKind) -> io::Result<Signal> {
    let sig = kind.0;
    assert!(
        ringleader_executor::ring_id().is_some(),
        "ringleader::signal::unix::signal called outside a ringleader runtime"
    );
    check(sig)?;
    let core = CoreSignals::current();
    let (fd, mask) = process::register(sig)?;
    process::block_in_this_thread(&mask);
    block_on_other_cores(mask);
    let slot = &SLOTS[sig as usize];
    let key = process::add_listener(slot);
    let seen = slot.generation.load(std::sync::atomic::Ordering::Acquire);
    if let Err(e) = core.add_listener(sig as usize, &fd) {
        process::remove_listener(slot, key);
        return Err(e);
    }
    Ok(Signal {
        sig: sig as usize,
        key,
        seen,
        core,
    })
}

/// Whether the process ignores `kind` now (its disposition is `SIG_IGN`).
///
/// A program started by `nohup` ignores `SIGHUP`; a shell starts a background job with
/// `SIGINT` and `SIGQUIT` ignored. [`signal`] listens regardless: the handler it installs
/// replaces `SIG_IGN` for good. A program that wants to honour such a choice asks first,
/// before its first [`signal`] for that kind (afterwards the answer is `false`):
///
/// ```
/// use ringleader::signal::unix::{SignalKind, SignalSet, is_ignored};
///
/// ringleader::block_on(async {
///     let mut kinds = vec![SignalKind::interrupt(), SignalKind::terminate()];
///     // Stop on SIGHUP too, unless started under nohup.
///     if !is_ignored(SignalKind::hangup()) {
///         kinds.push(SignalKind::hangup());
///     }
///     let stop = SignalSet::new(kinds)?;
///     # drop(stop);
///     Ok::<_, std::io::Error>(())
/// }).unwrap();
/// ```
///
/// A number that is not a signal is not ignored (`false`). Needs no runtime.
pub fn is_ignored(kind: SignalKind) -> bool {
    process::is_ignored(kind.0)
}

fn check(sig: libc::c_int) -> io::Result<()> {
    let forbidden = [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGTRAP,
    ];
    let reserved = sig > 31 && sig < libc::SIGRTMIN();
    if sig < 1 || sig as usize > process::MAX_SIGNAL || forbidden.contains(&sig) || reserved {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("ringleader::signal: signal {sig} cannot be listened for"),
        ));
    }
    Ok(())
}

/// Ask every other core of the current runtime to block `mask` in its thread, so that the
/// kernel queues the signals for the signalfd instead of running the handler there.
fn block_on_other_cores(mask: libc::sigset_t) {
    let Some(handle) = ringleader_executor::Handle::try_current() else {
        return;
    };
    let me = ringleader_executor::current_core();
    let mask = SendSet(mask);
    for core in (0..handle.cores()).filter(|&c| c != me) {
        handle
            .spawn_on(core, move || async move {
                let mask = mask;
                process::block_in_this_thread(&mask.0);
            })
            .detach();
    }
}

#[derive(Clone, Copy)]
struct SendSet(libc::sigset_t);
// SAFETY: `sigset_t` is plain data (a bit array).
unsafe impl Send for SendSet {}

/// A stream of deliveries of one signal on one core (tokio's `Signal`); `!Send`: it belongs
/// to the core that created it.
///
/// Deliveries that arrive while nobody polls are not queued one by one: `recv` resolves
/// once for any number of deliveries since the last `recv`, as in tokio (and as the kernel
/// merges a standard signal that is already pending).
///
/// Cancellation: dropping a `recv` future loses nothing; a delivery stays noted until the
/// next `recv`. Dropping the last `Signal` of a core stops that core's reader: a signal the
/// reader had already taken from the kernel at that moment is not delivered.
pub struct Signal {
    sig: usize,
    key: usize,
    /// The slot's generation when this listener last reported.
    seen: u64,
    core: Rc<CoreSignals>,
}

impl Signal {
    /// Wait for the next delivery. `None` only if this core's reader failed (the signalfd
    /// read returned an error other than `EAGAIN`/`EINTR`); it then stays `None`.
    pub async fn recv(&mut self) -> Option<()> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Poll form of [`recv`](Signal::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
        use std::sync::atomic::Ordering;
        let slot = &SLOTS[self.sig];
        let g = slot.generation.load(Ordering::Acquire);
        if g != self.seen {
            self.seen = g;
            return Poll::Ready(Some(()));
        }
        if self.core.failed.get() {
            return Poll::Ready(None);
        }
        process::set_waker(slot, self.key, cx.waker());
        // A broadcast between the check and the registration took the wakers before ours.
        let g = slot.generation.load(Ordering::Acquire);
        if g != self.seen {
            self.seen = g;
            return Poll::Ready(Some(()));
        }
        Poll::Pending
    }
}

impl Drop for Signal {
    fn drop(&mut self) {
        process::remove_listener(&SLOTS[self.sig], self.key);
        self.core.remove_listener();
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signal")
            .field("signal", &self.sig)
            .finish_non_exhaustive()
    }
}
