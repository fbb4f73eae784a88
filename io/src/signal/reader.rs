//! The per-core side: one reader task per core that has listeners, reading the shared
//! signalfd through the ring and broadcasting what it dequeues.
//!
//! The read is `IORING_OP_READ` on a non-blocking signalfd. Since Linux 6.8 a signalfd
//! supports non-blocking reads from io_uring, which then waits with an internal poll and
//! retries the read in the core's own thread; on older kernels the read fails with `EAGAIN`
//! at once, and the reader waits with `IORING_OP_POLL_ADD` before reading again. Either way
//! the read runs on the core's thread, so it dequeues that thread's own pending signals (a
//! forwarded `tgkill`) as well as the process's.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;

use io_uring::{opcode, types};
use ringleader_executor::{Completable, Cqe, JoinHandle, Op, Orphan};

use super::process;

/// Size of `struct signalfd_siginfo`.
const SIGINFO: usize = 128;
/// Signals one read takes at most.
const BATCH: usize = 16;

/// A core's listeners and its reader.
pub(crate) struct CoreSignals {
    ring: Option<u64>,
    listeners: Cell<usize>,
    reader: RefCell<Option<JoinHandle<()>>>,
    /// Forwarding slots this core's thread holds: (signal, slot).
    forwards: RefCell<Vec<(usize, usize)>>,
    /// Set when the reader stopped on an error: listeners then end (`recv` gives `None`).
    pub(crate) failed: Rc<Cell<bool>>,
    tid: libc::pid_t,
}

thread_local! {
    static CORE: RefCell<Option<Rc<CoreSignals>>> = const { RefCell::new(None) };
}

impl CoreSignals {
    /// This core's state (a new one for each runtime that runs on this thread).
    pub(crate) fn current() -> Rc<CoreSignals> {
        let ring = ringleader_executor::ring_id();
        CORE.with(|c| {
            let mut c = c.borrow_mut();
            match &*c {
                Some(s) if s.ring == ring => Rc::clone(s),
                _ => {
                    let s = Rc::new(CoreSignals {
                        ring,
                        listeners: Cell::new(0),
                        reader: RefCell::new(None),
                        forwards: RefCell::new(Vec::new()),
                        failed: Rc::new(Cell::new(false)),
                        tid: process::this_tid(),
                    });
                    *c = Some(Rc::clone(&s));
                    s
                }
            }
        })
    }

    /// A listener for `sig` arrives on this core (whose thread already blocks `mask`): make
    /// sure the core reads the signalfd and is a forwarding target for `sig`.
    pub(crate) fn add_listener(&self, sig: usize, fd: &Arc<OwnedFd>) -> io::Result<()> {
        self.listeners.set(self.listeners.get() + 1);
        let running = self
            .reader
            .borrow()
            .as_ref()
            .is_some_and(|h| !h.is_finished());
        if !running {
            // Each core reads through its own duplicate (an `Rc` the ring ops can hold);
            // it shares the signalfd's file, hence its mask.
            // SAFETY: F_DUPFD_CLOEXEC on an fd `fd` keeps open; the result is ours.
            let dup = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
            if dup < 0 {
                self.listeners.set(self.listeners.get() - 1);
                return Err(io::Error::last_os_error());
            }
            // SAFETY: a fresh fd owned by nothing else.
            let fd = Rc::new(unsafe { OwnedFd::from_raw_fd(dup) });
            self.failed.set(false);
            let failed = Rc::clone(&self.failed);
            *self.reader.borrow_mut() = Some(ringleader_executor::spawn(read_loop(fd, failed)));
        }
        let mut fw = self.forwards.borrow_mut();
        if !fw.iter().any(|&(s, _)| s == sig) {
            if let Some(slot) = process::forward_to(sig, self.tid) {
                fw.push((sig, slot));
            }
        }
        Ok(())
    }

    /// A listener leaves; the last one stops the reader (so that signals arriving while
    /// nobody listens stay pending in the kernel for the next listener, instead of being
    /// read and dropped) and gives up the forwarding slots.
    pub(crate) fn remove_listener(&self) {
        let n = self.listeners.get().saturating_sub(1);
        self.listeners.set(n);
        if n == 0 {
            if let Some(h) = self.reader.borrow_mut().take() {
                h.abort();
            }
            for (sig, slot) in self.forwards.borrow_mut().drain(..) {
                process::unforward(sig, slot, self.tid);
            }
        }
    }
}

impl Drop for CoreSignals {
    fn drop(&mut self) {
        for (sig, slot) in self.forwards.get_mut().drain(..) {
            process::unforward(sig, slot, self.tid);
        }
    }
}

async fn read_loop(fd: Rc<OwnedFd>, failed: Rc<Cell<bool>>) {
    let mut buf = Vec::with_capacity(SIGINFO * BATCH);
    loop {
        buf.clear();
        let (res, b) = crate::fd::read(&fd, buf, u64::MAX).await;
        buf = b;
        match res {
            Ok(n) => {
                for info in buf[..n].chunks_exact(SIGINFO) {
                    // `ssi_signo` is the first field of `signalfd_siginfo`.
                    let signo = u32::from_ne_bytes([info[0], info[1], info[2], info[3]]);
                    process::broadcast(signo as usize);
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                // A kernel before 6.8 (or another core took the signal first): wait for
                // the signalfd to become readable, then read again.
                if poll_in(&fd).await.is_err() {
                    failed.set(true);
                    process::wake_all_listeners();
                    return;
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(_) => {
                failed.set(true);
                process::wake_all_listeners();
                return;
            }
        }
    }
}

/// `IORING_OP_POLL_ADD` (one shot, `POLLIN`) on the signalfd; the op holds the fd.
#[derive(Debug)]
struct PollIn {
    _fd: Rc<OwnedFd>,
}

impl Orphan for PollIn {}

impl Completable for PollIn {
    type Output = io::Result<u32>;
    fn complete(self, cqe: Cqe) -> io::Result<u32> {
        cqe.into_result()
    }
}

fn poll_in(fd: &Rc<OwnedFd>) -> Op<PollIn> {
    let entry = opcode::PollAdd::new(types::Fd(fd.as_raw_fd()), libc::POLLIN as u32).build();
    // SAFETY: the SQE points at no memory; the fd's owner is the op's data, kept until the
    // final CQE.
    unsafe { Op::submit(entry, PollIn { _fd: Rc::clone(fd) }) }
}
