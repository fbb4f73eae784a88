//! An async reader-writer lock for the tasks of one core: the local [`Semaphore`] with
//! `max_readers` permits; a reader takes one, a writer takes them all (as tokio does).
//!
//! Fair, in arrival order: a writer waits for the readers ahead of it, and readers that
//! arrive after a waiting writer wait behind it, so writers are never starved.
//! **Cancellation:** dropping a waiting `read()`/`write()` leaves the queue and passes on
//! whatever permits it had been given, so the waiters behind it move up.

use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::rc::Rc;

use super::mutex::TryLockError;
use super::semaphore::{Acquire, Semaphore};

/// The default and largest reader count (tokio's bound).
const MAX_READS: u32 = u32::MAX >> 3;

/// tokio's `RwLock` for one core (`Rc` where tokio takes an `Arc`).
///
/// ```
/// use ringleader::sync::local::RwLock;
///
/// ringleader::block_on(async {
///     let lock = RwLock::new(5);
///     {
///         let r1 = lock.read().await;
///         let r2 = lock.read().await;
///         assert_eq!(*r1 + *r2, 10);
///         assert!(lock.try_write().is_err());
///     }
///     *lock.write().await += 1;
///     assert_eq!(*lock.read().await, 6);
/// });
/// ```
pub struct RwLock<T: ?Sized> {
    max_readers: u32,
    sem: Semaphore,
    value: UnsafeCell<T>,
}

impl<T> RwLock<T> {
    /// An unlocked lock holding `value`.
    pub const fn new(value: T) -> Self {
        Self::with_max_readers(value, MAX_READS)
    }

    /// Same as [`new`](Self::new) (tokio has both).
    pub const fn const_new(value: T) -> Self {
        Self::new(value)
    }

    /// A lock that admits at most `max_readers` readers at once.
    ///
    /// # Panics
    /// If `max_readers` is 0 or above `u32::MAX >> 3`.
    pub const fn with_max_readers(value: T, max_readers: u32) -> Self {
        assert!(
            max_readers > 0 && max_readers <= MAX_READS,
            "max_readers out of range"
        );
        RwLock {
            max_readers,
            sem: Semaphore::new(max_readers as usize),
            value: UnsafeCell::new(value),
        }
    }

    /// The value (no guard can exist: `self` is owned).
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Wait for shared access.
    pub async fn read(&self) -> RwLockReadGuard<'_, T> {
        let _ = Acquire::new(&self.sem, 1).await; // never closed
        RwLockReadGuard { lock: self }
    }

    /// Wait for exclusive access.
    pub async fn write(&self) -> RwLockWriteGuard<'_, T> {
        let _ = Acquire::new(&self.sem, self.max_readers as usize).await; // never closed
        RwLockWriteGuard { lock: self }
    }

    /// Shared access, if no writer holds or waits for the lock.
    pub fn try_read(&self) -> Result<RwLockReadGuard<'_, T>, TryLockError> {
        self.try_take(1)?;
        Ok(RwLockReadGuard { lock: self })
    }

    /// Exclusive access, if the lock is free.
    pub fn try_write(&self) -> Result<RwLockWriteGuard<'_, T>, TryLockError> {
        self.try_take(self.max_readers)?;
        Ok(RwLockWriteGuard { lock: self })
    }

    /// [`read`](Self::read) with a guard that owns an `Rc` of the lock.
    pub async fn read_owned(self: Rc<Self>) -> OwnedRwLockReadGuard<T> {
        let _ = Acquire::new(&self.sem, 1).await;
        OwnedRwLockReadGuard { lock: self }
    }

    /// [`write`](Self::write) with a guard that owns an `Rc` of the lock.
    pub async fn write_owned(self: Rc<Self>) -> OwnedRwLockWriteGuard<T> {
        let _ = Acquire::new(&self.sem, self.max_readers as usize).await;
        OwnedRwLockWriteGuard { lock: self }
    }

    /// [`try_read`](Self::try_read) with an owned guard.
    pub fn try_read_owned(self: Rc<Self>) -> Result<OwnedRwLockReadGuard<T>, TryLockError> {
        self.try_take(1)?;
        Ok(OwnedRwLockReadGuard { lock: self })
    }

    /// [`try_write`](Self::try_write) with an owned guard.
    pub fn try_write_owned(self: Rc<Self>) -> Result<OwnedRwLockWriteGuard<T>, TryLockError> {
        self.try_take(self.max_readers)?;
        Ok(OwnedRwLockWriteGuard { lock: self })
    }

    /// The value, through `&mut self` (no guard can exist).
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    fn try_take(&self, n: u32) -> Result<(), TryLockError> {
        match self.sem.try_acquire_many(n) {
            Ok(p) => {
                p.forget();
                Ok(())
            }
            Err(_) => Err(TryLockError(())),
        }
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> Self {
        RwLock::new(T::default())
    }
}

impl<T> From<T> for RwLock<T> {
    fn from(value: T) -> Self {
        RwLock::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Ok(g) => d.field("data", &&*g),
            Err(_) => d.field("data", &format_args!("<locked>")),
        };
        d.finish()
    }
}

/// Shared access to an [`RwLock`]'s value; one reader permit, returned on drop.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
}

/// Exclusive access to an [`RwLock`]'s value; every permit, returned on drop.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
}

/// [`RwLockReadGuard`] holding an `Rc` of the lock.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct OwnedRwLockReadGuard<T: ?Sized> {
    lock: Rc<RwLock<T>>,
}

/// [`RwLockWriteGuard`] holding an `Rc` of the lock.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct OwnedRwLockWriteGuard<T: ?Sized> {
    lock: Rc<RwLock<T>>,
}

impl<'a, T: ?Sized> RwLockWriteGuard<'a, T> {
    /// Turn exclusive access into shared access without letting a writer in between; readers
    /// waiting behind this writer may now proceed.
    pub fn downgrade(self) -> RwLockReadGuard<'a, T> {
        let lock = self.lock;
        std::mem::forget(self);
        lock.sem.release(lock.max_readers as usize - 1);
        RwLockReadGuard { lock }
    }
}

impl<T: ?Sized> OwnedRwLockWriteGuard<T> {
    /// As [`RwLockWriteGuard::downgrade`].
    pub fn downgrade(self) -> OwnedRwLockReadGuard<T> {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so the `Rc` is moved out exactly once.
        let lock = unsafe { std::ptr::read(&this.lock) };
        lock.sem.release(lock.max_readers as usize - 1);
        OwnedRwLockReadGuard { lock }
    }
}

// The guards' accessors: a read guard holds one of the lock's `max_readers` permits and a
// write guard holds all of them (taken when the guard is made, returned in its `Drop`), so
// while a write guard exists no other guard does, and read guards only coexist with read
// guards. `RwLock` is `!Sync` (its `UnsafeCell`), so all guards live on the lock's thread.
impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a read permit is held (see above): no write guard, hence no `&mut T`, exists.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T: ?Sized> Deref for OwnedRwLockReadGuard<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a read permit is held (see above): no write guard, hence no `&mut T`, exists.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: every permit is held by this guard (see above): no other guard exists.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: every permit is held by this guard, and `&mut self` makes this reference
        // the only one.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T: ?Sized> Deref for OwnedRwLockWriteGuard<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: every permit is held by this guard (see above): no other guard exists.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T: ?Sized> DerefMut for OwnedRwLockWriteGuard<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: every permit is held by this guard, and `&mut self` makes this reference
        // the only one.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.sem.release(1);
    }
}

impl<T: ?Sized> Drop for OwnedRwLockReadGuard<T> {
    fn drop(&mut self) {
        self.lock.sem.release(1);
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.sem.release(self.lock.max_readers as usize);
    }
}

impl<T: ?Sized> Drop for OwnedRwLockWriteGuard<T> {
    fn drop(&mut self) {
        self.lock.sem.release(self.lock.max_readers as usize);
    }
}

macro_rules! debug_via_deref {
    ($($ty:ident $(<$lt:lifetime>)?),*) => {$(
        impl<$($lt,)? T: ?Sized + fmt::Debug> fmt::Debug for $ty<$($lt,)? T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&**self, f)
            }
        }
    )*};
}
debug_via_deref!(
    RwLockReadGuard<'a>,
    RwLockWriteGuard<'a>,
    OwnedRwLockReadGuard,
    OwnedRwLockWriteGuard
);
