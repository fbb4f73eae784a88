//! A connection's window: the requests and data bytes it has in flight, bounded by
//! [`MAX_REQUESTS`] and [`MAX_BYTES`] (one request is always allowed), and each request's
//! [`Permit`], which holds its share (and its charge on the core's budget) until its reply
//! has been sent.

use std::cell::Cell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use super::{MAX_BYTES, MAX_REQUESTS};
use crate::limits::{Activity, Charge};

/// Requests and data bytes in flight on one connection (see the module docs).
#[derive(Default)]
pub struct Window {
    /// Requests in flight (`in_flight`) and progress, for the watchdog too.
    pub(super) activity: Activity,
    bytes: Cell<u64>,
    waker: Cell<Option<Waker>>,
}

/// One request's share of its connection's [`Window`] and of its core's
/// [`Budget`](crate::limits::Budget), released on drop.
pub struct Permit {
    window: Rc<Window>,
    bytes: u64,
    /// The core's budget, for requests with data.
    pub(super) charge: Option<Charge>,
}

impl Window {
    /// Wait until a request of `bytes` fits, then take its share.
    pub(super) async fn acquire(self: &Rc<Self>, bytes: u64) -> Permit {
        poll_fn(|cx| {
            let (n, b) = (self.activity.in_flight.get(), self.bytes.get());
            if n == 0 || (n < MAX_REQUESTS && b + bytes <= MAX_BYTES) {
                self.activity.in_flight.set(n + 1);
                self.bytes.set(b + bytes);
                Poll::Ready(Permit {
                    window: Rc::clone(self),
                    bytes,
                    charge: None,
                })
            } else {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }

    /// Wait until nothing is in flight.
    pub(super) async fn idle(&self) {
        poll_fn(|cx| {
            if self.activity.in_flight.get() == 0 {
                Poll::Ready(())
            } else {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let w = &self.window;
        w.activity.in_flight.set(w.activity.in_flight.get() - 1);
        w.activity.bump();
        w.bytes.set(w.bytes.get() - self.bytes);
        if let Some(waker) = w.waker.take() {
            waker.wake();
        }
    }
}
