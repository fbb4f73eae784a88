//! The unbounded channel: `send` never waits (and never pushes back).

use std::fmt;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::chan::Chan;
use super::error::{SendError, TryRecvError};

/// A channel without a bound: `send` is synchronous and memory is the only limit.
pub fn unbounded_channel<T>() -> (UnboundedSender<T>, UnboundedReceiver<T>) {
    let chan = Rc::new(Chan::new(None));
    (
        UnboundedSender {
            chan: Rc::clone(&chan),
        },
        UnboundedReceiver { chan },
    )
}

/// Sends into an unbounded channel; clone it for more senders.
pub struct UnboundedSender<T> {
    chan: Rc<Chan<T>>,
}

/// Receives from an unbounded channel.
pub struct UnboundedReceiver<T> {
    chan: Rc<Chan<T>>,
}

impl<T> UnboundedSender<T> {
    /// Queue `value`; `Err` carries it back if the receiver is gone or closed.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        if self.chan.is_closed() {
            return Err(SendError(value));
        }
        self.chan.push(value);
        Ok(())
    }

    /// Wait until the receiver is dropped or closed.
    pub async fn closed(&self) {
        self.chan.closed().await
    }

    /// Whether the receiver is dropped or closed.
    pub fn is_closed(&self) -> bool {
        self.chan.is_closed()
    }

    /// Whether both senders feed the same channel.
    pub fn same_channel(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.chan, &other.chan)
    }

    /// Number of senders alive.
    pub fn strong_count(&self) -> usize {
        self.chan.sender_count()
    }
}

impl<T> Clone for UnboundedSender<T> {
    fn clone(&self) -> Self {
        self.chan.add_sender();
        UnboundedSender {
            chan: Rc::clone(&self.chan),
        }
    }
}

impl<T> Drop for UnboundedSender<T> {
    fn drop(&mut self) {
        self.chan.drop_sender();
    }
}

impl<T> UnboundedReceiver<T> {
    /// The next value, waiting for one; `None` once every sender is gone (or the receiver
    /// closed) and the queue is empty. Cancel-safe.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.chan.poll_recv(cx)).await
    }

    /// Up to `limit` queued values appended to `buf`, waiting for at least one. Cancel-safe.
    pub async fn recv_many(&mut self, buf: &mut Vec<T>, limit: usize) -> usize {
        poll_fn(|cx| self.chan.poll_recv_many(cx, buf, limit)).await
    }

    /// The next value if one is queued.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.chan.try_recv()
    }

    /// Poll form of [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.chan.poll_recv(cx)
    }

    /// Refuse new values; queued ones can still be received.
    pub fn close(&mut self) {
        self.chan.close();
    }

    /// Whether the channel is closed (the receiver closed it, or every sender is gone).
    pub fn is_closed(&self) -> bool {
        self.chan.is_closed() || self.chan.sender_count() == 0
    }

    /// Values queued.
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.chan.len() == 0
    }

    /// Number of senders alive.
    pub fn sender_strong_count(&self) -> usize {
        self.chan.sender_count()
    }
}

impl<T> Drop for UnboundedReceiver<T> {
    fn drop(&mut self) {
        self.chan.drop_receiver();
    }
}

impl<T> fmt::Debug for UnboundedSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnboundedSender")
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl<T> fmt::Debug for UnboundedReceiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnboundedReceiver")
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}
