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

/// Keeps this thread's current core set; restores "none" on drop.
pub(crate) struct EnterGuard {
    _core: Rc<Core>,
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
        }
    }
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(ptr::null()));
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
        with_core(|c| DriverRef {
            id: c.driver.borrow().id(),
        })
        .expect(
            "ringleader: an io operation was created outside a ringleader runtime \
             (use ringleader::block_on or Runtime::spawn_on)",
        )
    }

    /// Run `f` on the current core's driver, and name that driver.
    ///
    /// # Panics
    /// Outside a ringleader runtime.
    #[inline]
    pub(crate) fn current_with<R>(f: impl FnOnce(&mut Driver) -> R) -> (DriverRef, R) {
        with_core(|c| {
            let mut d = c.driver.borrow_mut();
            (DriverRef { id: d.id() }, f(&mut d))
        })
        .expect(
            "ringleader: an io operation was created outside a ringleader runtime \
             (use ringleader::block_on or Runtime::spawn_on)",
        )
    }

    /// Run `f` on the driver if its core is the one running on this thread.
    #[inline]
    pub(crate) fn with<R>(self, f: impl FnOnce(&mut Driver) -> R) -> Option<R> {
        with_core(|c| {
            let mut d = c.driver.borrow_mut();
            (d.id() == self.id).then(|| f(&mut d))
        })
        .flatten()
    }
}
