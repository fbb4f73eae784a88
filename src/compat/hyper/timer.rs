//! [`HyperTimer`] and [`HyperSleep`]: hyper's `Timer`/`Sleep`, which must be `Send + Sync`,
//! served by one timer task per core.
//!
//! # Why not wrap `ringleader::time::Sleep`
//!
//! ringleader's `Sleep` is an op: it lives in its core's slot table, is `!Send`, and may only
//! be polled and dropped on that core. hyper requires `Sleep: Send + Sync` (it keeps timers
//! in connection state that it may move between threads). Marking a wrapper `Send` with
//! `unsafe impl` would be unsound as soon as a `Box<dyn Sleep>` were dropped on another
//! thread, so instead [`HyperSleep`] holds no op at all:
//!
//! - a `HyperSleep` is a deadline plus, once polled, an `Arc<Entry>` (an atomic state and an
//!   `AtomicWaker`) registered in the **queue** of the core that first polled it;
//! - each core's queue is a `Mutex<BinaryHeap>` of entries, owned by a thread-local `Arc`,
//!   and served by one **timer task** on that core, started with the first registration and
//!   ending when the heap is empty. The task sleeps with one `ringleader::time::sleep_until`
//!   op (one `IORING_OP_TIMEOUT`) until the earliest deadline, fires what is due (state
//!   `REGISTERED -> FIRED`, then wakes), and re-arms;
//! - everything a `HyperSleep` shares is `Send + Sync` by construction (atomics, `Arc`,
//!   `Mutex`), so it may be polled, moved and dropped on any thread, with no `unsafe`.
//!
//! # Invariants
//!
//! - An entry's state leaves `REGISTERED` only under the lock of the queue whose heap holds
//!   it: to `FIRED` (the timer task), `CANCELLED` (the sleep was dropped or reset first) or
//!   `UNREGISTERED` (the timer task was dropped because its runtime shut down: the entry is
//!   woken and re-registers on whichever core polls it next). So `cancelled` counts exactly
//!   the `CANCELLED` entries still in the heap; when they are more than half of it the heap
//!   is compacted, so dropped sleeps (hyper drops one per request) cost amortised O(1)
//!   memory and time.
//! - The state is set before the waker is taken, and a poll registers its waker before it
//!   reads the state, so a firing is never missed.
//! - A sleep that is created and dropped without being polled (hyper's header timer when the
//!   request is already buffered) touches no queue and takes no lock.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures::task::AtomicWaker;

/// Entry states (see the module doc).
const REGISTERED: u8 = 0;
const FIRED: u8 = 1;
const CANCELLED: u8 = 2;
const UNREGISTERED: u8 = 3;

/// Below this many cancelled entries a heap is never compacted.
const COMPACT_MIN: usize = 64;

/// hyper's [`Timer`](::hyper::rt::Timer) on ringleader: sleeps are served by the polling
/// core's timer task (see the module doc).
///
/// ```
/// use std::time::Duration;
/// use hyper::rt::Timer;
/// use ringleader::compat::hyper::HyperTimer;
///
/// ringleader::block_on(async {
///     HyperTimer.sleep(Duration::from_millis(1)).await;
/// });
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct HyperTimer;

impl ::hyper::rt::Timer for HyperTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn ::hyper::rt::Sleep>> {
        Box::pin(HyperSleep::new(duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn ::hyper::rt::Sleep>> {
        Box::pin(HyperSleep::until(deadline))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn ::hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<HyperSleep>() {
            Some(s) => s.get_mut().reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// A `Send + Sync` sleep: completes at its deadline, served by the timer task of the core
/// that first polls it.
///
/// # Panics
/// Polling it before its deadline on a thread that runs no ringleader core panics (it needs
/// a core to start the timer task on), as `ringleader::time::sleep` does.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct HyperSleep {
    deadline: Instant,
    reg: Option<Registration>,
}

/// Where a polled sleep is registered.
struct Registration {
    entry: Arc<Entry>,
    queue: Arc<Queue>,
}

impl HyperSleep {
    /// A sleep of `duration` from now (saturating far in the future for huge durations).
    pub fn new(duration: Duration) -> Self {
        let now = Instant::now();
        // About 30 years: far enough to mean "never", small enough for every clock.
        let far = Duration::from_secs(30 * 365 * 24 * 3600);
        Self::until(
            now.checked_add(duration)
                .unwrap_or_else(|| now + duration.min(far)),
        )
    }

    /// A sleep until `deadline`.
    pub fn until(deadline: Instant) -> Self {
        HyperSleep {
            deadline,
            reg: None,
        }
    }

    /// When it completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether it has completed (or its deadline has passed).
    pub fn is_elapsed(&self) -> bool {
        self.reg
            .as_ref()
            .is_some_and(|r| r.entry.state.load(Ordering::Acquire) == FIRED)
            || Instant::now() >= self.deadline
    }

    /// Move the deadline; the sleep is pending again if the new deadline is in the future.
    pub fn reset(&mut self, deadline: Instant) {
        self.deregister();
        self.deadline = deadline;
    }

    /// Take the sleep out of its queue, if it is in one.
    fn deregister(&mut self) {
        let Some(reg) = self.reg.take() else { return };
        // Fired and unregistered entries are in no heap: no lock needed.
        if reg.entry.state.load(Ordering::Acquire) != REGISTERED {
            return;
        }
        let mut heap = reg.queue.lock();
        let cancelled = reg.entry.state.compare_exchange(
            REGISTERED,
            CANCELLED,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        if cancelled.is_ok() {
            heap.cancelled += 1;
            heap.maybe_compact();
        }
    }
}

impl Future for HyperSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let Some(reg) = &this.reg {
            if reg.entry.state.load(Ordering::Acquire) == FIRED {
                return Poll::Ready(());
            }
        }
        if Instant::now() >= this.deadline {
            this.deregister();
            return Poll::Ready(());
        }
        if let Some(reg) = &this.reg {
            // Register first, then read the state: a firing in between still wakes us.
            reg.entry.waker.register(cx.waker());
            match reg.entry.state.load(Ordering::Acquire) {
                FIRED => return Poll::Ready(()),
                REGISTERED => return Poll::Pending,
                // Its core's timer task is gone (runtime shut down): register here.
                _ => this.reg = None,
            }
        }
        let queue = QUEUE.with(Arc::clone);
        let entry = queue.register(this.deadline, cx.waker());
        this.reg = Some(Registration { entry, queue });
        Poll::Pending
    }
}

impl ::hyper::rt::Sleep for HyperSleep {}

impl Drop for HyperSleep {
    fn drop(&mut self) {
        self.deregister();
    }
}

impl fmt::Debug for HyperSleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HyperSleep")
            .field("deadline", &self.deadline)
            .field("registered", &self.reg.is_some())
            .finish()
    }
}

/// A registered sleep, shared by the sleep and its queue's heap.
struct Entry {
    state: AtomicU8,
    waker: AtomicWaker,
}

/// A heap slot: ordered by deadline, then registration order (a min-heap via reversed `Ord`).
struct Slot {
    deadline: Instant,
    seq: u64,
    entry: Arc<Entry>,
}

impl PartialEq for Slot {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}

impl Eq for Slot {}

impl PartialOrd for Slot {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Slot {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.deadline, other.seq).cmp(&(self.deadline, self.seq))
    }
}

/// One core's timers.
struct Queue {
    heap: Mutex<Heap>,
    /// The timer task's waker: woken when a deadline earlier than the armed one arrives.
    task: AtomicWaker,
}

#[derive(Default)]
struct Heap {
    slots: BinaryHeap<Slot>,
    seq: u64,
    /// `CANCELLED` entries still in `slots`.
    cancelled: usize,
    /// A timer task exists for this queue.
    running: bool,
    /// The deadline the timer task's op waits for.
    armed: Option<Instant>,
}

thread_local! {
    /// This thread's (core's) timer queue.
    static QUEUE: Arc<Queue> = Arc::new(Queue {
        heap: Mutex::new(Heap::default()),
        task: AtomicWaker::new(),
    });
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Heap> {
        // Nothing panics while the lock is held; a poisoned heap is still consistent.
        self.heap.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add an entry for `deadline`; start this core's timer task if it has none.
    ///
    /// # Panics
    /// Outside a ringleader runtime (from `spawn`), before anything is changed.
    fn register(self: &Arc<Self>, deadline: Instant, waker: &Waker) -> Arc<Entry> {
        let start = !self.lock().running;
        if start {
            crate::spawn(TimerTask {
                queue: Arc::clone(self),
                sleep: None,
                due: Vec::new(),
                done: false,
            })
            .detach();
        }
        let entry = Arc::new(Entry {
            state: AtomicU8::new(REGISTERED),
            waker: AtomicWaker::new(),
        });
        entry.waker.register(waker);
        let mut heap = self.lock();
        heap.running = true;
        heap.seq += 1;
        let seq = heap.seq;
        heap.slots.push(Slot {
            deadline,
            seq,
            entry: Arc::clone(&entry),
        });
        let earlier = heap.armed.is_none_or(|a| deadline < a);
        drop(heap);
        if earlier && !start {
            self.task.wake();
        }
        entry
    }
}

impl Heap {
    /// Fire every entry due at `now`, collecting their wakers into `due`.
    fn fire(&mut self, now: Instant, due: &mut Vec<Waker>) {
        while self.slots.peek().is_some_and(|s| s.deadline <= now) {
            let Some(slot) = self.slots.pop() else { break };
            let fired = slot.entry.state.compare_exchange(
                REGISTERED,
                FIRED,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            match fired {
                Ok(_) => due.extend(slot.entry.waker.take()),
                Err(_) => self.cancelled = self.cancelled.saturating_sub(1),
            }
        }
    }

    fn maybe_compact(&mut self) {
        if self.cancelled >= COMPACT_MIN && self.cancelled * 2 > self.slots.len() {
            self.slots
                .retain(|s| s.entry.state.load(Ordering::Acquire) != CANCELLED);
            self.cancelled = 0;
        }
    }
}

/// A core's timer task: sleeps until the earliest deadline, fires, re-arms; ends when its
/// heap is empty.
struct TimerTask {
    queue: Arc<Queue>,
    /// The armed op and its deadline.
    sleep: Option<(Instant, crate::time::Sleep)>,
    /// Wakers to wake once the lock is released (kept to reuse the allocation).
    due: Vec<Waker>,
    /// Returned `Ready` (the heap was empty): the queue needs a new task.
    done: bool,
}

impl Future for TimerTask {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            this.queue.task.register(cx.waker());
            let mut heap = this.queue.lock();
            heap.fire(Instant::now(), &mut this.due);
            let next = heap.slots.peek().map(|s| s.deadline);
            heap.armed = next;
            if next.is_none() {
                heap.running = false;
                this.done = true;
            }
            drop(heap);
            for w in this.due.drain(..) {
                w.wake();
            }
            let Some(next) = next else {
                return Poll::Ready(());
            };
            if this.sleep.as_ref().is_none_or(|(d, _)| *d != next) {
                this.sleep = Some((next, crate::time::sleep_until(next)));
            }
            let Some((_, op)) = &mut this.sleep else {
                unreachable!("armed just above")
            };
            match Pin::new(op).poll(cx) {
                Poll::Ready(()) => this.sleep = None,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for TimerTask {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Dropped with entries left: the runtime is shutting down. Hand every entry back to
        // its sleep (woken, it registers again on the core that polls it next).
        let mut heap = self.queue.lock();
        heap.running = false;
        heap.armed = None;
        heap.cancelled = 0;
        let slots = std::mem::take(&mut heap.slots);
        for slot in slots {
            let back = slot.entry.state.compare_exchange(
                REGISTERED,
                UNREGISTERED,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            if back.is_ok() {
                self.due.extend(slot.entry.waker.take());
            }
        }
        drop(heap);
        for w in self.due.drain(..) {
            w.wake();
        }
    }
}

impl fmt::Debug for TimerTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerTask")
            .field("armed", &self.sleep.as_ref().map(|(d, _)| *d))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This thread's queue: (entries in the heap, cancelled among them, task running).
    fn queue_state() -> (usize, usize, bool) {
        QUEUE.with(|q| {
            let h = q.lock();
            (h.slots.len(), h.cancelled, h.running)
        })
    }

    fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
        let mut cx = Context::from_waker(Waker::noop());
        Pin::new(f).poll(&mut cx)
    }

    #[test]
    fn unpolled_sleep_registers_nothing() {
        crate::block_on(async {
            drop(HyperSleep::new(Duration::from_secs(30)));
            assert_eq!(queue_state(), (0, 0, false));
        });
    }

    #[test]
    fn sleeps_fire_in_deadline_order_and_the_task_ends() {
        crate::block_on(async {
            let order = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
            let tasks: Vec<_> = [30u64, 10, 20]
                .into_iter()
                .map(|ms| {
                    let order = order.clone();
                    crate::spawn(async move {
                        HyperSleep::new(Duration::from_millis(ms)).await;
                        order.borrow_mut().push(ms);
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            assert_eq!(*order.borrow(), [10, 20, 30]);
            crate::yield_now().await;
            assert_eq!(queue_state(), (0, 0, false), "heap empty, task ended");
        });
    }

    #[test]
    fn dropped_sleeps_are_compacted_away() {
        crate::block_on(async {
            let keep = {
                let mut s = HyperSleep::new(Duration::from_secs(60));
                assert!(poll_once(&mut s).is_pending());
                s
            };
            for _ in 0..1000 {
                let mut s = HyperSleep::new(Duration::from_secs(30));
                assert!(poll_once(&mut s).is_pending());
                drop(s);
            }
            let (len, cancelled, running) = queue_state();
            assert!(running);
            assert!(len < 2 * COMPACT_MIN + 2, "heap not compacted: {len}");
            assert!(cancelled < COMPACT_MIN, "{cancelled}");
            drop(keep);
        });
    }

    #[test]
    fn reset_moves_the_deadline() {
        crate::block_on(async {
            let mut s = HyperSleep::new(Duration::from_secs(60));
            assert!(poll_once(&mut s).is_pending());
            s.reset(Instant::now() + Duration::from_millis(2));
            assert!(!s.is_elapsed());
            (&mut s).await;
            assert!(s.is_elapsed());
        });
    }

    #[test]
    fn an_entry_outlives_its_runtime_and_re_registers() {
        let mut s = HyperSleep::new(Duration::from_millis(20));
        crate::block_on(async {
            assert!(poll_once(&mut s).is_pending());
        });
        // That runtime dropped its timer task, which handed the entry back.
        assert_eq!(queue_state(), (0, 0, false));
        let state = s
            .reg
            .as_ref()
            .map(|r| r.entry.state.load(Ordering::Acquire));
        assert_eq!(state, Some(UNREGISTERED));
        crate::block_on(s);
    }
}
