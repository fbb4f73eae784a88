//! A pool never runs a waker's `clone` or `drop` (user code) while it holds its own state:
//! a waker whose drop returns a lease of the same pool must not panic there, and the slot
//! must come back (it used to be lost for good after a "RefCell already borrowed" panic).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use ringleader::buf::{FixedPool, Lease};

thread_local! {
    static VICTIM: RefCell<Option<Lease>> = const { RefCell::new(None) };
}

/// A waker whose last drop returns the lease in `VICTIM` to its pool.
struct DropsLease;
impl Wake for DropsLease {
    fn wake(self: Arc<Self>) {}
}
impl Drop for DropsLease {
    fn drop(&mut self) {
        VICTIM.with(|v| drop(v.borrow_mut().take()));
    }
}

struct Noop;
impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

#[test]
fn a_waker_dropped_by_the_pool_may_return_a_lease_to_it() {
    ringleader::block_on(async {
        let pool = FixedPool::new(64, 1).unwrap();
        let held = pool.lease(64).await.unwrap();
        VICTIM.with(|v| *v.borrow_mut() = Some(held));
        let mut waiting = pool.lease(64);
        {
            let w = Waker::from(Arc::new(DropsLease));
            assert!(
                Pin::new(&mut waiting)
                    .poll(&mut Context::from_waker(&w))
                    .is_pending()
            );
        } // the pool now holds the only clone of that waker
        // Polled with another waker: the pool replaces (drops) the stored one, whose drop
        // returns the held lease.
        let w2 = Waker::from(Arc::new(Noop));
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Pin::new(&mut waiting)
                .poll(&mut Context::from_waker(&w2))
                .is_ready()
        }));
        assert!(polled.is_ok(), "the pool panicked running a waker's drop");
        drop(waiting);
        let again = ringleader::time::timeout(Duration::from_secs(5), pool.lease(64)).await;
        assert!(
            matches!(again, Ok(Ok(_))),
            "the returned slot was lost: {again:?}"
        );
    });
}
