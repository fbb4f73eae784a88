//! `JoinHandle` and `JoinError`.

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_task::{FallibleTask, Task};

use crate::shared::Shared;

type Output<T> = std::thread::Result<T>;

/// An owned permission to await a task's output.
///
/// Awaiting gives `Ok(output)`, or a [`JoinError`] if the task panicked or was aborted (or its
/// core shut down first). Dropping the handle detaches the task: it keeps running.
/// [`JoinHandle::abort`] cancels it: its future is dropped on its own core, which cancels the
/// ops it had in flight.
#[must_use = "dropping a JoinHandle detaches the task; .await it or call .detach()"]
pub struct JoinHandle<T> {
    task: Cell<Option<FallibleTask<Output<T>, Arc<Shared>>>>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(task: Task<Output<T>, Arc<Shared>>) -> Self {
        JoinHandle {
            task: Cell::new(Some(task.fallible())),
        }
    }

    /// Cancel the task. Its future is dropped on its core at the core's next tick (right away
    /// if it is idle); awaiting the handle then gives [`JoinError::is_cancelled`].
    pub fn abort(&self) {
        // Dropping the async-task handle closes the task; if idle it is scheduled once more so
        // that its runnable drops the future on the owning core.
        drop(self.task.take());
    }

    /// Let the task run to completion with nobody awaiting it.
    pub fn detach(self) {
        if let Some(t) = self.task.take() {
            t.detach();
        }
    }

    /// Whether the task has finished (or was aborted).
    pub fn is_finished(&self) -> bool {
        let t = self.task.take();
        let done = t.as_ref().is_none_or(|t| t.is_finished());
        self.task.set(t);
        done
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.detach();
        }
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(mut task) = self.task.take() else {
            return Poll::Ready(Err(JoinError::Cancelled));
        };
        match Pin::new(&mut task).poll(cx) {
            Poll::Pending => {
                self.task.set(Some(task));
                Poll::Pending
            }
            Poll::Ready(None) => Poll::Ready(Err(JoinError::Cancelled)),
            Poll::Ready(Some(Ok(v))) => Poll::Ready(Ok(v)),
            Poll::Ready(Some(Err(p))) => Poll::Ready(Err(JoinError::Panic(p))),
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Why a task produced no output.
pub enum JoinError {
    /// The task panicked; the payload is kept.
    Panic(Box<dyn Any + Send + 'static>),
    /// The task was aborted, or its core shut down before it finished.
    Cancelled,
}

impl JoinError {
    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, JoinError::Panic(_))
    }
    /// Whether the task was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, JoinError::Cancelled)
    }
    /// The panic payload, if the task panicked.
    pub fn into_panic(self) -> Option<Box<dyn Any + Send + 'static>> {
        match self {
            JoinError::Panic(p) => Some(p),
            JoinError::Cancelled => None,
        }
    }
    fn panic_message(&self) -> Option<&str> {
        match self {
            JoinError::Panic(p) => p
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| p.downcast_ref::<String>().map(String::as_str)),
            JoinError::Cancelled => None,
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panic(_) => f
                .debug_tuple("Panic")
                .field(&self.panic_message().unwrap_or("<non-string payload>"))
                .finish(),
            JoinError::Cancelled => f.write_str("Cancelled"),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panic(_) => write!(
                f,
                "task panicked: {}",
                self.panic_message().unwrap_or("<non-string payload>")
            ),
            JoinError::Cancelled => f.write_str("task was cancelled"),
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for std::io::Error {
    fn from(e: JoinError) -> Self {
        std::io::Error::other(e.to_string())
    }
}
