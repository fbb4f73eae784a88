//! A fair counting semaphore for the tasks of one core.
//!
//! Waiters queue in FIFO order and permits go to the head of the queue first, even while it
//! waits for more than are free (it keeps what it was given): so a large `acquire_many` is
//! never starved by a stream of small ones, and nobody overtakes a waiter. Because released
//! permits are handed to the head at once, no permit is ever free while somebody waits.
//!
//! **Cancellation.** Dropping a waiting `acquire` leaves the queue; permits it had been given
//! (all of them, if it was chosen but not yet polled) go back to the next waiter. Nothing is
//! lost and nobody behind it waits longer.
//!
//! This is also the engine of the local [`Mutex`](super::Mutex) (one permit),
//! [`RwLock`](super::RwLock) (one permit per reader, all of them for a writer) and bounded
//! [`mpsc`](super::mpsc) (one permit per free slot), as in tokio.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::wait_list::WaitList;

/// A fair, single-core counting semaphore (tokio's `Semaphore`, with `Rc` where tokio takes
/// an `Arc`).
///
/// ```
/// use std::rc::Rc;
/// use ringleader::sync::local::Semaphore;
///
/// ringleader::block_on(async {
///     let sem = Rc::new(Semaphore::new(2));
///     let a = sem.acquire().await.unwrap();
///     let b = Rc::clone(&sem).acquire_owned().await.unwrap();
///     assert!(sem.try_acquire().is_err());
///     drop(a);
///     assert_eq!(sem.available_permits(), 1);
///     drop(b);
///     sem.close();
///     assert!(sem.acquire().await.is_err());
/// });
/// ```
pub struct Semaphore {
    state: RefCell<State>,
}

struct State {
    /// Free permits. Zero whenever a waiter is queued (they go to the head first).
    permits: usize,
    closed: bool,
    waiters: WaitList<Waiter>,
}

struct Waiter {
    needed: usize,
    assigned: usize,
    waker: Option<Waker>,
}

/// Error of [`Semaphore::acquire`]: the semaphore was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcquireError(());

/// Error of [`Semaphore::try_acquire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryAcquireError {
    /// The semaphore was closed.
    Closed,
    /// Not enough permits are free.
    NoPermits,
}

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("semaphore closed")
    }
}
impl std::error::Error for AcquireError {}

impl fmt::Display for TryAcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryAcquireError::Closed => f.write_str("semaphore closed"),
            TryAcquireError::NoPermits => f.write_str("no permits available"),
        }
    }
}
impl std::error::Error for TryAcquireError {}

impl Semaphore {
    /// The most permits a semaphore can hold (tokio's bound).
    pub const MAX_PERMITS: usize = usize::MAX >> 3;

    /// A semaphore with `permits` permits.
    ///
    /// # Panics
    /// If `permits` exceeds [`Semaphore::MAX_PERMITS`].
    pub const fn new(permits: usize) -> Self {
        assert!(permits <= Self::MAX_PERMITS, "permits exceed MAX_PERMITS");
        Semaphore {
            state: RefCell::new(State {
                permits,
                closed: false,
                waiters: WaitList::new(),
            }),
        }
    }

    /// Same as [`new`](Self::new) (tokio has both).
    pub const fn const_new(permits: usize) -> Self {
        Self::new(permits)
    }

    /// Free permits.
    pub fn available_permits(&self) -> usize {
        self.state.borrow().permits
    }

    /// Add `n` permits, waking the waiters they satisfy, in order.
    ///
    /// # Panics
    /// If the total would exceed [`Semaphore::MAX_PERMITS`].
    pub fn add_permits(&self, n: usize) {
        self.release(n);
    }

    /// Remove up to `n` free permits; returns how many were removed.
    pub fn forget_permits(&self, n: usize) -> usize {
        let mut s = self.state.borrow_mut();
        let taken = n.min(s.permits);
        s.permits -= taken;
        taken
    }

    /// Wait for one permit.
    pub async fn acquire(&self) -> Result<SemaphorePermit<'_>, AcquireError> {
        self.acquire_many(1).await
    }

    /// Wait for `n` permits, granted together (fairly: queued waiters go first).
    pub async fn acquire_many(&self, n: u32) -> Result<SemaphorePermit<'_>, AcquireError> {
        let permits = n as usize;
        Acquire::new(self, permits).await?;
        Ok(SemaphorePermit { sem: self, permits })
    }

    /// One permit, if one is free now.
    pub fn try_acquire(&self) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        self.try_acquire_many(1)
    }

    /// `n` permits, if they are free now. Never overtakes a waiter (none is queued while a
    /// permit is free).
    pub fn try_acquire_many(&self, n: u32) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        let permits = n as usize;
        self.try_take(permits)?;
        Ok(SemaphorePermit { sem: self, permits })
    }

    /// [`acquire`](Self::acquire) with a permit that owns an `Rc` of the semaphore.
    pub async fn acquire_owned(self: Rc<Self>) -> Result<OwnedSemaphorePermit, AcquireError> {
        self.acquire_many_owned(1).await
    }

    /// [`acquire_many`](Self::acquire_many) with a permit that owns an `Rc` of the semaphore.
    pub async fn acquire_many_owned(
        self: Rc<Self>,
        n: u32,
    ) -> Result<OwnedSemaphorePermit, AcquireError> {
        let permits = n as usize;
        Acquire::new(&self, permits).await?;
        Ok(OwnedSemaphorePermit { sem: self, permits })
    }

    /// [`try_acquire`](Self::try_acquire) with an owned permit.
    pub fn try_acquire_owned(self: Rc<Self>) -> Result<OwnedSemaphorePermit, TryAcquireError> {
        self.try_acquire_many_owned(1)
    }

    /// [`try_acquire_many`](Self::try_acquire_many) with an owned permit.
    pub fn try_acquire_many_owned(
        self: Rc<Self>,
        n: u32,
    ) -> Result<OwnedSemaphorePermit, TryAcquireError> {
        let permits = n as usize;
        self.try_take(permits)?;
        Ok(OwnedSemaphorePermit { sem: self, permits })
    }

    /// Close: every waiting and future `acquire` fails; permits held stay valid and come back
    /// on drop (to `try_acquire`, which also fails from now on).
    pub fn close(&self) {
        let mut wakers = Vec::new();
        {
            let mut s = self.state.borrow_mut();
            s.closed = true;
            while let Some(key) = s.waiters.pop_front() {
                let w = s.waiters.get_mut(key);
                let given = std::mem::take(&mut w.assigned);
                wakers.extend(w.waker.take());
                s.permits += given;
            }
        }
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.state.borrow().closed
    }

    fn try_take(&self, n: usize) -> Result<(), TryAcquireError> {
        let mut s = self.state.borrow_mut();
        if s.closed {
            Err(TryAcquireError::Closed)
        } else if s.permits >= n {
            s.permits -= n;
            Ok(())
        } else {
            Err(TryAcquireError::NoPermits)
        }
    }

    /// Give `n` permits back: to the queue's head first, in order, then to the free count.
    /// Wakers run one at a time, each outside the borrow.
    pub(crate) fn release(&self, mut n: usize) {
        while n > 0 {
            let waker = {
                let mut s = self.state.borrow_mut();
                match s.waiters.front() {
                    None => {
                        assert!(
                            s.permits + n <= Self::MAX_PERMITS,
                            "permits exceed MAX_PERMITS"
                        );
                        s.permits += n;
                        return;
                    }
                    Some(key) => {
                        let w = s.waiters.get_mut(key);
                        let give = n.min(w.needed - w.assigned);
                        w.assigned += give;
                        n -= give;
                        if w.assigned < w.needed {
                            return; // `n` is now 0: all of it went to the head.
                        }
                        let waker = w.waker.take();
                        s.waiters.unlink(key);
                        waker
                    }
                }
            };
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.state.try_borrow() {
            Ok(s) => f
                .debug_struct("Semaphore")
                .field("permits", &s.permits)
                .field("closed", &s.closed)
                .field("waiting", &!s.waiters.is_empty())
                .finish(),
            Err(_) => f.write_str("Semaphore { <borrowed> }"),
        }
    }
}

/// The wait for `needed` permits. Resolves with them counted out of the semaphore; the caller
/// wraps them in a permit.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub(crate) struct Acquire<'a> {
    sem: &'a Semaphore,
    needed: usize,
    /// Our entry in the wait list once queued.
    key: Option<usize>,
    done: bool,
}

impl<'a> Acquire<'a> {
    pub(crate) fn new(sem: &'a Semaphore, needed: usize) -> Self {
        Acquire {
            sem,
            needed,
            key: None,
            done: false,
        }
    }
}

impl Future for Acquire<'_> {
    type Output = Result<(), AcquireError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        assert!(!this.done, "Acquire polled after completion");
        let mut s = this.sem.state.borrow_mut();
        let Some(key) = this.key else {
            if s.closed {
                this.done = true;
                return Poll::Ready(Err(AcquireError(())));
            }
            if s.permits >= this.needed {
                s.permits -= this.needed;
                this.done = true;
                return Poll::Ready(Ok(()));
            }
            // Whatever is free goes to us now (we are the head: nobody waits while a permit
            // is free).
            let assigned = std::mem::take(&mut s.permits);
            this.key = Some(s.waiters.push_back(Waiter {
                needed: this.needed,
                assigned,
                waker: Some(cx.waker().clone()),
            }));
            return Poll::Pending;
        };
        if s.waiters.is_linked(key) {
            let slot = &mut s.waiters.get_mut(key).waker;
            if slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                return Poll::Pending;
            }
            let old = slot.replace(cx.waker().clone());
            drop(s); // A waker's drop runs outside the borrow.
            drop(old);
            return Poll::Pending;
        }
        // Popped: either satisfied, or the semaphore was closed (which took back what we had
        // been given). A queued waiter always needs at least one permit.
        let w = s.waiters.remove(key);
        this.key = None;
        this.done = true;
        if w.assigned == w.needed {
            Poll::Ready(Ok(()))
        } else {
            Poll::Ready(Err(AcquireError(())))
        }
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        // Taken out under the borrow, dropped (with its waker) after it.
        let waiter = self.sem.state.borrow_mut().waiters.remove(key);
        // Permits we were given (all of them, if we were chosen and not yet polled) go on to
        // the next waiter.
        self.sem.release(waiter.assigned);
    }
}

/// Permits from [`Semaphore::acquire`]; they go back when this is dropped.
#[must_use = "the permits are released at once if the permit is not kept"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
    permits: usize,
}

/// Permits from [`Semaphore::acquire_owned`]; they go back when this is dropped.
#[must_use = "the permits are released at once if the permit is not kept"]
pub struct OwnedSemaphorePermit {
    sem: Rc<Semaphore>,
    permits: usize,
}

impl<'a> SemaphorePermit<'a> {
    /// Keep the permits out of the semaphore for good.
    pub fn forget(mut self) {
        self.permits = 0;
    }

    /// How many permits this holds.
    pub fn num_permits(&self) -> usize {
        self.permits
    }

    /// Take `other`'s permits into this one.
    ///
    /// # Panics
    /// If `other` is from another semaphore.
    pub fn merge(&mut self, mut other: Self) {
        assert!(
            std::ptr::eq(self.sem, other.sem),
            "merging permits of different semaphores"
        );
        self.permits += std::mem::take(&mut other.permits);
    }

    /// Split `n` permits off into a new permit, or `None` if this holds fewer.
    pub fn split(&mut self, n: usize) -> Option<Self> {
        if n > self.permits {
            return None;
        }
        self.permits -= n;
        Some(SemaphorePermit {
            sem: self.sem,
            permits: n,
        })
    }

    /// The semaphore the permits belong to.
    pub fn semaphore(&self) -> &'a Semaphore {
        self.sem
    }
}

impl OwnedSemaphorePermit {
    /// Keep the permits out of the semaphore for good.
    pub fn forget(mut self) {
        self.permits = 0;
    }

    /// How many permits this holds.
    pub fn num_permits(&self) -> usize {
        self.permits
    }

    /// Take `other`'s permits into this one.
    ///
    /// # Panics
    /// If `other` is from another semaphore.
    pub fn merge(&mut self, mut other: Self) {
        assert!(
            Rc::ptr_eq(&self.sem, &other.sem),
            "merging permits of different semaphores"
        );
        self.permits += std::mem::take(&mut other.permits);
    }

    /// Split `n` permits off into a new permit, or `None` if this holds fewer.
    pub fn split(&mut self, n: usize) -> Option<Self> {
        if n > self.permits {
            return None;
        }
        self.permits -= n;
        Some(OwnedSemaphorePermit {
            sem: Rc::clone(&self.sem),
            permits: n,
        })
    }

    /// The semaphore the permits belong to.
    pub fn semaphore(&self) -> &Rc<Semaphore> {
        &self.sem
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.release(self.permits);
    }
}

impl Drop for OwnedSemaphorePermit {
    fn drop(&mut self) {
        self.sem.release(self.permits);
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("permits", &self.permits)
            .finish()
    }
}

impl fmt::Debug for OwnedSemaphorePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSemaphorePermit")
            .field("permits", &self.permits)
            .finish()
    }
}
