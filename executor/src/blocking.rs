//! `spawn_blocking`: run work that has no io_uring op (DNS, CPU-heavy work, a blocking
//! library) on a bounded pool of plain threads, and await its result from the core.
//!
//! The pool is process-wide and lazily started: at most [`MAX_THREADS`] threads, each
//! leaving after [`IDLE`] without work. A finished job wakes its awaiting task through the
//! task's waker; from a pool thread (which runs no ring) that is a `MSG_RING` sent with
//! `IORING_REGISTER_SEND_MSG_RING`, so the core's event loop never blocks on the job.
//!
//! A panicking job is caught on its thread and reported as [`JoinError::Panic`].

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Condvar, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use futures::channel::oneshot;

use crate::JoinError;

/// Most threads the blocking pool runs at once.
pub const MAX_THREADS: usize = 64;
/// How long an idle pool thread waits for work before it exits.
const IDLE: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send>;

struct Pool {
    state: Mutex<PoolState>,
    work: Condvar,
}

#[derive(Default)]
struct PoolState {
    queue: VecDeque<Job>,
    threads: usize,
    idle: usize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(PoolState::default()),
        work: Condvar::new(),
    })
}

impl Pool {
    fn submit(&'static self, job: Job) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.queue.push_back(job);
        if st.idle > 0 {
            self.work.notify_one();
            return;
        }
        if st.threads < MAX_THREADS {
            st.threads += 1;
            let spawned = thread::Builder::new()
                .name("ringleader-blocking".to_owned())
                .spawn(move || self.worker());
            if spawned.is_err() {
                // No thread could be started: the job waits for a running thread (if any).
                st.threads -= 1;
            }
        }
    }

    fn worker(&'static self) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(job) = st.queue.pop_front() {
                drop(st);
                job();
                st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                continue;
            }
            st.idle += 1;
            let (guard, timeout) = self
                .work
                .wait_timeout(st, IDLE)
                .unwrap_or_else(|p| p.into_inner());
            st = guard;
            st.idle -= 1;
            if timeout.timed_out() && st.queue.is_empty() {
                st.threads -= 1;
                return;
            }
        }
    }
}

/// Run `f` on the blocking pool; the handle resolves to its result.
///
/// Works from a ringleader core (the result is awaited there without blocking the ring) and
/// from any other thread.
///
/// ```
/// let v = ringleader::block_on(async {
///     ringleader::spawn_blocking(|| (1..=10u64).product::<u64>()).await.unwrap()
/// });
/// assert_eq!(v, 3_628_800);
/// ```
pub fn spawn_blocking<F, T>(f: F) -> BlockingHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    pool().submit(Box::new(move || {
        let out = catch_unwind(AssertUnwindSafe(f));
        let _ = tx.send(out);
    }));
    BlockingHandle { rx }
}

/// The result of a [`spawn_blocking`] job.
#[derive(Debug)]
#[must_use = "the job runs anyway; await the handle to get its result"]
pub struct BlockingHandle<T> {
    rx: oneshot::Receiver<std::thread::Result<T>>,
}

impl<T> Future for BlockingHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.rx).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(Ok(v))) => Poll::Ready(Ok(v)),
            Poll::Ready(Ok(Err(p))) => Poll::Ready(Err(JoinError::Panic(p))),
            Poll::Ready(Err(oneshot::Canceled)) => Poll::Ready(Err(JoinError::Cancelled)),
        }
    }
}
