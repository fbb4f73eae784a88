//! Wake-ups without data for the tasks of one core, with tokio's `Notify` semantics.
//!
//! - [`notify_one`](Notify::notify_one) wakes the longest-waiting [`Notified`] future; if
//!   nobody waits it stores **one** permit (several calls still store one), which the next
//!   `notified().await` consumes at once.
//! - [`notify_last`](Notify::notify_last) is the same, waking the most recent waiter.
//! - [`notify_waiters`](Notify::notify_waiters) wakes every `Notified` future that exists
//!   at the time of the call, polled yet or not, and stores no permit.
//!
//! **Cancellation:** dropping a waiting `Notified` leaves the queue. If `notify_one` had
//! already chosen it, the notification is passed on (to the next waiter, or stored as the
//! permit), so a dropped waiter never swallows a wake-up. A `notify_waiters` wake-up is not
//! passed on: it was meant for everyone who waited at the time.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use super::wait_list::WaitList;

/// tokio's `Notify` for one core.
///
/// ```
/// use std::rc::Rc;
/// use ringleader::sync::local::Notify;
///
/// ringleader::block_on(async {
///     let notify = Rc::new(Notify::new());
///     let n2 = Rc::clone(&notify);
///     let waiter = ringleader::spawn(async move {
///         n2.notified().await;
///         "woken"
///     });
///     ringleader::yield_now().await; // let it start waiting (not needed: a permit is kept)
///     notify.notify_one();
///     assert_eq!(waiter.await.unwrap(), "woken");
/// });
/// ```
pub struct Notify {
    state: RefCell<State>,
    /// Number of `notify_waiters` calls so far: a `Notified` made before a call is woken by
    /// it even if it never got to queue.
    waiters_calls: Cell<u64>,
}

struct State {
    permit: bool,
    waiters: WaitList<Waiter>,
}

struct Waiter {
    waker: Option<Waker>,
    /// Set when popped by a notify call.
    by: Option<By>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum By {
    One,
    All,
}

impl Notify {
    /// A `Notify` with no permit and no waiter.
    pub const fn new() -> Self {
        Notify {
            state: RefCell::new(State {
                permit: false,
                waiters: WaitList::new(),
            }),
            waiters_calls: Cell::new(0),
        }
    }

    /// Same as [`new`](Self::new) (tokio has both).
    pub const fn const_new() -> Self {
        Self::new()
    }

    /// A future that resolves at the next notification (or at once with a stored permit).
    /// It sees `notify_waiters` calls made after this call, even before its first poll.
    pub fn notified(&self) -> Notified<'_> {
        Notified {
            notify: self,
            waiters_calls: self.waiters_calls.get(),
            key: None,
            done: false,
        }
    }

    /// Wake the longest waiter, or store a permit if nobody waits.
    pub fn notify_one(&self) {
        self.notify(false);
    }

    /// Wake the newest waiter, or store a permit if nobody waits.
    pub fn notify_last(&self) {
        self.notify(true);
    }

    fn notify(&self, last: bool) {
        let waker = {
            let mut s = self.state.borrow_mut();
            let key = if last {
                s.waiters.pop_back()
            } else {
                s.waiters.pop_front()
            };
            match key {
                None => {
                    s.permit = true;
                    None
                }
                Some(key) => {
                    let w = s.waiters.get_mut(key);
                    w.by = Some(By::One);
                    w.waker.take()
                }
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Wake every `Notified` that exists now; store no permit.
    pub fn notify_waiters(&self) {
        self.waiters_calls.set(self.waiters_calls.get() + 1);
        let mut wakers = Vec::new();
        {
            let mut s = self.state.borrow_mut();
            while let Some(key) = s.waiters.pop_front() {
                let w = s.waiters.get_mut(key);
                w.by = Some(By::All);
                wakers.extend(w.waker.take());
            }
        }
        wakers.into_iter().for_each(Waker::wake);
    }
}

impl Default for Notify {
    fn default() -> Self {
        Notify::new()
    }
}

impl fmt::Debug for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.state.try_borrow() {
            Ok(s) => f
                .debug_struct("Notify")
                .field("permit", &s.permit)
                .field("waiting", &!s.waiters.is_empty())
                .finish(),
            Err(_) => f.write_str("Notify { <borrowed> }"),
        }
    }
}

/// The future of [`Notify::notified`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Notified<'a> {
    notify: &'a Notify,
    waiters_calls: u64,
    key: Option<usize>,
    done: bool,
}

impl Notified<'_> {
    /// Queue this future as a waiter without a waker, so that `notify_one` can choose it
    /// (and `notify_waiters` already counts it) before its first poll. Returns `true` if it
    /// has already been notified (the next poll is ready).
    pub fn enable(self: Pin<&mut Self>) -> bool {
        self.get_mut().poll_inner(None).is_ready()
    }

    fn poll_inner(&mut self, waker: Option<&Waker>) -> Poll<()> {
        if self.done {
            return Poll::Ready(());
        }
        let mut s = self.notify.state.borrow_mut();
        let Some(key) = self.key else {
            if self.notify.waiters_calls.get() != self.waiters_calls || s.permit {
                // Woken by `notify_waiters` since we were made, or a stored permit.
                if self.notify.waiters_calls.get() == self.waiters_calls {
                    s.permit = false;
                }
                self.done = true;
                return Poll::Ready(());
            }
            self.key = Some(s.waiters.push_back(Waiter {
                waker: waker.cloned(),
                by: None,
            }));
            return Poll::Pending;
        };
        if !s.waiters.is_linked(key) {
            let _ = s.waiters.remove(key);
            self.key = None;
            self.done = true;
            return Poll::Ready(());
        }
        let Some(waker) = waker else {
            return Poll::Pending;
        };
        let slot = &mut s.waiters.get_mut(key).waker;
        if slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            return Poll::Pending;
        }
        let old = slot.replace(waker.clone());
        drop(s); // A waker's drop runs outside the borrow.
        drop(old);
        Poll::Pending
    }
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().poll_inner(Some(cx.waker()))
    }
}

impl Drop for Notified<'_> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        // Taken out under the borrow, dropped (with its waker) after it.
        let waiter = self.notify.state.borrow_mut().waiters.remove(key);
        if waiter.by == Some(By::One) {
            // Chosen by `notify_one` but never got to see it: pass the notification on.
            self.notify.notify_one();
        }
    }
}

impl fmt::Debug for Notified<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notified")
            .field("queued", &self.key.is_some())
            .field("done", &self.done)
            .finish()
    }
}
