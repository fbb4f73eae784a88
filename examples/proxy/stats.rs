//! What the proxy holds, and the `--stats` lines that report it.
//!
//! A [`Budget`] counts the bytes one connection direction holds in the proxy: ring buffers
//! leased to sends (lease mode), `Vec`s waiting for their sends (copy mode), bytes in its
//! pipes (splice mode). Each change is mirrored into process-wide counters, which a plain
//! thread prints with `--stats`:
//!
//! ```text
//! proxy-stats: conns=3 accepted=1000 held_bytes=131072 max_held_bytes=4194304 bound=4194304 throttled=17 mirrors_dropped=1 rings=2 idle_pipes=0
//! ```
//!
//! - `conns`: connections open now; `accepted`: since start;
//! - `held_bytes`: bytes held now, all connections;
//! - `max_held_bytes`: the most any one connection direction has held at once, since start;
//!   never above `bound` (`--max-buffered`), which is the point of the budget;
//! - `throttled`: times a reader stopped receiving because its direction held the bound
//!   (a starved buffer ring, a full copy window; splice mode throttles in the kernel, on its
//!   full pipes, and does not count here);
//! - `mirrors_dropped`: mirrors dropped from their connection since start: over their
//!   `--mirror-budget`, stalled for `--mirror-timeout`, or failed;
//! - `rings`: buffer rings mapped now, all cores (lease mode: connection directions that
//!   carry a stream, plus idle rings kept for reuse);
//! - `idle_pipes`: empty pipes kept for reuse, all cores (splice mode; two fds each).

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::task::{Poll, Waker};
use std::time::Duration;

pub(crate) static CONNS: AtomicUsize = AtomicUsize::new(0);
pub(crate) static ACCEPTED: AtomicU64 = AtomicU64::new(0);
static HELD: AtomicUsize = AtomicUsize::new(0);
static MAX_HELD: AtomicUsize = AtomicUsize::new(0);
static THROTTLED: AtomicU64 = AtomicU64::new(0);
static MIRRORS_DROPPED: AtomicU64 = AtomicU64::new(0);
pub(crate) static RINGS: AtomicUsize = AtomicUsize::new(0);
pub(crate) static IDLE_PIPES: AtomicUsize = AtomicUsize::new(0);

/// Count one mirror dropped from its connection.
pub(crate) fn mirror_dropped() {
    MIRRORS_DROPPED.fetch_add(1, Relaxed);
}

/// Count `n` more backpressure stops.
pub(crate) fn throttled(n: u64) {
    if n > 0 {
        THROTTLED.fetch_add(n, Relaxed);
    }
}

/// Counts one open connection while it lives.
pub(crate) struct ConnGuard(());

impl ConnGuard {
    pub(crate) fn new() -> ConnGuard {
        let open = CONNS.fetch_add(1, Relaxed) + 1;
        PEAK.fetch_max(open, Relaxed);
        ACCEPTED.fetch_add(1, Relaxed);
        ConnGuard(())
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let open = CONNS.fetch_sub(1, Relaxed) - 1;
        after_close(open);
    }
}

/// Most connections open at once since the last trim.
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// When the allocator was last trimmed, in ms since [`START`].
static LAST_TRIM_MS: AtomicU64 = AtomicU64::new(0);
static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
/// Trim only after a burst of at least this many connections.
const TRIM_MIN_PEAK: usize = 256;

/// After a burst has mostly ended (open connections below half the peak), give the freed
/// memory back to the kernel, at most once a second. Each connection direction waits for
/// data in a `--buf-size` heap buffer (64 KiB), so a burst of 10,000 connections briefly
/// allocates ~1.3 GB; glibc keeps what is freed in its arenas, and RSS stayed near the
/// burst's peak (found by `bench/src/bin/soak.rs`: 163 MB growing to 969 MB over 20 burst
/// cycles, with no leak). `malloc_trim` returns the free pages.
fn after_close(open: usize) {
    let peak = PEAK.load(Relaxed);
    if peak < TRIM_MIN_PEAK || open * 2 >= peak {
        return;
    }
    let start = START.get_or_init(std::time::Instant::now);
    let now = start.elapsed().as_millis() as u64;
    let last = LAST_TRIM_MS.load(Relaxed);
    if now.saturating_sub(last) < 1000
        || LAST_TRIM_MS
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_err()
    {
        return;
    }
    PEAK.store(open, Relaxed);
    // SAFETY: malloc_trim only walks and releases the allocator's free memory; glibc's
    // allocator is thread-safe and no pointer of ours is involved.
    unsafe { libc::malloc_trim(0) };
}

/// The bytes one connection direction holds, against its bound.
#[derive(Debug)]
pub(crate) struct Budget {
    held: Cell<usize>,
    limit: usize,
    /// The reader, while it waits for room.
    waiter: RefCell<Option<Waker>>,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Rc<Budget> {
        Rc::new(Budget {
            held: Cell::new(0),
            limit,
            waiter: RefCell::new(None),
        })
    }

    /// Hold `n` more bytes until the guard drops.
    pub(crate) fn hold(self: &Rc<Self>, n: usize) -> Held {
        self.add(n);
        Held {
            budget: Rc::clone(self),
            n,
        }
    }

    pub(crate) fn add(&self, n: usize) {
        let now = self.held.get() + n;
        self.held.set(now);
        HELD.fetch_add(n, Relaxed);
        MAX_HELD.fetch_max(now, Relaxed);
    }

    pub(crate) fn sub(&self, n: usize) {
        self.held.set(self.held.get() - n);
        HELD.fetch_sub(n, Relaxed);
        if let Some(w) = self.waiter.borrow_mut().take() {
            w.wake();
        }
    }

    /// Wait until `n` more bytes fit the bound; counts one throttle if it had to wait.
    pub(crate) async fn room(&self, n: usize) {
        if self.held.get() + n <= self.limit {
            return;
        }
        throttled(1);
        poll_fn(|cx| {
            if self.held.get() + n <= self.limit {
                return Poll::Ready(());
            }
            *self.waiter.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }
}

impl Budget {
    /// Whether the direction holds nothing.
    pub(crate) fn is_drained(&self) -> bool {
        self.held.get() == 0
    }

    /// Wake `waker` at the next release (the reader, polling its own condition).
    pub(crate) fn wake_on_change(&self, waker: &Waker) {
        *self.waiter.borrow_mut() = Some(waker.clone());
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        // A direction that ends with bytes still counted (a failed splice round) gives them
        // back with the connection.
        HELD.fetch_sub(self.held.get(), Relaxed);
    }
}

/// `n` bytes of a [`Budget`], given back on drop.
#[derive(Debug)]
pub(crate) struct Held {
    budget: Rc<Budget>,
    n: usize,
}

impl Held {
    /// The bytes it holds.
    pub(crate) fn bytes(&self) -> usize {
        self.n
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.sub(self.n);
    }
}

/// The current `proxy-stats:` line.
pub(crate) fn line(bound: usize) -> String {
    format!(
        "proxy-stats: conns={} accepted={} held_bytes={} max_held_bytes={} bound={} throttled={} \
         mirrors_dropped={} rings={} idle_pipes={}",
        CONNS.load(Relaxed),
        ACCEPTED.load(Relaxed),
        HELD.load(Relaxed),
        MAX_HELD.load(Relaxed),
        bound,
        THROTTLED.load(Relaxed),
        MIRRORS_DROPPED.load(Relaxed),
        RINGS.load(Relaxed),
        IDLE_PIPES.load(Relaxed),
    )
}

/// Print a stats line to stderr every `period`, from a thread of its own.
pub(crate) fn start_printer(period: Duration, bound: usize) {
    let spawned = std::thread::Builder::new()
        .name("proxy-stats".into())
        .spawn(move || {
            loop {
                std::thread::sleep(period);
                let _ = writeln!(std::io::stderr(), "{}", line(bound));
            }
        });
    if let Err(e) = spawned {
        eprintln!("proxy: no --stats thread: {e}");
    }
}
