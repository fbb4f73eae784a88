//! The part of a core that other threads may touch: its injection queue and how to wake it.
//!
//! A wake from another thread pushes the task's `Runnable` onto `inject` and, unless a wake-up
//! is already on its way (`notified`), posts a CQE into this core's ring with `MSG_RING`: from
//! a thread that runs a ringleader core, an `IORING_OP_MSG_RING` SQE on that thread's own
//! ring; from any other thread, `IORING_REGISTER_SEND_MSG_RING` (Linux 6.13+). No eventfd.
//!
//! Ordering: the sender pushes, then sets `notified`; the core clears `notified`, then drains.
//! A push that misses a drain always finds `notified` clear and sends a message.
//!
//! The target ring is named by a private duplicate of its fd, shared (`Arc<OwnedFd>`) with
//! every sender until its message has reached the kernel: an `IORING_OP_MSG_RING` SQE names
//! the fd by number and the kernel resolves it only at the sender's next enter, so if the
//! target could close its ring in between, the number could be reused by another file (even
//! another io_uring, which would then receive a CQE it never asked for). While a sender holds
//! the duplicate, the number cannot be reused.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::task::Runnable;
use futures::task::AtomicWaker;

use crate::context;
use crate::sys;

pub(crate) struct Shared {
    pub(crate) id: usize,
    /// A duplicate of the core's ring fd; `None` before the ring exists and once it is gone.
    ring_fd: Mutex<Option<Arc<OwnedFd>>>,
    inject: Mutex<VecDeque<Runnable>>,
    notified: AtomicBool,
    /// No new work is accepted (shutdown has begun).
    pub(crate) closed: AtomicBool,
    /// Asked to stop (multi-core runtime).
    pub(crate) shutdown: AtomicBool,
    pub(crate) shutdown_waker: AtomicWaker,
    /// Wake-ups sent to this core with the ring-less register call.
    pub(crate) msg_ring_sync_sent: AtomicU64,
}

impl Shared {
    pub(crate) fn new(id: usize) -> Self {
        Shared {
            id,
            ring_fd: Mutex::new(None),
            inject: Mutex::new(VecDeque::new()),
            notified: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            shutdown_waker: AtomicWaker::new(),
            msg_ring_sync_sent: AtomicU64::new(0),
        }
    }

    /// Name the core's ring (a duplicate of `fd`, see the module docs). Fails when no fd is
    /// left for the duplicate: the core could not be woken from other threads.
    pub(crate) fn set_ring_fd(&self, fd: &impl AsRawFd) -> std::io::Result<()> {
        // SAFETY: F_DUPFD_CLOEXEC on an fd the caller keeps open; the result is a new fd that
        // nobody else owns.
        let dup = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `dup` is a fresh fd owned by nothing else.
        let owned = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(dup) };
        *self.ring_fd.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(owned));
        Ok(())
    }

    /// The target ring, kept open while the caller holds it.
    fn ring(&self) -> Option<Arc<OwnedFd>> {
        self.ring_fd
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Queue a runnable from another thread and wake the core.
    pub(crate) fn inject(&self, runnable: Runnable) {
        {
            let mut q = self.inject.lock().unwrap_or_else(|p| p.into_inner());
            if !self.closed.load(Ordering::Acquire) {
                q.push_back(runnable);
                drop(q);
                self.notify();
                return;
            }
        }
        // The core has shut down and dropped every task's future on its own thread; what is
        // left of this task is its header, safe to drop anywhere.
        drop(runnable);
    }

    /// Whether a wake-up is pending (the core must not block).
    pub(crate) fn has_pending(&self) -> bool {
        self.notified.load(Ordering::Acquire)
    }

    /// Take everything injected so far (the core's thread only).
    pub(crate) fn drain_into(&self, local: &mut VecDeque<Runnable>) {
        // Every tick: a plain load first, the read-modify-write only when a wake-up came. A
        // `notify` racing the load is seen at the next tick, and before any wait (the core
        // checks `has_pending` before it blocks), so none is lost.
        if self.notified.load(Ordering::Acquire) && self.notified.swap(false, Ordering::AcqRel) {
            let mut q = self.inject.lock().unwrap_or_else(|p| p.into_inner());
            local.extend(q.drain(..));
        }
    }

    /// Make sure the core leaves (or does not enter) its wait and looks at its queue.
    pub(crate) fn notify(&self) {
        if self.notified.swap(true, Ordering::AcqRel) {
            return; // A wake-up is already on its way.
        }
        let Some(ring) = self.ring() else {
            return; // Not started yet (it drains on start) or gone.
        };
        // From a thread running another core: one SQE on that core's own ring, submitted with
        // its next enter. A core never messages itself: it checks `notified` before waiting.
        let sent = context::with_core(|core| {
            if std::ptr::eq(Arc::as_ptr(&core.shared), self) {
                return true;
            }
            match core.driver.try_borrow_mut() {
                Ok(mut d) => {
                    // The driver keeps `ring` open until the SQE has reached the kernel.
                    d.push_msg_wake(Arc::clone(&ring));
                    true
                }
                Err(_) => false,
            }
        });
        if sent != Some(true) {
            // A register call that posts the CQE synchronously, while `ring` holds the fd.
            if sys::send_msg_ring_sync(ring.as_raw_fd(), crate::lifecycle::TAG_MSG_WAKE).is_ok() {
                self.msg_ring_sync_sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Drop whatever is still injected (shutdown, on the core's thread).
    pub(crate) fn take_all(&self) -> VecDeque<Runnable> {
        let mut q = self.inject.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *q)
    }

    pub(crate) fn close(&self) {
        let _q = self.inject.lock().unwrap_or_else(|p| p.into_inner());
        self.closed.store(true, Ordering::Release);
    }

    pub(crate) fn clear_ring_fd(&self) {
        *self.ring_fd.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}
