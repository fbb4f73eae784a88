//! Process-wide signal state: the shared signalfd and its mask, the safety-net handler that
//! forwards a signal landing on a thread that does not block it, and one broadcast slot per
//! signal number (a generation counter plus the wakers of its listeners).
//!
//! Everything here is shared by all cores of all runtimes in the process, because signal
//! dispositions, pending signals and the signalfd's mask are process-wide.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::task::Waker;

use slab_free::WakerSlab;

/// Highest signal number the tables hold (Linux's `_NSIG - 1`).
pub(crate) const MAX_SIGNAL: usize = 64;
/// Reader threads a signal can be forwarded to (threads beyond that are not forwarded to;
/// they still read what the kernel queues for the whole process).
const FORWARD_SLOTS: usize = 16;

/// One signal number's listeners.
pub(crate) struct Slot {
    /// Deliveries so far; a listener has news when it differs from what it last saw.
    pub(crate) generation: AtomicU64,
    pub(crate) wakers: Mutex<WakerSlab>,
}

pub(crate) static SLOTS: LazyLock<Vec<Slot>> = LazyLock::new(|| {
    (0..=MAX_SIGNAL)
        .map(|_| Slot {
            generation: AtomicU64::new(0),
            wakers: Mutex::new(WakerSlab::default()),
        })
        .collect()
});

/// Record one delivery of `sig` and wake every listener (on whatever core it lives; a
/// waker of another core's task travels there by `MSG_RING`).
pub(crate) fn broadcast(sig: usize) {
    let Some(slot) = SLOTS.get(sig) else { return };
    slot.generation.fetch_add(1, Ordering::AcqRel);
    let wakers = lock(&slot.wakers).take_all();
    for w in wakers {
        w.wake();
    }
}

/// Wake every listener of every signal (a reader stopped: its listeners look at why).
pub(crate) fn wake_all_listeners() {
    for slot in SLOTS.iter() {
        let wakers = lock(&slot.wakers).take_all();
        for w in wakers {
            w.wake();
        }
    }
}

/// Thread ids of core threads that block a signal and read the signalfd, per signal: where
/// the handler forwards a signal that landed on a thread that does not block it. Written
/// under `PROCESS`, read by the handler (lock-free).
static FORWARD: [[AtomicI32; FORWARD_SLOTS]; MAX_SIGNAL + 1] =
    [const { [const { AtomicI32::new(0) }; FORWARD_SLOTS] }; MAX_SIGNAL + 1];

struct Process {
    /// The signalfd every reader reads (each core through its own duplicate, which shares
    /// this file and so its mask). `None` until the first registration.
    fd: Option<Arc<OwnedFd>>,
    /// Every signal registered so far (the signalfd's mask; it only grows).
    mask: libc::sigset_t,
}

// SAFETY: `sigset_t` is plain data; the fd is an owned file descriptor.
unsafe impl Send for Process {}

static PROCESS: LazyLock<Mutex<Process>> = LazyLock::new(|| {
    Mutex::new(Process {
        fd: None,
        mask: empty_set(),
    })
});

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn empty_set() -> libc::sigset_t {
    // SAFETY: `sigset_t` is plain data; sigemptyset initialises it.
    unsafe {
        let mut set: libc::sigset_t = mem::zeroed();
        libc::sigemptyset(&mut set);
        set
    }
}

/// Register `sig`: the first time in the process, install the forwarding handler and add it
/// to the signalfd's mask. Returns the signalfd and the mask of every registered signal.
pub(crate) fn register(sig: libc::c_int) -> io::Result<(Arc<OwnedFd>, libc::sigset_t)> {
    let mut p = lock(&PROCESS);
    // SAFETY: `p.mask` is an initialised set and `sig` a valid signal number (checked by
    // `SignalKind`'s users before they get here).
    let known = unsafe { libc::sigismember(&p.mask, sig) } == 1;
    if !known {
        install_handler(sig)?;
        let mut mask = p.mask;
        // SAFETY: as above.
        unsafe { libc::sigaddset(&mut mask, sig) };
        let old = p.fd.as_ref().map_or(-1, |f| f.as_raw_fd());
        // SAFETY: `mask` is an initialised set; `old` is -1 (a new signalfd) or our own
        // signalfd, whose mask this replaces for every duplicate of it.
        let fd = unsafe { libc::signalfd(old, &mask, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        if p.fd.is_none() {
            // SAFETY: a new signalfd owned by nothing else.
            p.fd = Some(Arc::new(unsafe { OwnedFd::from_raw_fd(fd) }));
        }
        p.mask = mask;
    }
    let fd = Arc::clone(p.fd.as_ref().expect("signalfd set above"));
    Ok((fd, p.mask))
}

/// Block every signal of `set` in the calling thread.
pub(crate) fn block_in_this_thread(set: &libc::sigset_t) {
    // SAFETY: `set` is an initialised sigset_t, only read; no old mask is written.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, set, std::ptr::null_mut()) };
}

/// The calling thread's id (for `tgkill`).
pub(crate) fn this_tid() -> libc::pid_t {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Offer thread `tid` (which blocks `sig` and reads the signalfd) as a forwarding target
/// for `sig`. Returns the slot taken, to give back with [`unforward`].
pub(crate) fn forward_to(sig: usize, tid: libc::pid_t) -> Option<usize> {
    let row = FORWARD.get(sig)?;
    row.iter().position(|s| {
        s.compare_exchange(0, tid, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    })
}

/// Give back a slot [`forward_to`] took for `tid`.
pub(crate) fn unforward(sig: usize, slot: usize, tid: libc::pid_t) {
    if let Some(s) = FORWARD.get(sig).and_then(|r| r.get(slot)) {
        let _ = s.compare_exchange(tid, 0, Ordering::AcqRel, Ordering::Relaxed);
    }
}

/// The safety net: runs only on a thread that does not block `sig` (a thread started before
/// the signal was registered, or the main thread waiting in `Runtime::block_on`). It sends
/// the signal on, with `tgkill`, to a core thread that blocks it and reads the signalfd,
/// where it waits in that thread's queue for the read. Async-signal-safe: atomics and
/// syscalls only; errno is preserved.
extern "C" fn forward(sig: libc::c_int) {
    // SAFETY: __errno_location returns this thread's errno slot.
    let errno = unsafe { *libc::__errno_location() };
    if let Some(row) = FORWARD.get(sig as usize) {
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        for s in row {
            let tid = s.load(Ordering::Acquire);
            // SAFETY: tgkill only sends a signal; a tid that has exited gives ESRCH and the
            // next one is tried.
            if tid != 0 && unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, sig) } == 0 {
                break;
            }
        }
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Whether `sig`'s disposition is `SIG_IGN` now (`false` for an invalid number).
pub(crate) fn is_ignored(sig: libc::c_int) -> bool {
    // SAFETY: a zeroed `sigaction` is valid storage; with a null new action, sigaction only
    // writes the current one into `old` and changes nothing.
    unsafe {
        let mut old: libc::sigaction = mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN
    }
}

fn install_handler(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: `sigaction` is plain data, fully set below; the handler is an
    // async-signal-safe `extern "C" fn(c_int)` (no SA_SIGINFO), valid for the process's life.
    unsafe {
        let mut sa: libc::sigaction = mem::zeroed();
        sa.sa_sigaction = forward as extern "C" fn(libc::c_int) as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESTART | libc::SA_ONSTACK;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A small slab of optional wakers (one entry per listener).
mod slab_free {
    use std::task::Waker;

    #[derive(Default)]
    pub(crate) struct WakerSlab {
        entries: Vec<Option<Option<Waker>>>,
        free: Vec<usize>,
    }

    impl WakerSlab {
        pub(crate) fn insert(&mut self) -> usize {
            if let Some(k) = self.free.pop() {
                self.entries[k] = Some(None);
                k
            } else {
                self.entries.push(Some(None));
                self.entries.len() - 1
            }
        }
        pub(crate) fn set(&mut self, key: usize, waker: &Waker) {
            if let Some(Some(w)) = self.entries.get_mut(key) {
                match w {
                    Some(old) if old.will_wake(waker) => {}
                    _ => *w = Some(waker.clone()),
                }
            }
        }
        pub(crate) fn remove(&mut self, key: usize) -> Option<Waker> {
            let w = self.entries.get_mut(key)?.take()?;
            self.free.push(key);
            w
        }
        pub(crate) fn take_all(&mut self) -> Vec<Waker> {
            self.entries
                .iter_mut()
                .filter_map(|e| e.as_mut().and_then(Option::take))
                .collect()
        }
    }
}

/// Set the waker of listener `key` of `slot`.
pub(crate) fn set_waker(slot: &Slot, key: usize, waker: &Waker) {
    lock(&slot.wakers).set(key, waker);
}

pub(crate) fn add_listener(slot: &Slot) -> usize {
    lock(&slot.wakers).insert()
}

pub(crate) fn remove_listener(slot: &Slot, key: usize) {
    // The waker is dropped outside the lock (user code may run in its drop).
    let w = lock(&slot.wakers).remove(key);
    drop(w);
}
