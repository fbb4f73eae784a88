//! Mirrors that fall behind: each mirror of a connection has a budget and a stall timeout,
//! and a mirror past either is dropped from its connection, so it never slows the client.
//!
//! - **Budget** (`--mirror-budget`): how far a mirror may fall behind the upstream — bytes
//!   the upstream has taken and the mirror has not (counted in whole receive buffers in lease
//!   and copy modes, in bytes in splice mode). That is exactly the memory the mirror alone
//!   keeps the proxy holding. A mirror past it is dropped at once and what it held is
//!   released. The budget is below the direction's bound (`--max-buffered`), so the upstream
//!   always has room: the client goes on at the upstream's speed whatever the mirror does.
//!   A mirror that keeps up with the upstream is never dropped, however slow both are (then
//!   the bound throttles the client, as it should). `off`: no budget; a slow mirror then
//!   slows the client, until the stall timeout.
//! - **Stall timeout** (`--mirror-timeout`): a mirror with bytes waiting for it that takes
//!   none of them for this long is dropped. It catches a mirror that stops with less than
//!   its budget outstanding.
//! - **Dropping** ([`drop_mirror`]): one stderr line saying which mirror and why, one count
//!   in `--stats` (`mirrors_dropped`), and the mirror's TCP connection reset (`RST`): the
//!   mirror sees `ECONNRESET`, never a clean end of stream, so it can tell its copy is
//!   incomplete. The connection goes on with its client, upstream and other mirrors.
//!
//! The upstream's writer advances the direction's [`Lead`]; each mirror's writer advances its
//! [`Lag`] and watches it ([`Lag::over`], [`Lag::stalled`]). All on the connection's task.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::task::{Poll, Waker};
use std::time::Duration;

use crate::conn::Peer;
use crate::stats;

/// How far the upstream (the destination the client waits for) has got, in one direction.
#[derive(Debug, Default)]
pub(crate) struct Lead {
    taken: Cell<u64>,
    /// Mirrors' watchers, woken whenever the lead moves.
    watchers: RefCell<Vec<Waker>>,
}

impl Lead {
    /// Bytes the upstream has taken so far.
    pub(crate) fn taken(&self) -> u64 {
        self.taken.get()
    }

    /// Wake `waker` when the lead next moves (once).
    pub(crate) fn wake_on_advance(&self, waker: &Waker) {
        let mut watchers = self.watchers.borrow_mut();
        if !watchers.iter().any(|w| w.will_wake(waker)) {
            watchers.push(waker.clone());
        }
    }

    /// The upstream took `n` more bytes.
    pub(crate) fn advance(&self, n: usize) {
        self.taken.set(self.taken.get() + n as u64);
        let watchers = std::mem::take(&mut *self.watchers.borrow_mut());
        for w in watchers {
            w.wake();
        }
    }
}

/// One mirror of one connection direction: how far behind the [`Lead`] it is.
#[derive(Debug)]
pub(crate) struct Lag<'l> {
    lead: &'l Lead,
    /// Bytes handed to the mirror (queued, teed) so far.
    given: Cell<u64>,
    /// Bytes the mirror took so far.
    taken: Cell<u64>,
    /// `None`: `--mirror-budget off`.
    budget: Option<u64>,
    /// Set when the mirror failed: it is to be dropped, and why.
    verdict: RefCell<Option<Why>>,
    /// The mirror's writer, waiting in [`Lag::over`].
    waker: RefCell<Option<Waker>>,
    /// Bumped whenever the mirror takes bytes: what [`Lag::stalled`] watches.
    progress: Cell<u64>,
}

impl<'l> Lag<'l> {
    pub(crate) fn new(lead: &'l Lead, budget: Option<usize>) -> Lag<'l> {
        Lag {
            lead,
            given: Cell::new(0),
            taken: Cell::new(0),
            budget: budget.map(|b| b as u64),
            verdict: RefCell::new(None),
            waker: RefCell::new(None),
            progress: Cell::new(0),
        }
    }

    /// `n` more bytes are on their way to the mirror.
    pub(crate) fn give(&self, n: usize) {
        self.given.set(self.given.get() + n as u64);
    }

    /// The mirror took `n` bytes.
    pub(crate) fn took(&self, n: usize) {
        self.taken.set(self.taken.get() + n as u64);
        self.progressed();
    }

    /// The mirror took some bytes (a send that moved part of a chunk): not stalled.
    pub(crate) fn progressed(&self) {
        self.progress.set(self.progress.get().wrapping_add(1));
    }

    /// Bytes the upstream has taken and the mirror not.
    pub(crate) fn behind(&self) -> u64 {
        self.lead.taken.get().saturating_sub(self.taken.get())
    }

    /// Bytes handed to the mirror and not taken yet.
    pub(crate) fn waiting(&self) -> u64 {
        self.given.get().saturating_sub(self.taken.get())
    }

    /// Mark the mirror to be dropped (the first reason wins) and wake its writer.
    pub(crate) fn condemn(&self, why: Why) {
        {
            let mut v = self.verdict.borrow_mut();
            if v.is_some() {
                return;
            }
            *v = Some(why);
        }
        let waker = self.waker.borrow_mut().take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Whether the mirror is to be dropped (or was).
    pub(crate) fn is_condemned(&self) -> bool {
        self.verdict.borrow().is_some()
    }

    /// Resolves once the mirror is more than its budget behind the upstream, or condemned
    /// ([`Lag::condemn`]), with why. Leaves it condemned.
    pub(crate) async fn over(&self) -> Why {
        poll_fn(|cx| {
            let mut verdict = self.verdict.borrow_mut();
            if let Some(why) = verdict.take() {
                *verdict = Some(Why::Gone);
                return Poll::Ready(why);
            }
            if let Some(budget) = self.budget
                && self.behind() > budget
            {
                *verdict = Some(Why::Gone);
                return Poll::Ready(Why::OverBudget {
                    behind: self.behind(),
                    budget,
                });
            }
            drop(verdict);
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            self.lead.wake_on_advance(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// Resolves once the mirror has had bytes waiting and taken none of them for `limit`
    /// (checked every quarter of it: one timer per mirror, not one per send).
    pub(crate) async fn stalled(&self, limit: Duration) -> Why {
        let step = limit / 4;
        let mut seen = self.progress.get();
        let mut still = Duration::ZERO;
        loop {
            ringleader::time::sleep(step).await;
            let now = self.progress.get();
            if now != seen || self.waiting() == 0 {
                seen = now;
                still = Duration::ZERO;
                continue;
            }
            still += step;
            if still >= limit {
                return Why::Stalled(limit);
            }
        }
    }
}

/// Why a mirror was dropped from its connection.
#[derive(Debug)]
pub(crate) enum Why {
    /// It was `behind` bytes behind the upstream, over its budget.
    OverBudget { behind: u64, budget: u64 },
    /// It took no byte for the stall timeout while bytes waited for it.
    Stalled(Duration),
    /// A send, tee or splice to it failed.
    Failed(io::Error),
    /// Already dropped (what [`Lag::over`] leaves behind).
    Gone,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::OverBudget { behind, budget } => write!(
                f,
                "it fell {behind} bytes behind the upstream, over its --mirror-budget of \
                 {budget}"
            ),
            Why::Stalled(t) => write!(
                f,
                "it took no byte for {t:?} while bytes waited for it (--mirror-timeout)"
            ),
            Why::Failed(e) => write!(f, "{e}"),
            Why::Gone => f.write_str("already dropped"),
        }
    }
}

/// Drop `mirror` from its connection: one line on stderr, one count, and a reset of its TCP
/// connection. The caller has already stopped its writer and released what it held.
pub(crate) fn drop_mirror(mirror: &Peer, why: Why) {
    stats::mirror_dropped();
    eprintln!(
        "proxy: mirror {}: dropped from its connection (its TCP connection is reset): {why}; \
         the client goes on without it",
        mirror.addr
    );
    mirror.reset();
}
