//! A single value that many tasks of one core watch for changes (tokio's `watch`).
//!
//! The channel holds one value and a version. Each [`Receiver`] remembers the version it
//! last saw: [`changed`](Receiver::changed) resolves when the version moved on, however many
//! sends happened in between. That is **coalescing**: receivers see the latest value, not
//! every value, and a slow receiver never holds up the sender or the others.
//!
//! **Cancellation:** `changed()` is cancel-safe; dropping it marks nothing as seen.
//!
//! [`borrow`](Receiver::borrow) returns a `Ref` into the shared value. Do not hold it across
//! an `.await` or while sending on the same channel: the value lives in a `RefCell`, so a
//! send while a `Ref` is alive panics (tokio's version would deadlock instead).
//!
//! ```
//! use ringleader::sync::local::watch;
//!
//! ringleader::block_on(async {
//!     let (tx, mut rx) = watch::channel("starting");
//!     tx.send("ready").unwrap();
//!     tx.send("running").unwrap(); // coalesced with the send before
//!     rx.changed().await.unwrap();
//!     assert_eq!(*rx.borrow_and_update(), "running");
//!     drop(tx);
//!     assert!(rx.changed().await.is_err()); // nothing new and no sender left
//! });
//! ```

use std::cell::{Cell, RefCell};
use std::fmt;
use std::ops::Deref;
use std::rc::Rc;

use super::notify::Notify;

/// Errors, at tokio's paths.
pub mod error {
    use std::fmt;

    /// Every receiver is gone; the value comes back.
    #[derive(PartialEq, Eq, Clone, Copy)]
    pub struct SendError<T>(pub T);

    /// Every sender is gone (and, for `changed`, nothing new is left to see).
    #[derive(Debug, PartialEq, Eq, Clone, Copy)]
    pub struct RecvError(pub(crate) ());

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
            f.write_str("channel closed")
        }
    }
    impl std::error::Error for RecvError {}
}

use error::{RecvError, SendError};

struct Shared<T> {
    value: RefCell<T>,
    version: Cell<u64>,
    tx_count: Cell<usize>,
    rx_count: Cell<usize>,
    /// Receivers in `changed()`; `notify_waiters` on every send and on the last sender's drop.
    changed: Notify,
    /// Senders in `closed()`; `notify_waiters` when the last receiver goes.
    closed: Notify,
}

/// The sending half; clone it for more senders.
pub struct Sender<T> {
    shared: Rc<Shared<T>>,
}

/// A watcher of the value; clone it (keeping what it has seen) or [`Sender::subscribe`].
pub struct Receiver<T> {
    shared: Rc<Shared<T>>,
    seen: u64,
}

/// A borrow of the current value; says whether the receiver had seen it.
pub struct Ref<'a, T> {
    inner: std::cell::Ref<'a, T>,
    has_changed: bool,
}

impl<T> Ref<'_, T> {
    /// Whether this value is newer than what the receiver had seen when it borrowed.
    pub fn has_changed(&self) -> bool {
        self.has_changed
    }
}

impl<T> Deref for Ref<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T: fmt::Debug> fmt::Debug for Ref<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.inner, f)
    }
}

/// A watch channel holding `init`; the receiver starts having seen it.
pub fn channel<T>(init: T) -> (Sender<T>, Receiver<T>) {
    let shared = Rc::new(Shared {
        value: RefCell::new(init),
        version: Cell::new(0),
        tx_count: Cell::new(1),
        rx_count: Cell::new(1),
        changed: Notify::new(),
        closed: Notify::new(),
    });
    (
        Sender {
            shared: Rc::clone(&shared),
        },
        Receiver { shared, seen: 0 },
    )
}

impl<T> Sender<T> {
    /// A sender with no receiver yet ([`subscribe`](Self::subscribe) makes them).
    pub fn new(init: T) -> Self {
        let (tx, _) = channel(init);
        tx
    }

    /// Store `value` and wake every receiver; `Err` with the value if no receiver is left
    /// (nothing is stored then).
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        if self.shared.rx_count.get() == 0 {
            return Err(SendError(value));
        }
        drop(self.send_replace(value));
        Ok(())
    }

    /// Store `value` whether or not anyone watches; returns the old value.
    pub fn send_replace(&self, value: T) -> T {
        let old = std::mem::replace(&mut *self.shared.value.borrow_mut(), value);
        self.bump();
        old
    }

    /// Change the value in place and wake every receiver (even with none left).
    pub fn send_modify(&self, modify: impl FnOnce(&mut T)) {
        self.send_if_modified(|v| {
            modify(v);
            true
        });
    }

    /// Change the value in place; receivers are woken only if `modify` returns `true`.
    pub fn send_if_modified(&self, modify: impl FnOnce(&mut T) -> bool) -> bool {
        let modified = modify(&mut self.shared.value.borrow_mut());
        if modified {
            self.bump();
        }
        modified
    }

    fn bump(&self) {
        self.shared.version.set(self.shared.version.get() + 1);
        self.shared.changed.notify_waiters();
    }

    /// The current value (its `has_changed` is always `false`).
    pub fn borrow(&self) -> Ref<'_, T> {
        Ref {
            inner: self.shared.value.borrow(),
            has_changed: false,
        }
    }

    /// A new receiver that has seen the current value.
    pub fn subscribe(&self) -> Receiver<T> {
        self.shared.rx_count.set(self.shared.rx_count.get() + 1);
        Receiver {
            shared: Rc::clone(&self.shared),
            seen: self.shared.version.get(),
        }
    }

    /// Receivers alive.
    pub fn receiver_count(&self) -> usize {
        self.shared.rx_count.get()
    }

    /// Senders alive.
    pub fn sender_count(&self) -> usize {
        self.shared.tx_count.get()
    }

    /// Whether every receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.shared.rx_count.get() == 0
    }

    /// Wait until every receiver is gone. Cancel-safe.
    pub async fn closed(&self) {
        loop {
            let notified = self.shared.closed.notified();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
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
            self.shared.changed.notify_waiters();
        }
    }
}

impl<T> Receiver<T> {
    /// The current value, without marking it seen.
    pub fn borrow(&self) -> Ref<'_, T> {
        Ref {
            inner: self.shared.value.borrow(),
            has_changed: self.shared.version.get() != self.seen,
        }
    }

    /// The current value, marking it seen.
    pub fn borrow_and_update(&mut self) -> Ref<'_, T> {
        let version = self.shared.version.get();
        let has_changed = version != self.seen;
        self.seen = version;
        Ref {
            inner: self.shared.value.borrow(),
            has_changed,
        }
    }

    /// Whether a value newer than the last seen is there; `Err` once every sender is gone.
    pub fn has_changed(&self) -> Result<bool, RecvError> {
        if self.shared.tx_count.get() == 0 {
            return Err(RecvError(()));
        }
        Ok(self.shared.version.get() != self.seen)
    }

    /// Whether every sender is gone.
    pub fn is_closed(&self) -> bool {
        self.shared.tx_count.get() == 0
    }

    /// Treat the current value as unseen.
    pub fn mark_changed(&mut self) {
        self.seen = self.shared.version.get().wrapping_sub(1);
    }

    /// Treat the current value as seen.
    pub fn mark_unchanged(&mut self) {
        self.seen = self.shared.version.get();
    }

    /// Wait for a value newer than the last seen and mark it seen. `Err` once every sender
    /// is gone and nothing new is left. Cancel-safe.
    pub async fn changed(&mut self) -> Result<(), RecvError> {
        loop {
            let notified = self.shared.changed.notified();
            let version = self.shared.version.get();
            if version != self.seen {
                self.seen = version;
                return Ok(());
            }
            if self.shared.tx_count.get() == 0 {
                return Err(RecvError(()));
            }
            notified.await;
        }
    }

    /// Wait until `f` accepts the value (checking the current one first), mark it seen and
    /// return it. `Err` once every sender is gone without `f` accepting.
    pub async fn wait_for(
        &mut self,
        mut f: impl FnMut(&T) -> bool,
    ) -> Result<Ref<'_, T>, RecvError> {
        loop {
            let notified = self.shared.changed.notified();
            let version = self.shared.version.get();
            let ok = f(&self.shared.value.borrow());
            self.seen = version;
            if ok {
                break;
            }
            if self.shared.tx_count.get() == 0 {
                return Err(RecvError(()));
            }
            notified.await;
        }
        Ok(Ref {
            inner: self.shared.value.borrow(),
            has_changed: false,
        })
    }

    /// Whether both watch the same channel.
    pub fn same_channel(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.shared, &other.shared)
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.shared.rx_count.set(self.shared.rx_count.get() + 1);
        Receiver {
            shared: Rc::clone(&self.shared),
            seen: self.seen,
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let n = self.shared.rx_count.get() - 1;
        self.shared.rx_count.set(n);
        if n == 0 {
            self.shared.closed.notify_waiters();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("receivers", &self.receiver_count())
            .finish()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("seen", &self.seen)
            .field("closed", &self.is_closed())
            .finish()
    }
}
