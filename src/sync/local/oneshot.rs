//! A one-value channel between two tasks of one core (tokio's `oneshot`).
//!
//! The [`Receiver`] is a future of `Result<T, RecvError>`: the value, or an error once the
//! [`Sender`] is dropped without sending. [`Sender::send`] hands the value back if the
//! receiver is gone, as tokio's does.
//!
//! **Cancellation:** a `Receiver` polled and then put aside loses nothing: the value waits in
//! the channel until the receiver is polled again or dropped (then the value is dropped with
//! it). Dropping the `Receiver` closes the channel ([`Sender::closed`] resolves).
//!
//! ```
//! use ringleader::sync::local::oneshot;
//!
//! ringleader::block_on(async {
//!     let (tx, rx) = oneshot::channel();
//!     ringleader::spawn(async move { tx.send(7).unwrap() });
//!     assert_eq!(rx.await, Ok(7));
//!
//!     let (tx, rx) = oneshot::channel::<u8>();
//!     drop(rx);
//!     assert_eq!(tx.send(1), Err(1));
//! });
//! ```

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Errors, at tokio's paths.
pub mod error {
    use std::fmt;

    /// The sender was dropped without sending.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct RecvError(pub(super) ());

    /// Error of [`Receiver::try_recv`](super::Receiver::try_recv).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum TryRecvError {
        /// No value yet; the sender is alive.
        Empty,
        /// The sender was dropped without sending, or the value was already taken.
        Closed,
    }

    impl fmt::Display for RecvError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("channel closed")
        }
    }
    impl std::error::Error for RecvError {}

    impl fmt::Display for TryRecvError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                TryRecvError::Empty => f.write_str("channel empty"),
                TryRecvError::Closed => f.write_str("channel closed"),
            }
        }
    }
    impl std::error::Error for TryRecvError {}
}

use error::{RecvError, TryRecvError};

struct Inner<T> {
    value: Option<T>,
    /// The sender was dropped or used.
    tx_done: bool,
    /// The receiver was dropped or closed.
    rx_closed: bool,
    rx_waker: Option<Waker>,
    tx_waker: Option<Waker>,
}

/// The sending half of [`channel`].
pub struct Sender<T> {
    inner: Option<Rc<RefCell<Inner<T>>>>,
}

/// The receiving half of [`channel`]; `.await` it for the value.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Receiver<T> {
    inner: Option<Rc<RefCell<Inner<T>>>>,
}

/// A one-value channel.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let inner = Rc::new(RefCell::new(Inner {
        value: None,
        tx_done: false,
        rx_closed: false,
        rx_waker: None,
        tx_waker: None,
    }));
    (
        Sender {
            inner: Some(Rc::clone(&inner)),
        },
        Receiver { inner: Some(inner) },
    )
}

impl<T> Sender<T> {
    /// Send `value`; `Err(value)` if the receiver is gone (or closed).
    pub fn send(mut self, value: T) -> Result<(), T> {
        let inner = self.inner.take().expect("sender used once");
        let waker = {
            let mut i = inner.borrow_mut();
            i.tx_done = true;
            if i.rx_closed {
                return Err(value);
            }
            i.value = Some(value);
            i.rx_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Whether the receiver was dropped or closed.
    pub fn is_closed(&self) -> bool {
        self.inner.as_ref().is_none_or(|i| i.borrow().rx_closed)
    }

    /// Wait until the receiver is dropped or closed (to stop computing a value nobody
    /// wants). Cancel-safe.
    pub async fn closed(&mut self) {
        std::future::poll_fn(|cx| self.poll_closed(cx)).await
    }

    /// Poll form of [`closed`](Self::closed).
    pub fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(inner) = &self.inner else {
            return Poll::Ready(());
        };
        let mut i = inner.borrow_mut();
        if i.rx_closed {
            return Poll::Ready(());
        }
        let old = i.tx_waker.replace(cx.waker().clone());
        drop(i);
        drop(old);
        Poll::Pending
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        let waker = {
            let mut i = inner.borrow_mut();
            i.tx_done = true;
            i.rx_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Receiver<T> {
    /// The value if it has been sent, without waiting.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let Some(inner) = &self.inner else {
            return Err(TryRecvError::Closed);
        };
        let mut i = inner.borrow_mut();
        if let Some(v) = i.value.take() {
            drop(i);
            self.inner = None;
            return Ok(v);
        }
        if i.tx_done {
            Err(TryRecvError::Closed)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    /// Refuse the value: a later `send` fails with it. A value sent before this call can
    /// still be received.
    pub fn close(&mut self) {
        let Some(inner) = &self.inner else { return };
        let waker = {
            let mut i = inner.borrow_mut();
            i.rx_closed = true;
            i.tx_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Whether the receiver has resolved (or `try_recv` took the value); polling it again
    /// would give `Err(RecvError)`.
    pub fn is_terminated(&self) -> bool {
        self.inner.is_none()
    }

    /// Whether no value is waiting (sent values only count until received).
    pub fn is_empty(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(|i| i.borrow().value.is_none())
    }
}

impl<T> Future for Receiver<T> {
    type Output = Result<T, RecvError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(inner) = &self.inner else {
            return Poll::Ready(Err(RecvError(())));
        };
        let mut i = inner.borrow_mut();
        if let Some(v) = i.value.take() {
            drop(i);
            self.inner = None;
            return Poll::Ready(Ok(v));
        }
        if i.tx_done {
            drop(i);
            self.inner = None;
            return Poll::Ready(Err(RecvError(())));
        }
        let old = i.rx_waker.replace(cx.waker().clone());
        drop(i);
        drop(old);
        Poll::Pending
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.close();
        // An unreceived value is dropped here, outside the borrow, with the last `Rc`
        // (or the sender's, whichever goes last).
        if let Some(inner) = self.inner.take() {
            let value = inner.borrow_mut().value.take();
            drop(value);
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("terminated", &self.is_terminated())
            .finish()
    }
}
