//! Timers on `IORING_OP_TIMEOUT` (Linux 5.4).
//!
//! ```
//! use std::time::Duration;
//! ringleader::block_on(async {
//!     ringleader::time::sleep(Duration::from_millis(1)).await;
//!     let r = ringleader::time::timeout(Duration::from_millis(1), std::future::pending::<()>()).await;
//!     assert!(r.is_err());
//! });
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use io_uring::opcode;
use io_uring::types::Timespec;
use ringleader_executor::{Completable, Cqe, Op, Orphan};

/// Resources of a timeout op: the timespec the kernel reads at submission.
#[derive(Debug)]
pub struct TimeoutOp {
    _ts: Box<Timespec>,
}

impl Orphan for TimeoutOp {}

impl Completable for TimeoutOp {
    type Output = ();
    fn complete(self, cqe: Cqe) {
        // -ETIME is the normal expiry; -ECANCELED only reaches an orphan.
        debug_assert!(
            cqe.result == -libc::ETIME || cqe.result >= 0,
            "timeout: {}",
            cqe.result
        );
    }
}

/// A future that completes after a duration.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Sleep {
    op: Op<TimeoutOp>,
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep").field("op", &self.op).finish()
    }
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.op).poll(cx)
    }
}

/// Wait for `dur`.
///
/// # Panics
/// Outside a ringleader runtime.
pub fn sleep(dur: Duration) -> Sleep {
    let ts = Box::new(Timespec::new().sec(dur.as_secs()).nsec(dur.subsec_nanos()));
    let entry = opcode::Timeout::new(&*ts as *const Timespec).build();
    // SAFETY: the timespec is boxed (stable address) and owned by the op's data until the
    // final CQE; the kernel reads it when the SQE is submitted.
    let op = unsafe { Op::submit(entry, TimeoutOp { _ts: ts }) };
    Sleep { op }
}

/// Wait until `deadline` (monotonic clock).
pub fn sleep_until(deadline: Instant) -> Sleep {
    sleep(deadline.saturating_duration_since(Instant::now()))
}

/// The error of a [`timeout`] that expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(_: Elapsed) -> Self {
        std::io::Error::new(std::io::ErrorKind::TimedOut, "deadline elapsed")
    }
}

pin_project_lite::pin_project! {
    /// Future of [`timeout`].
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Timeout<F> {
        #[pin]
        fut: F,
        sleep: Sleep,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.fut.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(this.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed(()))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<F> fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout").finish_non_exhaustive()
    }
}

/// Run `fut` for at most `dur`. On expiry `fut` is dropped when the `Timeout` is: an op
/// inside it is cancelled and its resources are released at its final CQE.
pub fn timeout<F: Future>(dur: Duration, fut: F) -> Timeout<F> {
    Timeout {
        fut,
        sleep: sleep(dur),
    }
}

/// The error of a [`timeout_op`] that expired: the op was cancelled and waited for, and its
/// output is here, so owned buffers come back. Its result is usually `ECANCELED`, or the
/// real result if the op finished while being cancelled.
#[derive(Debug)]
pub struct OpTimedOut<O> {
    /// The cancelled op's output.
    pub output: O,
}

impl<O> fmt::Display for OpTimedOut<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline elapsed; op cancelled")
    }
}

impl<O: fmt::Debug> std::error::Error for OpTimedOut<O> {}

/// Run the op `op` for at most `dur`. On expiry the op is cancelled and awaited to its final
/// CQE, and its output (with its buffer) comes back in [`OpTimedOut`].
///
/// ```
/// use std::{rc::Rc, time::Duration};
/// ringleader::block_on(async {
///     let (r, _w) = ringleader::pipe::pipe().await.unwrap();
///     let read = ringleader::fd::read(&Rc::new(r), vec![0u8; 64], u64::MAX);
///     let err = ringleader::time::timeout_op(Duration::from_millis(2), read).await.unwrap_err();
///     let (res, buf) = err.output;
///     assert!(res.is_err());
///     assert_eq!(buf.len(), 64, "the buffer came back");
/// });
/// ```
pub async fn timeout_op<T: Completable>(
    dur: Duration,
    op: Op<T>,
) -> Result<T::Output, OpTimedOut<T::Output>> {
    let mut op = Some(op);
    let mut sleep = sleep(dur);
    let expired = std::future::poll_fn(|cx| {
        let o = op.as_mut().expect("op present until resolved");
        if let Poll::Ready(v) = Pin::new(o).poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(&mut sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(())),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    match expired {
        Ok(v) => Ok(v),
        Err(()) => {
            let op = op.take().expect("op present");
            Err(OpTimedOut {
                output: op.cancel().await,
            })
        }
    }
}

/// A multishot-free periodic timer: each `tick()` sleeps until the next period boundary.
#[derive(Debug)]
pub struct Interval {
    next: Instant,
    period: Duration,
}

/// Ticks every `period`, first tick immediately.
pub fn interval(period: Duration) -> Interval {
    assert!(!period.is_zero(), "interval period must be non-zero");
    Interval {
        next: Instant::now(),
        period,
    }
}

impl Interval {
    /// Wait for the next tick; missed ticks are skipped, not bunched.
    pub async fn tick(&mut self) -> Instant {
        let now = Instant::now();
        if self.next > now {
            sleep_until(self.next).await;
        }
        let fired = self.next;
        self.next += self.period;
        let now = Instant::now();
        if self.next < now {
            self.next = now + self.period;
        }
        fired
    }
}
