//! The bounded channel: at most `capacity` values queued; `send` waits for a free slot.

use std::fmt;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::chan::Chan;
use super::error::{SendError, TryRecvError, TrySendError};
use crate::sync::local::semaphore::{Acquire, TryAcquireError};

/// A bounded channel of `capacity` slots: the backpressure tokio's `mpsc::channel` gives.
///
/// # Panics
/// If `capacity` is 0.
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(capacity > 0, "mpsc bounded channel requires capacity > 0");
    let chan = Rc::new(Chan::new(Some(capacity)));
    (
        Sender {
            chan: Rc::clone(&chan),
        },
        Receiver { chan },
    )
}

/// Sends into a bounded channel; clone it for more senders.
pub struct Sender<T> {
    chan: Rc<Chan<T>>,
}

/// Receives from a bounded channel.
pub struct Receiver<T> {
    chan: Rc<Chan<T>>,
}

/// One reserved slot: [`send`](Permit::send) uses it without waiting; dropping it gives the
/// slot back.
#[must_use = "the slot is given back at once if the permit is not used"]
pub struct Permit<'a, T> {
    chan: &'a Chan<T>,
}

impl<T> Sender<T> {
    /// Wait for a free slot, then queue `value`. `Err` carries the value back if the receiver
    /// is gone or closes while this waits.
    ///
    /// **Cancellation:** dropping this future while it waits gives up its place in the queue
    /// of senders (a slot it was just handed goes to the next sender) and drops `value`
    /// unsent; to keep the value, wait with [`reserve`](Self::reserve) and then send.
    pub async fn send(&self, value: T) -> Result<(), SendError<T>> {
        match self.reserve().await {
            Ok(permit) => {
                permit.send(value);
                Ok(())
            }
            Err(_) => Err(SendError(value)),
        }
    }

    /// Queue `value` if a slot is free now.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let slots = self.chan.slots.as_ref().expect("bounded");
        match slots.try_acquire() {
            Ok(p) => p.forget(),
            Err(TryAcquireError::NoPermits) => return Err(TrySendError::Full(value)),
            Err(TryAcquireError::Closed) => return Err(TrySendError::Closed(value)),
        }
        self.chan.push(value);
        Ok(())
    }

    /// Wait for a free slot and hold it. Cancel-safe: nothing is lost if this is dropped.
    pub async fn reserve(&self) -> Result<Permit<'_, T>, SendError<()>> {
        let slots = self.chan.slots.as_ref().expect("bounded");
        match Acquire::new(slots, 1).await {
            Ok(()) => {
                self.chan.reserve_slot();
                Ok(Permit { chan: &self.chan })
            }
            Err(_) => Err(SendError(())),
        }
    }

    /// Hold a free slot if there is one now.
    pub fn try_reserve(&self) -> Result<Permit<'_, T>, TrySendError<()>> {
        let slots = self.chan.slots.as_ref().expect("bounded");
        match slots.try_acquire() {
            Ok(p) => p.forget(),
            Err(TryAcquireError::NoPermits) => return Err(TrySendError::Full(())),
            Err(TryAcquireError::Closed) => return Err(TrySendError::Closed(())),
        }
        self.chan.reserve_slot();
        Ok(Permit { chan: &self.chan })
    }

    /// Wait until the receiver is dropped or closed.
    pub async fn closed(&self) {
        self.chan.closed().await
    }

    /// Whether the receiver is dropped or closed.
    pub fn is_closed(&self) -> bool {
        self.chan.is_closed()
    }

    /// Free slots now.
    pub fn capacity(&self) -> usize {
        self.chan.free_slots()
    }

    /// The channel's size, as created.
    pub fn max_capacity(&self) -> usize {
        self.chan.capacity
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

impl<T> Permit<'_, T> {
    /// Queue `value` in the reserved slot (dropped if the receiver is gone).
    pub fn send(self, value: T) {
        let chan = self.chan;
        std::mem::forget(self);
        chan.push(value);
        chan.unreserve_slot(true);
    }
}

impl<T> Drop for Permit<'_, T> {
    fn drop(&mut self) {
        self.chan.unreserve_slot(false);
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.add_sender();
        Sender {
            chan: Rc::clone(&self.chan),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.chan.drop_sender();
    }
}

impl<T> Receiver<T> {
    /// The next value, waiting for one; `None` once every sender is gone (or the receiver
    /// closed) and the queue is empty. Cancel-safe: a dropped `recv()` takes nothing.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.chan.poll_recv(cx)).await
    }

    /// Up to `limit` queued values appended to `buf`, waiting for at least one; 0 once the
    /// channel is finished (or `limit` is 0). Cancel-safe.
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

    /// Refuse new values (waiting senders get their value back); queued values and values
    /// sent through outstanding permits can still be received.
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

    /// Free slots now.
    pub fn capacity(&self) -> usize {
        self.chan.free_slots()
    }

    /// The channel's size, as created.
    pub fn max_capacity(&self) -> usize {
        self.chan.capacity
    }

    /// Number of senders alive.
    pub fn sender_strong_count(&self) -> usize {
        self.chan.sender_count()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.chan.drop_receiver();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("capacity", &self.capacity())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl<T> fmt::Debug for Permit<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Permit")
    }
}
