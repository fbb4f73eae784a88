//! Runtimes: [`LocalRuntime`] (the calling thread is the one core) and [`Runtime`] (one pinned
//! thread per core, each with its own ring and executor), both made by a [`Builder`].

use std::fmt;
use std::future::Future;
use std::io;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use crate::context;
use crate::core::{Core, CoreTable, Tuning};
use crate::handle::Handle;
use crate::setup::{RingConfig, SetupFlags, SetupInfo};
use crate::shared::Shared;
use crate::stats::Stats;
use crate::task::{JoinHandle, spawn_on_shared};

/// Configures and builds a runtime.
///
/// ```
/// use ringleader::Builder;
/// let rt = Builder::new().entries(64).build_local().unwrap();
/// assert_eq!(rt.block_on(async { 1 + 1 }), 2);
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    ring: RingConfig,
    cores: usize,
    pin: bool,
    tick_budget: usize,
    spin: Duration,
    spin_fixed: bool,
    name: String,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// Defaults: 256 SQ entries, CQ 4x, `SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN |
    /// TASKRUN_FLAG | SUBMIT_ALL`, ring fd registered, io-wq unbounded workers capped at 64
    /// per ring ([`Builder::iowq_max_workers`]), one core per available CPU, threads pinned,
    /// 256 task polls per tick.
    pub fn new() -> Self {
        Builder {
            ring: RingConfig::default(),
            cores: thread::available_parallelism().map_or(1, |n| n.get()),
            pin: true,
            tick_budget: 256,
            spin: Duration::ZERO,
            spin_fixed: false,
            name: "ringleader-core".to_owned(),
        }
    }
    /// Number of cores (threads, rings) of a [`Runtime`].
    pub fn cores(mut self, n: usize) -> Self {
        self.cores = n.max(1);
        self
    }
    /// SQ entries per ring (rounded up to a power of two by the kernel).
    pub fn entries(mut self, n: u32) -> Self {
        self.ring.sq_entries = n;
        self
    }
    /// CQ entries per ring (default 4x the SQ; the kernel needs at least the SQ size).
    pub fn cq_entries(mut self, n: u32) -> Self {
        self.ring.cq_entries = Some(n);
        self
    }
    /// The setup flags to ask for; refused ones are dropped and reported in [`SetupInfo`].
    pub fn setup_flags(mut self, flags: SetupFlags) -> Self {
        self.ring.flags = flags;
        self
    }
    /// Use a kernel SQ polling thread that sleeps after `idle_ms` (drops `DEFER_TASKRUN`).
    pub fn sqpoll(mut self, idle_ms: u32) -> Self {
        self.ring.sqpoll_idle_ms = Some(idle_ms);
        self
    }
    /// Give each core's ring 128-byte SQEs (`IORING_SETUP_SQE128`, Linux 5.19; default
    /// off), as `URING_CMD` drivers with big commands need (FUSE over io_uring, NVMe
    /// passthrough). Every op works on either size: 64-byte ops are widened as they are
    /// pushed. The SQ takes twice the memory. [`SetupInfo::sqe128`] says what was built.
    ///
    /// ```
    /// let rt = ringleader::Builder::new().sqe128(true).build_local().unwrap();
    /// assert!(rt.setup_info().sqe128);
    /// rt.block_on(async { ringleader::ops::nop().await.unwrap() });
    /// ```
    pub fn sqe128(mut self, yes: bool) -> Self {
        self.ring.sqe128 = yes;
        self
    }
    /// Register the ring fd (`IORING_REGISTER_RING_FDS`) to save an fd lookup per enter.
    pub fn register_ring_fd(mut self, yes: bool) -> Self {
        self.ring.register_ring_fd = yes;
        self
    }
    /// Cap the kernel's io-wq worker threads serving each core's ring
    /// (`IORING_REGISTER_IOWQ_MAX_WORKERS`, Linux 5.15), registered right after the ring is
    /// created. `bounded` caps workers for bounded work (regular files and block devices),
    /// `unbounded` those for work that may block without end (splice, tee, and other ops on
    /// sockets, pipes and character devices that cannot be polled); 0 keeps the kernel's cap
    /// for that class.
    ///
    /// Default `(0, 64)`: bounded work keeps the kernel's `min(SQ entries, 4 x CPUs)`;
    /// unbounded work, which the kernel lets grow to `RLIMIT_NPROC` threads (one per blocked
    /// op: a thousand connections each blocked in a splice make a thousand threads), gets 64
    /// per ring. Work beyond the cap waits in the ring's io-wq queue for a worker: ops that
    /// can block forever (a splice from an idle socket) should wait for readiness first, or
    /// the cap must be above how many of them are ever blocked at once. What was applied is
    /// in [`SetupInfo::iowq_max_workers`]; a kernel that refuses keeps its own caps and says
    /// so in [`SetupInfo::fallbacks`].
    ///
    /// ```
    /// let rt = ringleader::Builder::new().iowq_max_workers(4, 16).build_local().unwrap();
    /// let caps = rt.setup_info().iowq_max_workers;
    /// assert!(caps.is_none() || caps.unwrap()[1] == 16);
    /// ```
    pub fn iowq_max_workers(mut self, bounded: u32, unbounded: u32) -> Self {
        self.ring.iowq_max_workers = [bounded, unbounded];
        self
    }
    /// Pin core `i`'s thread to CPU `i % available CPUs` (default on).
    pub fn pin_threads(mut self, yes: bool) -> Self {
        self.pin = yes;
        self
    }
    /// Before a core parks (blocks in `io_uring_enter` for a completion), keep submitting
    /// and reaping for up to `spin` (default 0: park at once). Request/response traffic at
    /// low queue depth then finds its next completion without a sleep and a wake-up.
    ///
    /// The spin is adaptive: it only goes on while it pays. A spin that finds nothing halves
    /// the next one (a park whose wait turns out shorter than `spin` grows it back), and a
    /// spin that loses its CPU to another thread (an io-wq worker doing the write the core
    /// waits for, another process pinned to the same CPU) turns spinning off for the next
    /// 128 idle periods. So a saturated or mostly idle core spends about what it would
    /// without spinning, and a client at queue depth 1 keeps the latency gain.
    /// [`Stats::spin_parks`](crate::Stats::spin_parks) counts the spins that found nothing,
    /// [`Stats::spin_holdoffs`](crate::Stats::spin_holdoffs) those that lost their CPU;
    /// [`Builder::spin_fixed`] spins the whole bound every time.
    ///
    /// ```
    /// use std::time::Duration;
    /// let rt = ringleader::Builder::new()
    ///     .spin_before_park(Duration::from_micros(50))
    ///     .build_local()
    ///     .unwrap();
    /// rt.block_on(async { ringleader::ops::nop().await.unwrap() });
    /// ```
    pub fn spin_before_park(mut self, spin: Duration) -> Self {
        self.spin = spin;
        self
    }
    /// Spin the whole [`Builder::spin_before_park`] bound every time the core runs out of
    /// work, without adapting (default off). For measurements, and for a core that owns its
    /// CPU and must answer as fast as it can whatever the cost.
    ///
    /// ```
    /// use std::time::Duration;
    /// let rt = ringleader::Builder::new()
    ///     .spin_before_park(Duration::from_micros(20))
    ///     .spin_fixed(true)
    ///     .build_local()
    ///     .unwrap();
    /// rt.block_on(async { ringleader::ops::nop().await.unwrap() });
    /// ```
    pub fn spin_fixed(mut self, yes: bool) -> Self {
        self.spin_fixed = yes;
        self
    }
    /// At most `n` task polls per tick (default 256; 0 counts as 1) before the core submits
    /// and reaps the ring again. However busy the tasks are, completions are reaped at least
    /// once every `n` polls: lower it for latency when many tasks stay ready, raise it for
    /// fewer `io_uring_enter` calls (`tests/executor_budget_reaps_under_busy_tasks.rs`).
    ///
    /// ```
    /// let rt = ringleader::Builder::new().tick_budget(64).build_local().unwrap();
    /// rt.block_on(async { ringleader::yield_now().await });
    /// ```
    pub fn tick_budget(mut self, n: usize) -> Self {
        self.tick_budget = n;
        self
    }
    /// Name prefix of the core threads.
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// A runtime whose one core is the calling thread (inside [`LocalRuntime::block_on`]).
    pub fn build_local(&self) -> io::Result<LocalRuntime> {
        let shared = Arc::new(Shared::new(0));
        let core = Core::new(&self.ring, Arc::clone(&shared), self.tuning())?;
        *core.cores.borrow_mut() = Some(Arc::new(vec![shared]));
        Ok(LocalRuntime { core })
    }

    fn tuning(&self) -> Tuning {
        Tuning {
            tick_budget: self.tick_budget,
            spin: self.spin,
            spin_fixed: self.spin_fixed,
        }
    }

    /// A runtime of [`Builder::cores`] threads, each with its own ring.
    pub fn build(&self) -> io::Result<Runtime> {
        let shareds: Vec<Arc<Shared>> = (0..self.cores).map(|i| Arc::new(Shared::new(i))).collect();
        let table: CoreTable = Arc::new(shareds);
        let cpus = allowed_cpus();
        let mut threads = Vec::with_capacity(self.cores);
        let (ready_tx, ready_rx) = mpsc::channel::<io::Result<()>>();
        for i in 0..self.cores {
            let table = Arc::clone(&table);
            let ring = self.ring.clone();
            let tuning = self.tuning();
            let cpu = if self.pin && !cpus.is_empty() {
                Some(cpus[i % cpus.len()])
            } else {
                None
            };
            let ready = ready_tx.clone();
            let t = thread::Builder::new()
                .name(format!("{}-{i}", self.name))
                .spawn(move || core_main(i, table, ring, tuning, cpu, ready))?;
            threads.push(t);
        }
        drop(ready_tx);
        let mut first_err = None;
        for _ in 0..self.cores {
            if let Ok(Err(e)) = ready_rx.recv() {
                first_err.get_or_insert(e);
            }
        }
        let rt = Runtime { table, threads };
        match first_err {
            Some(e) => {
                drop(rt);
                Err(e)
            }
            None => Ok(rt),
        }
    }
}

fn core_main(
    i: usize,
    table: CoreTable,
    ring: RingConfig,
    tuning: Tuning,
    cpu: Option<usize>,
    ready: mpsc::Sender<io::Result<()>>,
) {
    if let Some(cpu) = cpu {
        pin_to(cpu);
    }
    let shared = Arc::clone(&table[i]);
    let core = match Core::new(&ring, Arc::clone(&shared), tuning) {
        Ok(c) => c,
        Err(e) => {
            shared.close();
            let _ = ready.send(Err(e));
            return;
        }
    };
    *core.cores.borrow_mut() = Some(table);
    let _ = ready.send(Ok(()));
    drop(ready);
    let stop = Arc::clone(&shared);
    core.block_on(std::future::poll_fn(move |cx| {
        stop.shutdown_waker.register(cx.waker());
        if stop.shutdown.load(Ordering::Acquire) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    }));
    core.shutdown();
}

/// CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `cpu_set_t` is plain data; zeroed is an empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return Vec::new();
    }
    // SAFETY: CPU_ISSET reads the set initialised above; the index is below CPU_SETSIZE.
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

fn pin_to(cpu: usize) {
    // SAFETY: zeroed is an empty set; CPU_SET writes an index below CPU_SETSIZE (it came from
    // `allowed_cpus`); sched_setaffinity reads the set. Failure only means "not pinned".
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// A single-core runtime on the calling thread.
pub struct LocalRuntime {
    core: Rc<Core>,
}

impl LocalRuntime {
    /// Run `fut` to completion, running spawned tasks and the ring meanwhile. Tasks spawned
    /// and still pending when it returns stay on this runtime until the next `block_on` or
    /// until it is dropped (which cancels them).
    ///
    /// # Panics
    /// When called inside another ringleader runtime, or if the ring fails irrecoverably.
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.core.block_on(fut)
    }

    /// What the ring was set up with.
    pub fn setup_info(&self) -> SetupInfo {
        self.core.driver.borrow().info().clone()
    }

    /// This runtime's ring counters.
    pub fn stats(&self) -> Stats {
        self.core.stats()
    }
}

impl Drop for LocalRuntime {
    fn drop(&mut self) {
        if context::with_core(|_| ()).is_none() {
            self.core.shutdown();
        } else {
            // Dropped inside another runtime's `block_on`: shut down as this core all the
            // same, so its tasks' ops are cancelled and released by their own ring (not
            // leaked for want of it).
            self.core.shutdown_nested();
        }
    }
}

impl fmt::Debug for LocalRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalRuntime").finish_non_exhaustive()
    }
}

/// A thread-per-core runtime: one pinned thread, ring and executor per core.
///
/// ```
/// use ringleader::Runtime;
/// let rt = Runtime::builder().cores(2).build().unwrap();
/// let h = rt.spawn_on(1, || async { ringleader::current_core() });
/// assert_eq!(rt.block_on(|| async move { h.await.unwrap() }), 1);
/// ```
pub struct Runtime {
    table: CoreTable,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Runtime {
    /// A [`Builder`].
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// Number of cores.
    pub fn cores(&self) -> usize {
        self.table.len()
    }

    /// A [`Handle`] to this runtime's cores, for spawning onto them from other threads
    /// (`Send + Sync + Clone`; it does not keep the cores running).
    pub fn handle(&self) -> Handle {
        Handle::new(Arc::clone(&self.table))
    }

    /// Spawn `f()` on core `core`. `f` must be `Send`; the future it returns need not be.
    ///
    /// # Panics
    /// If `core` is out of range.
    pub fn spawn_on<F, Fut>(&self, core: usize, f: F) -> JoinHandle<Fut::Output>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        let target = self.table.get(core).unwrap_or_else(|| {
            panic!(
                "Runtime::spawn_on: core {core} out of range ({} cores)",
                self.table.len()
            )
        });
        spawn_on_shared(target, f)
    }

    /// Run `f()` on core 0 and block the calling thread until it finishes.
    ///
    /// # Panics
    /// If the task panics (the panic is resumed here) or core 0 is shutting down.
    pub fn block_on<F, Fut>(&self, f: F) -> Fut::Output
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        let h = self.spawn_on(0, f);
        match futures::executor::block_on(h) {
            Ok(v) => v,
            Err(crate::JoinError::Panic(p)) => std::panic::resume_unwind(p),
            Err(e) => panic!("Runtime::block_on: {e}"),
        }
    }

    /// Stop every core gracefully (see docs/design.md §2) and join their threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        for s in self.table.iter() {
            s.shutdown.store(true, Ordering::Release);
            s.shutdown_waker.wake();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("cores", &self.table.len())
            .finish()
    }
}
