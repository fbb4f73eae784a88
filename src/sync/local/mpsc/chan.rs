//! The state both channel kinds share: a queue, the receiver's waker, sender and permit
//! counts, and (bounded) a [`Semaphore`] of free slots.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

use super::error::TryRecvError;
use crate::sync::local::notify::Notify;
use crate::sync::local::semaphore::Semaphore;

pub(super) struct Chan<T> {
    queue: RefCell<VecDeque<T>>,
    /// Free slots (bounded channels); closed when the receiver closes.
    pub(super) slots: Option<Semaphore>,
    pub(super) capacity: usize,
    rx_waker: Cell<Option<Waker>>,
    rx_closed: Cell<bool>,
    rx_alive: Cell<bool>,
    tx_count: Cell<usize>,
    /// Reserved slots not yet used or given back (`Permit`s).
    reserved: Cell<usize>,
    /// Senders in `closed().await`.
    closed: Notify,
}

impl<T> Chan<T> {
    pub(super) fn new(bound: Option<usize>) -> Self {
        Chan {
            queue: RefCell::new(VecDeque::with_capacity(bound.unwrap_or(0).min(1024))),
            slots: bound.map(Semaphore::new),
            capacity: bound.unwrap_or(usize::MAX),
            rx_waker: Cell::new(None),
            rx_closed: Cell::new(false),
            rx_alive: Cell::new(true),
            tx_count: Cell::new(1),
            reserved: Cell::new(0),
            closed: Notify::new(),
        }
    }

    fn wake_rx(&self) {
        if let Some(w) = self.rx_waker.take() {
            w.wake();
        }
    }

    /// Queue `value` (the caller holds a slot, or the channel is unbounded).
    pub(super) fn push(&self, value: T) {
        if !self.rx_alive.get() {
            return; // Dropped here, outside any borrow.
        }
        self.queue.borrow_mut().push_back(value);
        self.wake_rx();
    }

    pub(super) fn is_closed(&self) -> bool {
        self.rx_closed.get()
    }

    pub(super) fn add_sender(&self) {
        self.tx_count.set(self.tx_count.get() + 1);
    }

    pub(super) fn drop_sender(&self) {
        let n = self.tx_count.get() - 1;
        self.tx_count.set(n);
        if n == 0 {
            self.wake_rx();
        }
    }

    pub(super) fn reserve_slot(&self) {
        self.reserved.set(self.reserved.get() + 1);
    }

    /// A reserved slot was used (`sent`) or given back.
    pub(super) fn unreserve_slot(&self, sent: bool) {
        self.reserved.set(self.reserved.get() - 1);
        if !sent {
            if let Some(s) = &self.slots {
                s.release(1);
            }
            self.wake_rx(); // It may have been waiting for this permit to end.
        }
    }

    pub(super) async fn closed(&self) {
        loop {
            let notified = self.closed.notified();
            if self.rx_closed.get() {
                return;
            }
            notified.await;
        }
    }

    /// The receiver closes: no new sends or reservations; what is queued (and what
    /// outstanding permits send) can still be received.
    pub(super) fn close(&self) {
        if self.rx_closed.replace(true) {
            return;
        }
        if let Some(s) = &self.slots {
            s.close();
        }
        self.closed.notify_waiters();
    }

    /// The receiver is dropped: close, and drop what is queued.
    pub(super) fn drop_receiver(&self) {
        self.close();
        self.rx_alive.set(false);
        let queued = std::mem::take(&mut *self.queue.borrow_mut());
        drop(queued); // Values' drops run outside the borrow.
    }

    fn pop(&self) -> Option<T> {
        let v = self.queue.borrow_mut().pop_front()?;
        if let Some(s) = &self.slots {
            s.release(1); // May wake a waiting sender: outside the queue's borrow.
        }
        Some(v)
    }

    /// Nothing can arrive any more.
    fn finished(&self) -> bool {
        self.tx_count.get() == 0 || self.rx_closed.get() && self.reserved.get() == 0
    }

    pub(super) fn try_recv(&self) -> Result<T, TryRecvError> {
        match self.pop() {
            Some(v) => Ok(v),
            None if self.finished() => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    pub(super) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if let Some(v) = self.pop() {
            return Poll::Ready(Some(v));
        }
        if self.finished() {
            return Poll::Ready(None);
        }
        drop(self.rx_waker.replace(Some(cx.waker().clone())));
        Poll::Pending
    }

    pub(super) fn poll_recv_many(
        &self,
        cx: &mut Context<'_>,
        buf: &mut Vec<T>,
        limit: usize,
    ) -> Poll<usize> {
        if limit == 0 {
            return Poll::Ready(0);
        }
        let mut n = 0;
        while n < limit {
            match self.pop() {
                Some(v) => {
                    buf.push(v);
                    n += 1;
                }
                None => break,
            }
        }
        if n > 0 || self.finished() {
            return Poll::Ready(n);
        }
        drop(self.rx_waker.replace(Some(cx.waker().clone())));
        Poll::Pending
    }

    pub(super) fn len(&self) -> usize {
        self.queue.borrow().len()
    }

    pub(super) fn free_slots(&self) -> usize {
        self.slots
            .as_ref()
            .map_or(usize::MAX, Semaphore::available_permits)
    }

    pub(super) fn sender_count(&self) -> usize {
        self.tx_count.get()
    }
}
