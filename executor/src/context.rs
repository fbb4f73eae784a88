//! The thread-local pointer to the core whose event loop is running on this thread.
//!
//! Set by [`EnterGuard`] for the duration of a `block_on` (and of a core's shutdown); the guard
//! holds an `Rc<Core>`, so the pointer is valid whenever it is non-null.

use std::cell::Cell;
use std::ptr;
use std::rc::Rc;

use crate::core::Core;
use crate::driver::Driver;

thread_local! {
    static CURRENT: Cell<*const Core> = const { Cell::new(ptr::null()) };
}

/// Keeps this thread's current core set; restores the previous one (usually "none") on drop.
pub(crate) struct EnterGuard {
    _core: Rc<Core>,
    previous: *const Core,
}

impl EnterGuard {
    /// # Panics
    /// If a ringleader runtime is already running on this thread (nested `block_on`).
    pub(crate) fn new(core: &Rc<Core>) -> Self {
        CURRENT.with(|c| {
            assert!(
                c.get().is_null(),
                "ringleader: cannot start a runtime from inside a runtime (nested block_on)"
            );
            c.set(Rc::as_ptr(core));
        });
        EnterGuard {
            _core: Rc::clone(core),
            previous: ptr::null(),
        }
    }

    /// Make `core` current for a while even inside another runtime (a `LocalRuntime` dropped
    /// inside another runtime shuts down as its own core); the other core is current again
    /// when the guard drops.
    pub(crate) fn nested(core: &Rc<Core>) -> Self {
        let previous = CURRENT.with(|c| c.replace(Rc::as_ptr(core)));
        EnterGuard {
            _core: Rc::clone(core),
            previous,
        }
    }
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

/// Run `f` with the current core, if this thread is running one.
#[inline]
pub(crate) fn with_core<R>(f: impl FnOnce(&Core) -> R) -> Option<R> {
    let p = CURRENT.with(Cell::get);
    if p.is_null() {
        None
    } else {
        // SAFETY: a non-null CURRENT was set by an `EnterGuard` that still holds an `Rc` to
        // this core (the guard resets it before releasing the Rc), and it is only read on
        // this thread.
        Some(f(unsafe { &*p }))
    }
}

/// Names the driver an op was submitted to, without keeping it alive: an op reaches its
/// driver only while that driver's core runs on this thread (a forgotten op leaks its own
/// data, never the ring).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DriverRef {
    id: u64,
}

/// Why [`DriverRef::access`] could not run its closure.
pub(crate) enum Unavailable {
    /// The driver's core is not the one running on this thread (the op outlived its
    /// runtime, or it is used from another runtime).
    Elsewhere,
    /// The driver is borrowed further up this thread's stack: user code runs inside a driver
    /// call (a waker's clone or drop). The caller hands its work to the event loop
    /// ([`defer`]).
    Busy,
}

impl DriverRef {
    /// Name `d`.
    #[inline]
    pub(crate) fn of(d: &Driver) -> DriverRef {
        DriverRef { id: d.id() }
    }

    /// The current core's driver.
    ///
    /// # Panics
    /// Outside a ringleader runtime.
    #[inline]
    pub(crate) fn current() -> DriverRef {
        with_core(|c| DriverRef { id: c.driver_id }).expect(
            "ringleader: an io operation was created outside a ringleader runtime \
             (use ringleader::block_on or Runtime::spawn_on)",
        )
    }

    /// Run `f` on the current core's driver, and name that driver.
    ///
    /// # Panics
    /// Outside a ringleader runtime, or while the driver is borrowed (an op created inside a
    /// waker the driver is calling): nothing was submitted then.
    #[inline]
    pub(crate) fn current_with<R>(f: impl FnOnce(&mut Driver) -> R) -> (DriverRef, R) {
        with_core(|c| {
            let mut d = c.driver.try_borrow_mut().unwrap_or_else(|_| busy_panic());
            (DriverRef { id: c.driver_id }, f(&mut d))
        })
        .expect(
            "ringleader: an io operation was created outside a ringleader runtime \
             (use ringleader::block_on or Runtime::spawn_on)",
        )
    }

    /// Run `f` on the driver if its core is the one running on this thread.
    ///
    /// # Panics
    /// If the driver is borrowed further up the stack (see [`Unavailable::Busy`]); paths
    /// that must not panic (drops) use [`DriverRef::access`].
    #[inline]
    pub(crate) fn with<R>(self, f: impl FnOnce(&mut Driver) -> R) -> Option<R> {
        // The hot path of every poll: written out rather than through `access`.
        let p = CURRENT.with(Cell::get);
        if p.is_null() {
            return None;
        }
        // SAFETY: as in `with_core`: a non-null CURRENT points to a core that an `EnterGuard`
        // further up this thread's stack keeps alive; it is only read on this thread.
        let c = unsafe { &*p };
        if c.driver_id != self.id {
            return None;
        }
        let Ok(mut d) = c.driver.try_borrow_mut() else {
            busy_panic()
        };
        Some(f(&mut d))
    }

    /// Run `f` on the driver if its core runs on this thread and the driver is not borrowed.
    /// Never panics: a drop path decides what to do with its resources from the error.
    #[inline]
    pub(crate) fn access<R>(self, f: impl FnOnce(&mut Driver) -> R) -> Result<R, Unavailable> {
        with_core(|c| {
            if c.driver_id != self.id {
                return Err(Unavailable::Elsewhere);
            }
            match c.driver.try_borrow_mut() {
                Ok(mut d) => Ok(f(&mut d)),
                Err(_) => Err(Unavailable::Busy),
            }
        })
        .unwrap_or(Err(Unavailable::Elsewhere))
    }
}

/// Hand `work` to the current core's event loop, which does it outside any driver borrow at
/// its next tick (or at shutdown). Used by drops that find the driver borrowed.
pub(crate) fn defer(work: crate::core::Deferred) {
    with_core(|c| c.defer(work)).expect("defer is only called after a Busy access");
}

#[cold]
#[track_caller]
fn busy_panic() -> ! {
    panic!(
        "ringleader: the ring driver is in use further up this thread's stack (an op polled or \
         created inside a waker's clone/drop or another driver callback); nothing was submitted"
    )
}
