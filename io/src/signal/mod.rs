//! Signals as async streams, under tokio's names: [`ctrl_c`] and
//! [`unix::signal`]`(`[`unix::SignalKind`]`)`, read from a signalfd through the ring; and,
//! beyond tokio, [`unix::SignalSet`] (several signals, and which one came: a server's
//! "SIGINT, SIGTERM or SIGHUP") and [`unix::is_ignored`] (was the process started ignoring
//! it, as under `nohup`).
//!
//! ```
//! use ringleader::signal::unix::{SignalKind, signal};
//!
//! ringleader::block_on(async {
//!     let mut term = signal(SignalKind::terminate())?;
//!     let stop = ringleader::spawn(async move {
//!         term.recv().await;
//!         "stopping"
//!     });
//!     // Elsewhere (or from `kill <pid>`):
//!     // SAFETY: kill only sends a signal, to this process.
//!     unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
//!     assert_eq!(stop.await.unwrap(), "stopping");
//!     Ok::<_, std::io::Error>(())
//! }).unwrap();
//! ```
//!
//! # How a signal reaches the listeners
//!
//! A signalfd only sees a signal that is *blocked* in the thread the kernel would deliver
//! it to; anywhere it is not blocked, the kernel runs its handler (by default: terminate).
//! So the first [`unix::signal`] for a signal number, in this order:
//!
//! 1. installs a process-wide handler for it (`sigaction`), the safety net described below;
//! 2. adds it to a process-wide signalfd's mask (non-blocking, close-on-exec);
//! 3. blocks it in the calling core's thread (`pthread_sigmask`), and asks every other core
//!    of the runtime, by a task sent with `spawn_on`, to block it in its own thread.
//!
//! Each core that has at least one [`unix::Signal`] runs one reader task: an
//! `IORING_OP_READ` on its own duplicate of the signalfd (Linux 6.8+ waits for the signal
//! inside io_uring; older kernels answer `EAGAIN` and the reader waits with
//! `IORING_OP_POLL_ADD`). The read runs on the core's thread, so it takes the process's
//! pending signals and the ones pending for that thread. Whichever core reads a signal
//! **broadcasts** it: a per-signal generation counter goes up and every listener's waker
//! is woken, on every core (a waker of another core's task travels by `MSG_RING`). So every
//! `Signal` created before a delivery sees it, whichever core read it, as in tokio.
//!
//! **Threads that do not block the signal.** Threads that existed before the first
//! `signal()` call and are not cores of the runtime keep their mask: the main thread
//! waiting in `Runtime::block_on`, threads the program started earlier, blocking-pool
//! threads started before. If the kernel delivers the signal to one of them, the handler
//! from step 1 runs there and sends the signal on with `tgkill` to a core thread that
//! blocks it and reads the signalfd, whose reader then takes it. Nothing is lost and the
//! process is not terminated; it costs one handler run per delivery. The handler is
//! async-signal-safe (atomics and `tgkill`). Threads started later from a core inherit the
//! core's mask (blocking-pool threads, for instance). The kernel's io-wq workers and SQPOLL
//! threads block every signal, so they never take one. So from the first `signal()` on, no
//! thread of the process runs the signal's default action
//! (`tests/signal_no_thread_takes_the_default_action.rs` checks every kind of thread). A
//! signal *directed* at one thread (`pthread_kill`, `tgkill`) that blocks it but reads no
//! signalfd (a blocking-pool thread started from a core, a core with no listener) waits in
//! that thread's queue; signals sent to the process (`kill`, the terminal, a service
//! manager) are not affected. Programs that want no handler at all can block the signals
//! in `main` before starting the runtime (every thread then inherits the mask, as
//! `pthread_sigmask` + `sigwait` programs do).
//!
//! **What changes for good.** As in tokio, once a signal number has been listened for, the
//! process keeps its handler and mask after the last `Signal` is dropped: a later `SIGINT`
//! no longer terminates the program. The handler replaces `SIG_IGN` too: a background job
//! that a shell started with `SIGINT` ignored hears it once it listens, and a program
//! that wants to honour `nohup` asks [`unix::is_ignored`] before listening for `SIGHUP`. With no `Signal` left on a core its reader stops, so
//! a signal that arrives while nobody listens stays pending in the kernel (a standard signal
//! is kept once) and is delivered to the next listener instead of being dropped; if it
//! lands on a thread that does not block it while no core reads, the handler finds no
//! target and the delivery is lost.
//!
//! Deliveries are coalesced per listener (one `recv` for any number since the last one).
//! Listening needs a ringleader core; `Signal` is `!Send` (it belongs to its core). Forking
//! with listeners alive is not supported (the child shares the signalfd).

mod process;
mod reader;
pub mod unix;

use std::io;

/// Wait for Ctrl-C (`SIGINT`) (tokio's `ctrl_c`).
///
/// The listener is created when the future is first polled, so a Ctrl-C before that is
/// not seen by it; create it early (`let stop = ctrl_c();` then poll it, or use
/// [`unix::signal`]`(SignalKind::interrupt())` and keep the stream) when that matters.
/// As with [`unix::signal`], once listened for, `SIGINT` no longer terminates the process.
///
/// ```
/// ringleader::block_on(async {
///     let ctrl_c = ringleader::spawn(ringleader::signal::ctrl_c());
///     ringleader::yield_now().await; // let it start listening
///     // SAFETY: kill only sends a signal, to this process.
///     unsafe { libc::kill(libc::getpid(), libc::SIGINT) };
///     ctrl_c.await.unwrap().unwrap();
/// });
/// ```
///
/// Cancellation: dropping the future stops listening; nothing else changes.
///
/// # Panics
/// When polled outside a ringleader runtime.
pub async fn ctrl_c() -> io::Result<()> {
    let mut s = unix::signal(unix::SignalKind::interrupt())?;
    match s.recv().await {
        Some(()) => Ok(()),
        None => Err(io::Error::other(
            "ringleader::signal::ctrl_c: this core's signalfd reader failed",
        )),
    }
}
