//! An async mutex for the tasks of one core: the local [`Semaphore`] with one permit, around
//! the value.
//!
//! Fair: `lock()` callers get the lock in the order they started waiting. **Cancellation:**
//! dropping a waiting `lock()` leaves the queue; if the lock had just been handed to it, the
//! next waiter gets it. A guard may be held across `.await` (that is what it is for); it is
//! `!Send`, like everything in [`local`](super).

use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::rc::Rc;

use super::semaphore::{Acquire, Semaphore, TryAcquireError};

/// tokio's `Mutex` for one core (`Rc` where tokio takes an `Arc`).
///
/// ```
/// use std::rc::Rc;
/// use ringleader::sync::local::Mutex;
///
/// ringleader::block_on(async {
///     let m = Rc::new(Mutex::new(0));
///     let tasks: Vec<_> = (0..4).map(|_| {
///         let m = Rc::clone(&m);
///         ringleader::spawn(async move {
///             let mut g = m.lock().await;
///             ringleader::yield_now().await; // held across an await
///             *g += 1;
///         })
///     }).collect();
///     for t in tasks {
///         t.await.unwrap();
///     }
///     assert_eq!(*m.lock().await, 4);
/// });
/// ```
pub struct Mutex<T: ?Sized> {
    sem: Semaphore,
    value: UnsafeCell<T>,
}

/// Error of [`Mutex::try_lock`] (and the local `RwLock`'s `try_*`): the lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TryLockError(pub(crate) ());

impl fmt::Display for TryLockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("operation would block")
    }
}
impl std::error::Error for TryLockError {}

impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`.
    pub const fn new(value: T) -> Self {
        Mutex {
            sem: Semaphore::new(1),
            value: UnsafeCell::new(value),
        }
    }

    /// Same as [`new`](Self::new) (tokio has both).
    pub const fn const_new(value: T) -> Self {
        Self::new(value)
    }

    /// The value (no guard can exist: `self` is owned).
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Wait for the lock (first come, first served).
    pub async fn lock(&self) -> MutexGuard<'_, T> {
        lock_permit(&self.sem).await;
        MutexGuard { lock: self }
    }

    /// The lock, if it is free now.
    pub fn try_lock(&self) -> Result<MutexGuard<'_, T>, TryLockError> {
        try_permit(&self.sem)?;
        Ok(MutexGuard { lock: self })
    }

    /// [`lock`](Self::lock) with a guard that owns an `Rc` of the mutex.
    pub async fn lock_owned(self: Rc<Self>) -> OwnedMutexGuard<T> {
        lock_permit(&self.sem).await;
        OwnedMutexGuard { lock: self }
    }

    /// [`try_lock`](Self::try_lock) with an owned guard.
    pub fn try_lock_owned(self: Rc<Self>) -> Result<OwnedMutexGuard<T>, TryLockError> {
        try_permit(&self.sem)?;
        Ok(OwnedMutexGuard { lock: self })
    }

    /// The value, through `&mut self` (no guard can exist).
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }
}

/// Wait for the mutex's only permit and keep it (the guard gives it back).
async fn lock_permit(sem: &Semaphore) {
    // A mutex's semaphore is never closed.
    let _ = Acquire::new(sem, 1).await;
}

fn try_permit(sem: &Semaphore) -> Result<(), TryLockError> {
    match sem.try_acquire() {
        Ok(p) => {
            p.forget();
            Ok(())
        }
        Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => Err(TryLockError(())),
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Self {
        Mutex::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Ok(g) => d.field("data", &&*g),
            Err(_) => d.field("data", &format_args!("<locked>")),
        };
        d.finish()
    }
}

/// Exclusive access to a [`Mutex`]'s value; unlocks on drop.
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: ?Sized> {
    lock: &'a Mutex<T>,
}

/// Exclusive access to a [`Mutex`] held through an `Rc`; unlocks on drop.
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct OwnedMutexGuard<T: ?Sized> {
    lock: Rc<Mutex<T>>,
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// The mutex this guard locks.
    pub fn mutex(this: &Self) -> &'a Mutex<T> {
        this.lock
    }
}

impl<T: ?Sized> OwnedMutexGuard<T> {
    /// The mutex this guard locks.
    pub fn mutex(this: &Self) -> &Rc<Mutex<T>> {
        &this.lock
    }
}

// The guards' accessors: a guard exists only while the mutex's single permit is counted out
// to it (taken in `lock`/`try_lock`, returned in `Drop`), so at most one guard per mutex
// exists at a time, and `Mutex` is `!Sync` (its `UnsafeCell`), so every guard lives on the
// thread that owns the mutex.
impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the mutex's only permit (see above), so no `&mut T` exists
        // except through this guard, whose `&self` borrow the returned reference shares.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only live reference.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T: ?Sized> Deref for OwnedMutexGuard<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the mutex's only permit, see `MutexGuard::deref`.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T: ?Sized> DerefMut for OwnedMutexGuard<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only live reference.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.sem.release(1);
    }
}

impl<T: ?Sized> Drop for OwnedMutexGuard<T> {
    fn drop(&mut self) {
        self.lock.sem.release(1);
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for OwnedMutexGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
