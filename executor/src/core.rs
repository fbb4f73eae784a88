//! One core: a ring driver, a local run queue, and the event loop that ties them together.
//!
//! One tick: drain the injection queue; run at most `tick_budget` ready tasks; wake what the
//! last reap completed; then submit everything queued in one `io_uring_enter`, blocking for a
//! completion only when no task is ready. The budget is the cooperative part: however busy the
//! tasks are, completions are reaped at least once every `tick_budget` polls.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use crate::task::Runnable;
use slab::Slab;

use crate::context::{self, EnterGuard};
use crate::driver::Driver;
use crate::setup::RingConfig;
use crate::shared::Shared;

/// The cores of one runtime, for `spawn_on`.
pub(crate) type CoreTable = Arc<Vec<Arc<Shared>>>;

pub(crate) struct Core {
    pub(crate) driver: Rc<RefCell<Driver>>,
    /// The driver's identity, readable while the driver is borrowed.
    pub(crate) driver_id: u64,
    /// Work handed over by drops that found the driver borrowed (see [`Deferred`]); done by
    /// the event loop outside any driver borrow.
    deferred: RefCell<Vec<Deferred>>,
    /// Counters kept outside the driver (they count what happens while it is borrowed).
    drops_deferred: Cell<u64>,
    settles_skipped: Cell<u64>,
    /// Shutdown has begun: drops do not wait for the kernel one by one (the drain that
    /// follows waits for everything, bounded).
    pub(crate) closing: Cell<bool>,
    pub(crate) queue: RefCell<VecDeque<Runnable>>,
    /// Wakers of every task polled at least once and not yet finished (shutdown wakes them
    /// so that their futures are dropped here, on their own thread).
    pub(crate) active: Rc<RefCell<Slab<Waker>>>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) cores: RefCell<Option<CoreTable>>,
    tick_budget: usize,
    /// The spin before blocking for a completion (see [`Core::spin_for_work`]).
    spin: Spin,
}

/// Spin-before-park: its bound, and the adaptive mode's state.
struct Spin {
    /// The longest spin (0: block at once).
    max: Duration,
    /// Spin `max` every time, not adaptively.
    fixed: bool,
    /// What the next spin may take: `max` while spinning pays, halved by each spin that
    /// found nothing.
    budget: Cell<Duration>,
    /// Idle periods still to sit out (no spin) since a spin lost its CPU.
    holdoff: Cell<u32>,
}

impl Spin {
    fn new(max: Duration, fixed: bool) -> Spin {
        Spin {
            max,
            fixed,
            budget: Cell::new(max),
            holdoff: Cell::new(0),
        }
    }

    /// The budget of the spin about to start, or `None`: park at once (held off, or a
    /// budget too small to be worth it).
    fn next_budget(&self) -> Option<Duration> {
        if self.fixed {
            return Some(self.max);
        }
        if self.holdoff.get() > 0 {
            self.holdoff.set(self.holdoff.get() - 1);
            return None;
        }
        let budget = self.budget.get();
        (budget >= SPIN_MIN).then_some(budget)
    }

    /// A spin of `budget` ended after `wall`, having run `cpu` of it, and `found` work or
    /// not. Returns whether it lost its CPU (and now sits out).
    fn spun(&self, budget: Duration, found: bool, wall: Duration, cpu: Duration) -> bool {
        if wall > cpu + wall / 4 + SPIN_MIN {
            // Another thread had this CPU for a good part of the spin.
            self.holdoff.set(SPIN_HOLDOFF);
            return true;
        }
        self.budget.set(if found { self.max } else { budget / 2 });
        false
    }

    /// After a park that began `idle` ago: if a spin would have caught the wake-up, grow the
    /// next spin's budget to cover such a wait and at least double it, up to the bound.
    fn parked(&self, idle: Duration) {
        if !self.fixed && self.holdoff.get() == 0 && idle <= self.max {
            let grown = (self.budget.get() * 2).max(idle + idle / 2);
            self.budget.set(grown.min(self.max));
        }
    }
}

/// Idle periods without a spin after one that lost its CPU to another thread.
const SPIN_HOLDOFF: u32 = 128;
/// Spin budgets below this are not worth a spin.
const SPIN_MIN: Duration = Duration::from_micros(2);

/// Work a drop could not do because the driver was borrowed further up the stack (user code
/// running inside a driver call: a waker's clone or drop, a `with_submitter` closure). The
/// resources travel with it, so nothing the kernel may use is freed meanwhile.
pub(crate) enum Deferred {
    /// An op future dropped: orphan its slot (park and cancel, or release) at the next tick.
    Orphan {
        user_data: u64,
        data: Box<dyn crate::op::Orphan>,
    },
    /// A lane handle dropped: release its reference.
    LaneRelease(u32),
}

/// How a core schedules: polls per tick, and the spin before parking.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tuning {
    pub(crate) tick_budget: usize,
    pub(crate) spin: Duration,
    pub(crate) spin_fixed: bool,
}

impl Core {
    pub(crate) fn new(
        cfg: &RingConfig,
        shared: Arc<Shared>,
        tuning: Tuning,
    ) -> std::io::Result<Rc<Core>> {
        let driver = Driver::new(cfg)?;
        shared.set_ring_fd(&*driver.ring())?;
        Ok(Rc::new(Core {
            driver_id: driver.id(),
            driver: Rc::new(RefCell::new(driver)),
            deferred: RefCell::new(Vec::new()),
            drops_deferred: Cell::new(0),
            settles_skipped: Cell::new(0),
            closing: Cell::new(false),
            queue: RefCell::new(VecDeque::with_capacity(256)),
            active: Rc::new(RefCell::new(Slab::new())),
            shared,
            cores: RefCell::new(None),
            tick_budget: tuning.tick_budget.max(1),
            spin: Spin::new(tuning.spin, tuning.spin_fixed),
        }))
    }

    /// Hand `work` to the event loop (see [`Deferred`]).
    #[cold] // Only when user code drops an op inside a driver call.
    pub(crate) fn defer(&self, work: Deferred) {
        self.drops_deferred.set(self.drops_deferred.get() + 1);
        self.deferred.borrow_mut().push(work);
    }

    /// A settle-on-drop skipped because the driver was borrowed.
    #[cold]
    pub(crate) fn count_settle_skipped(&self) {
        self.settles_skipped.set(self.settles_skipped.get() + 1);
    }

    /// The ring counters, with those kept outside the driver.
    pub(crate) fn stats(&self) -> crate::Stats {
        let mut s = self.driver.borrow().stats();
        s.drops_deferred = self.drops_deferred.get();
        s.settle_timeouts += self.settles_skipped.get();
        s
    }

    /// Do the work drops handed over (see [`Deferred`]), outside any driver borrow.
    #[inline]
    fn run_deferred(&self) {
        if self.deferred.borrow().is_empty() {
            return; // Every tick: keep the common case to one load.
        }
        self.run_deferred_slow();
    }

    #[cold]
    #[inline(never)]
    fn run_deferred_slow(&self) {
        loop {
            let work = std::mem::take(&mut *self.deferred.borrow_mut());
            if work.is_empty() {
                return;
            }
            for w in work {
                match w {
                    Deferred::Orphan { user_data, data } => {
                        let outcome = self.driver.borrow_mut().orphan(user_data, data);
                        // Outside the borrow: these drops may be user code.
                        drop(outcome);
                    }
                    Deferred::LaneRelease(key) => {
                        self.driver.borrow_mut().ops.lane_release(key);
                    }
                }
            }
        }
    }

    /// Queue a runnable of a task owned by this core (owner thread).
    #[inline]
    pub(crate) fn schedule_local(&self, runnable: Runnable) {
        self.queue.borrow_mut().push_back(runnable);
    }

    /// Run `fut` to completion on this thread, driving the ring and the tasks meanwhile.
    pub(crate) fn block_on<F: Future>(self: &Rc<Self>, fut: F) -> F::Output {
        let _enter = EnterGuard::new(self);
        let main = Arc::new(MainWaker {
            woken: AtomicBool::new(true),
            shared: Arc::clone(&self.shared),
        });
        let waker = Waker::from(Arc::clone(&main));
        let mut cx = Context::from_waker(&waker);
        let mut fut = pin!(fut);
        loop {
            // Every tick: a plain load first, the read-modify-write only when woken. A wake
            // racing the load is seen before the tick can block (`main_ready` below).
            if main.woken.load(Ordering::Acquire) && main.woken.swap(false, Ordering::AcqRel) {
                if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                    return v;
                }
            }
            self.tick(|| main.woken.load(Ordering::Acquire));
        }
    }

    fn tick(&self, main_ready: impl Fn() -> bool) {
        self.shared.drain_into(&mut self.queue.borrow_mut());
        for _ in 0..self.tick_budget {
            let next = self.queue.borrow_mut().pop_front();
            match next {
                Some(runnable) => {
                    runnable.run();
                }
                None => break,
            }
        }
        self.run_deferred();
        self.wake_completed();
        let idle = || self.queue.borrow().is_empty() && !main_ready() && !self.shared.has_pending();
        let mut wait = idle();
        let mut idle_since = None;
        if wait && !self.spin.max.is_zero() {
            idle_since = self.spin_for_work(&idle);
            wait = idle_since.is_some();
        }
        let res = self.driver.borrow_mut().submit_and_wait(wait);
        if let Err(e) = res {
            panic!("ringleader: io_uring_enter failed, the ring is unusable: {e}");
        }
        if let Some(since) = idle_since {
            self.after_park(since.elapsed());
        }
        self.wake_completed();
    }

    /// Before parking: submit and reap without blocking until a completion, a task or a
    /// cross-core wake-up shows up, or the spin time is over. Returns `None` if work showed
    /// up, else when the core went idle (it should now block). A request/response peer (a
    /// client at queue depth 1) answers within a few tens of microseconds: catching that
    /// without sleeping saves the wake-up of a parked thread on every request, at the price
    /// of busy CPU while the core waits.
    ///
    /// # Adaptive mode (the default)
    ///
    /// A spin only pays when its CPU would otherwise sit idle and the wait is short. So:
    ///
    /// - a spin that found nothing halves the next one's budget; a park whose wait turned
    ///   out shorter than the bound (a spin would have caught it) grows it back: a core
    ///   whose waits are long (an idle server, a slow peer) soon stops spinning;
    /// - a spin that lost its CPU (its thread's CPU time fell well short of the time it
    ///   spun: another runnable thread needed this CPU, such as the io-wq worker doing the
    ///   very write the core waits for) turns spinning off for the next [`SPIN_HOLDOFF`] idle
    ///   periods: spinning there only delays the work and burns CPU per request.
    ///
    /// Each spin reads the thread's CPU clock twice (two syscalls, well under a
    /// microsecond), and yields the CPU between its polls of the ring (`sched_yield`, which
    /// returns at once when no other thread of this CPU is runnable): a worker that shares
    /// the CPU runs at once instead of after the spin, and the spin sees the time it lost.
    /// A held-off core does neither.
    fn spin_for_work(&self, idle: &impl Fn() -> bool) -> Option<Instant> {
        let start = Instant::now();
        let spin = &self.spin;
        let Some(budget) = spin.next_budget() else {
            return Some(start);
        };
        let cpu_start = (!spin.fixed).then(thread_cpu_time);
        let deadline = start + budget;
        let found = loop {
            let res = self.driver.borrow_mut().submit_and_wait(false);
            if let Err(e) = res {
                panic!("ringleader: io_uring_enter failed, the ring is unusable: {e}");
            }
            {
                let d = self.driver.borrow();
                if !d.ops.woken.is_empty()
                    || !d.ops.graveyard.is_empty()
                    || !self.deferred.borrow().is_empty()
                {
                    break true;
                }
            }
            if !idle() {
                break true;
            }
            if Instant::now() >= deadline {
                self.driver.borrow_mut().stats.spin_parks += 1;
                break false;
            }
            if cpu_start.is_some() {
                // Let a runnable thread of this CPU (an io-wq worker doing the write the core
                // waits for) run now rather than at the end of the spin: the spin then shows
                // the lost CPU time (below) and sits out. Returns at once if none is.
                // SAFETY: sched_yield takes no arguments and touches no memory of ours.
                unsafe { libc::sched_yield() };
            } else {
                std::hint::spin_loop();
            }
        };
        if let Some(cpu_start) = cpu_start {
            let cpu = thread_cpu_time().saturating_sub(cpu_start);
            if spin.spun(budget, found, start.elapsed(), cpu) {
                self.driver.borrow_mut().stats.spin_holdoffs += 1;
            }
        }
        (!found).then_some(start)
    }

    /// After a park that began `idle` ago (see [`Spin::parked`]).
    fn after_park(&self, idle: Duration) {
        self.spin.parked(idle);
    }

    /// Wake the tasks whose ops completed and drop orphaned resources, outside the borrow.
    fn wake_completed(&self) {
        let (woken, graveyard, retired) = {
            let mut d = self.driver.borrow_mut();
            if d.ops.woken.is_empty() && d.ops.graveyard.is_empty() && d.ops.retired.is_empty() {
                return;
            }
            (
                std::mem::take(&mut d.ops.woken),
                std::mem::take(&mut d.ops.graveyard),
                std::mem::take(&mut d.ops.retired),
            )
        };
        let mut woken = woken;
        for w in woken.drain(..) {
            w.wake();
        }
        drop(graveyard);
        drop(retired);
        // Hand the emptied vector back so the next reap does not allocate.
        let mut d = self.driver.borrow_mut();
        if d.ops.woken.is_empty() {
            d.ops.woken = woken;
        }
    }

    /// Graceful shutdown, in docs/design.md §2's order: stop accepting work; drop every task's future
    /// on this thread (their ops park their resources and are cancelled); reap until nothing
    /// is in flight; then free slots, buffers and the ring (when the last `Rc` goes).
    pub(crate) fn shutdown(self: &Rc<Self>) {
        self.shutdown_inner(EnterGuard::new(self));
    }

    /// [`Core::shutdown`] for a core dropped inside another runtime's `block_on` (a
    /// `LocalRuntime` dropped there): this core is current while it shuts down.
    pub(crate) fn shutdown_nested(self: &Rc<Self>) {
        self.shutdown_inner(EnterGuard::nested(self));
    }

    fn shutdown_inner(self: &Rc<Self>, _enter: EnterGuard) {
        self.closing.set(true);
        self.shared.close();
        let mut rounds = 0;
        loop {
            let wakers: Vec<Waker> = self.active.borrow_mut().drain().collect();
            let mut dead = std::mem::take(&mut *self.queue.borrow_mut());
            dead.extend(self.shared.take_all());
            if dead.is_empty() && wakers.is_empty() {
                break;
            }
            rounds += 1;
            if rounds > SHUTDOWN_ROUNDS {
                // Dropping a task keeps spawning new ones (a future whose drop spawns): the
                // rest is leaked, futures and all, so shutdown ends. A leaked op is never
                // freed; the drain below cancels and reaps it.
                std::mem::forget(wakers);
                std::mem::forget(dead);
                break;
            }
            for w in wakers {
                w.wake();
            }
            dead.extend(std::mem::take(&mut *self.queue.borrow_mut()));
            // Dropping a runnable cancels its task and drops its future here.
            drop(dead);
            self.run_deferred();
            self.wake_completed();
        }
        self.run_deferred();
        // Ops the kernel does not finish within the limit are leaked, never freed.
        let _leaked = self.driver.borrow_mut().drain(Duration::from_secs(10));
        self.wake_completed();
        self.shared.clear_ring_fd();
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        // Work still deferred holds resources of ops that were never parked in their slots:
        // the kernel may still use them, so they are leaked, never freed. (Shutdown does the
        // deferred work before its drain; nothing defers after it, as no driver borrow is
        // held while user code runs then.)
        std::mem::forget(std::mem::take(self.deferred.get_mut()));
    }
}

/// Rounds of dropping tasks at shutdown before the rest is leaked: a task dropped there may
/// spawn another (a cleanup task), which is dropped in the next round; a future whose drop
/// always spawns again would otherwise keep shutdown going for ever.
const SHUTDOWN_ROUNDS: usize = 1000;

/// Wakes the future passed to `block_on`.
struct MainWaker {
    woken: AtomicBool,
    shared: Arc<Shared>,
}

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.woken.swap(true, Ordering::AcqRel) {
            let on_owner =
                context::with_core(|c| Arc::ptr_eq(&c.shared, &self.shared)).unwrap_or(false);
            if !on_owner {
                self.shared.notify();
            }
        }
    }
}

/// The calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the call writes nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const US: Duration = Duration::from_micros(1);

    /// Spin, finding work (or not) with the thread on its CPU the whole time.
    fn spin_alone(s: &Spin, found: bool) -> Option<Duration> {
        let b = s.next_budget()?;
        let wall = if found { b / 3 } else { b };
        assert!(!s.spun(b, found, wall, wall));
        Some(b)
    }

    #[test]
    fn fruitless_spins_halve_down_to_no_spin() {
        let s = Spin::new(MS, false);
        let mut budgets = Vec::new();
        while let Some(b) = spin_alone(&s, false) {
            budgets.push(b);
            s.parked(5 * MS); // longer than the bound: no growth
        }
        assert_eq!(budgets.first(), Some(&MS));
        assert!(budgets.windows(2).all(|w| w[1] == w[0] / 2), "{budgets:?}");
        assert!(budgets.len() <= 10, "{budgets:?}");
        assert_eq!(s.next_budget(), None, "long waits: no spin");
    }

    #[test]
    fn short_parks_grow_the_budget_back_to_cover_the_wait() {
        let s = Spin::new(5 * MS, false);
        while spin_alone(&s, false).is_some() {
            s.parked(20 * MS);
        }
        assert_eq!(s.next_budget(), None);
        // A 100 µs wait, parked: the next spin covers it.
        s.parked(100 * US);
        let b = s.next_budget().expect("spinning again");
        assert!(b >= 150 * US, "budget {b:?} for 100 µs waits");
        // And catching work restores the bound.
        assert!(!s.spun(b, true, 100 * US, 100 * US));
        assert_eq!(s.next_budget(), Some(5 * MS));
    }

    #[test]
    fn a_spin_that_lost_its_cpu_sits_out_then_spins_again() {
        let s = Spin::new(50 * US, false);
        let b = s.next_budget().unwrap();
        assert!(
            s.spun(b, true, 50 * US, 10 * US),
            "ran 10 of 50 µs: lost the CPU"
        );
        for _ in 0..SPIN_HOLDOFF {
            assert_eq!(s.next_budget(), None);
            s.parked(10 * US); // a short wait does not end the hold-off early
        }
        assert!(s.next_budget().is_some(), "the hold-off ends");
    }

    #[test]
    fn a_spin_that_kept_its_cpu_is_not_held_off() {
        let s = Spin::new(50 * US, false);
        let b = s.next_budget().unwrap();
        assert!(!s.spun(b, true, 40 * US, 39 * US));
        assert_eq!(s.next_budget(), Some(50 * US));
    }

    #[test]
    fn the_fixed_spin_never_adapts() {
        let s = Spin::new(50 * US, true);
        for _ in 0..20 {
            assert_eq!(s.next_budget(), Some(50 * US));
            s.parked(MS);
        }
    }
}
