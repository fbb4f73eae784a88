//! Every value to every receiver, for the tasks of one core (tokio's `broadcast`).
//!
//! The channel keeps the last `capacity` values in a ring. Each [`Receiver`] reads them in
//! order at its own pace; a value is dropped once every receiver that existed when it was
//! sent has read it, or when it is pushed out of the ring. A receiver that falls more than
//! `capacity` values behind **lags**: its next `recv` returns
//! [`RecvError::Lagged(n)`](error::RecvError::Lagged) with the number of values it missed,
//! and then continues from the oldest value still held. Senders never wait.
//!
//! The ring holds exactly `capacity` values (tokio rounds the capacity up to a power of two).
//!
//! `T::clone` runs while the ring is borrowed: a `Clone` impl must not use the same channel.
//!
//! **Cancellation:** `recv()` is cancel-safe: a dropped call read nothing, and the value stays
//! for the next call.
//!
//! ```
//! use ringleader::sync::local::broadcast::{self, error::RecvError};
//!
//! ringleader::block_on(async {
//!     let (tx, mut rx1) = broadcast::channel(2);
//!     let mut rx2 = tx.subscribe();
//!     tx.send(1).unwrap();
//!     assert_eq!(rx1.recv().await, Ok(1));
//!     tx.send(2).unwrap();
//!     tx.send(3).unwrap(); // pushes 1 out: rx2 has not read it
//!     assert_eq!(rx2.recv().await, Err(RecvError::Lagged(1)));
//!     assert_eq!(rx2.recv().await, Ok(2));
//!     assert_eq!(rx1.recv().await, Ok(2));
//! });
//! ```

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;

use super::notify::Notify;

/// Errors, at tokio's paths.
pub mod error {
    use std::fmt;

    /// No receiver is alive; the value comes back.
    #[derive(PartialEq, Eq, Clone, Copy)]
    pub struct SendError<T>(pub T);

    /// Error of `recv`.
    #[derive(Debug, PartialEq, Eq, Clone, Copy)]
    pub enum RecvError {
        /// Every sender is gone and this receiver has read everything.
        Closed,
        /// This receiver missed this many values (pushed out of the ring); the next `recv`
        /// continues with the oldest value still held.
        Lagged(u64),
    }

    /// Error of `try_recv`.
    #[derive(Debug, PartialEq, Eq, Clone, Copy)]
    pub enum TryRecvError {
        /// Nothing new; senders remain.
        Empty,
        /// Every sender is gone and this receiver has read everything.
        Closed,
        /// As [`RecvError::Lagged`].
        Lagged(u64),
    }

    impl<T> fmt::Debug for SendError<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("SendError").finish_non_exhaustive()
        }
    }
    impl<T> fmt::Display for SendError<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("channel closed")
        }
    }
    impl<T> std::error::Error for SendError<T> {}

    impl fmt::Display for RecvError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                RecvError::Closed => f.write_str("channel closed"),
                RecvError::Lagged(n) => write!(f, "channel lagged by {n}"),
            }
        }
    }
    impl std::error::Error for RecvError {}

    impl fmt::Display for TryRecvError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                TryRecvError::Empty => f.write_str("channel empty"),
                TryRecvError::Closed => f.write_str("channel closed"),
                TryRecvError::Lagged(n) => write!(f, "channel lagged by {n}"),
            }
        }
    }
    impl std::error::Error for TryRecvError {}
}

use error::{RecvError, SendError, TryRecvError};

struct Slot<T> {
    /// Receivers (alive at the send) that have not read it yet.
    unread: usize,
    /// Taken by the last reader.
    value: Option<T>,
}

struct Ring<T> {
    slots: VecDeque<Slot<T>>,
    /// Sequence number of `slots[0]`.
    head: u64,
    /// Values not yet read by everyone (and not pushed out).
    queued: usize,
}

impl<T> Ring<T> {
    fn tail(&self) -> u64 {
        self.head + self.slots.len() as u64
    }

    /// One reader is done with `seq`: return the value to drop, if it was the last reader.
    fn release(&mut self, seq: u64) -> Option<T> {
        let slot = &mut self.slots[(seq - self.head) as usize];
        slot.unread -= 1;
        if slot.unread == 0 {
            self.queued -= 1;
            slot.value.take()
        } else {
            None
        }
    }
}

struct Shared<T> {
    ring: RefCell<Ring<T>>,
    capacity: usize,
    tx_count: Cell<usize>,
    rx_count: Cell<usize>,
    /// Receivers waiting for a value; `notify_waiters` on every send and the last sender's drop.
    sent: Notify,
}

/// Sends to every receiver; clone it for more senders.
pub struct Sender<T> {
    shared: Rc<Shared<T>>,
}

/// Reads every value sent after it was made; [`Sender::subscribe`] or
/// [`resubscribe`](Receiver::resubscribe) for more.
pub struct Receiver<T> {
    shared: Rc<Shared<T>>,
    next: u64,
}

/// A broadcast channel holding the last `capacity` values.
///
/// # Panics
/// If `capacity` is 0.
pub fn channel<T: Clone>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(capacity > 0, "broadcast channel capacity cannot be zero");
    let shared = Rc::new(Shared {
        ring: RefCell::new(Ring {
            slots: VecDeque::with_capacity(capacity.min(1024)),
            head: 0,
            queued: 0,
        }),
        capacity,
        tx_count: Cell::new(1),
        rx_count: Cell::new(1),
        sent: Notify::new(),
    });
    (
        Sender {
            shared: Rc::clone(&shared),
        },
        Receiver { shared, next: 0 },
    )
}

impl<T> Sender<T> {
    /// Send `value` to every receiver alive now; returns how many. `Err` with the value if
    /// there is none (nothing is stored then). Never waits: a full ring pushes its oldest
    /// value out, and receivers that had not read it will see `Lagged`.
    pub fn send(&self, value: T) -> Result<usize, SendError<T>> {
        let receivers = self.shared.rx_count.get();
        if receivers == 0 {
            return Err(SendError(value));
        }
        let evicted = {
            let mut ring = self.shared.ring.borrow_mut();
            let evicted = if ring.slots.len() == self.shared.capacity {
                ring.head += 1;
                let old = ring.slots.pop_front().and_then(|s| s.value);
                if old.is_some() {
                    ring.queued -= 1;
                }
                old
            } else {
                None
            };
            ring.slots.push_back(Slot {
                unread: receivers,
                value: Some(value),
            });
            ring.queued += 1;
            evicted
        };
        drop(evicted); // Outside the borrow.
        self.shared.sent.notify_waiters();
        Ok(receivers)
    }

    /// A receiver of every value sent from now on.
    pub fn subscribe(&self) -> Receiver<T> {
        self.shared.rx_count.set(self.shared.rx_count.get() + 1);
        Receiver {
            shared: Rc::clone(&self.shared),
            next: self.shared.ring.borrow().tail(),
        }
    }

    /// Receivers alive.
    pub fn receiver_count(&self) -> usize {
        self.shared.rx_count.get()
    }

    /// Values not yet read by every receiver that was alive when they were sent.
    pub fn len(&self) -> usize {
        self.shared.ring.borrow().queued
    }

    /// Whether [`len`](Self::len) is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether both feed the same channel.
    pub fn same_channel(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.shared, &other.shared)
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.tx_count.set(self.shared.tx_count.get() + 1);
        Sender {
            shared: Rc::clone(&self.shared),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let n = self.shared.tx_count.get() - 1;
        self.shared.tx_count.set(n);
        if n == 0 {
            self.shared.sent.notify_waiters();
        }
    }
}

impl<T: Clone> Receiver<T> {
    /// The next value (cloned, or moved out for its last reader), waiting for one.
    /// `Err(Lagged(n))` if `n` values were missed, `Err(Closed)` once every sender is gone and
    /// everything was read. Cancel-safe.
    pub async fn recv(&mut self) -> Result<T, RecvError> {
        let shared = Rc::clone(&self.shared);
        loop {
            let notified = shared.sent.notified();
            match self.try_recv() {
                Ok(v) => return Ok(v),
                Err(TryRecvError::Lagged(n)) => return Err(RecvError::Lagged(n)),
                Err(TryRecvError::Closed) => return Err(RecvError::Closed),
                Err(TryRecvError::Empty) => notified.await,
            }
        }
    }

    /// The next value if there is one now.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut ring = self.shared.ring.borrow_mut();
        if self.next < ring.head {
            let missed = ring.head - self.next;
            self.next = ring.head;
            return Err(TryRecvError::Lagged(missed));
        }
        if self.next == ring.tail() {
            return Err(if self.shared.tx_count.get() == 0 {
                TryRecvError::Closed
            } else {
                TryRecvError::Empty
            });
        }
        let seq = self.next;
        self.next += 1;
        let slot = &ring.slots[(seq - ring.head) as usize];
        if slot.unread > 1 {
            let v = slot.value.clone().expect("unread value present");
            ring.release(seq);
            Ok(v)
        } else {
            Ok(ring.release(seq).expect("unread value present"))
        }
    }
}

impl<T> Receiver<T> {
    /// A new receiver of every value sent from now on.
    pub fn resubscribe(&self) -> Self {
        self.shared.rx_count.set(self.shared.rx_count.get() + 1);
        Receiver {
            shared: Rc::clone(&self.shared),
            next: self.shared.ring.borrow().tail(),
        }
    }

    /// Values sent but not yet read by this receiver (including ones it has lagged past).
    pub fn len(&self) -> usize {
        (self.shared.ring.borrow().tail() - self.next) as usize
    }

    /// Whether [`len`](Self::len) is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every sender is gone.
    pub fn is_closed(&self) -> bool {
        self.shared.tx_count.get() == 0
    }

    /// Whether both read the same channel.
    pub fn same_channel(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.shared, &other.shared)
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.shared.rx_count.set(self.shared.rx_count.get() - 1);
        // Give up our claim on every value we have not read, so the last reader frees it.
        let mut dropped = Vec::new();
        {
            let mut ring = self.shared.ring.borrow_mut();
            let from = self.next.max(ring.head);
            for seq in from..ring.tail() {
                dropped.extend(ring.release(seq));
            }
        }
        drop(dropped); // Outside the borrow.
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("receivers", &self.receiver_count())
            .field("queued", &self.len())
            .finish()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("unread", &self.len())
            .finish()
    }
}
