//! The accept loop every example server shares (included with `#[path]`): a connection cap,
//! back-off when the process runs out of fds, a graceful stop, and the timeouts a
//! connection needs.
//!
//! # Model
//!
//! A [`Gate`] is one server's admission state, shared by all its cores (`Clone`, `Send`,
//! `Sync`). Each core runs [`Gate::serve`] on its own listener: it accepts connections and
//! spawns the server's per-connection future on the core with a [`Conn`] guard. The guard
//! holds the connection's slot; dropping it (the connection's task ends) frees the slot and
//! wakes loops that wait for one.
//!
//! - **Cap** (`--max-connections`, process-wide). A loop keeps at most one accept in flight,
//!   and that accept already holds a slot, so open connections plus in-flight accepts never
//!   exceed the cap. At the cap no accept is in flight: new clients complete the TCP
//!   handshake in the kernel and wait in the listen backlog (1024 per listener; beyond it
//!   the kernel drops their SYNs and they retry), and are accepted as slots free up. Each
//!   core's in-flight accept holds a slot even while nobody connects to that core, so with a
//!   cap close to the core count a client may wait while a slot sits reserved on an idle
//!   core; with a cap far above the core count this does not matter.
//! - **Out of fds** (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`). The loop stops accepting
//!   (the failed accept is not re-armed, so the kernel leaves the client in the backlog)
//!   and waits 50 ms, doubling up to 1 s, or until a connection of this server closes,
//!   whichever is first; then it tries again. It logs at most one line a second, counting
//!   the refused attempts, and one line when accepts succeed again.
//! - **Stop** ([`Gate::stop`], from any thread, e.g. `main` after a stop signal). Every loop
//!   drops its in-flight accept and its listener (new clients get `ECONNREFUSED`; ones
//!   still in a listener's backlog get a reset) and tells its connections through
//!   [`Conn::stopping`]; [`Gate::drain`] then waits, up to a deadline, for them to end.
//!
//! Why single accepts and not the multishot `incoming()` stream: a multishot accept can only
//! be stopped by cancelling it, and connections the kernel accepted for it before the cancel
//! (CQEs not yet reaped) are closed by the runtime, so each stop at the cap would drop a
//! few clients that had been accepted. A single accept is never cancelled at the cap; it
//! costs one SQE per connection, which is small next to the connection's own ops.
//!
//! Timeouts: [`within`] bounds a phase (a handshake), and [`IdleTimer`] closes a connection
//! that makes no progress for a while without arming a timer per read (`common/duration.rs`
//! parses their flags).
//!
//! ```ignore
//! let gate = Gate::new("echo", 10_000);
//! // on every core:
//! gate.serve(listener, |stream, conn| echo(stream, conn)).await;
//! // in main, after the stop signal:
//! gate.stop();
//! let cut = gate.drain(Duration::from_secs(10));
//! ```

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures::task::AtomicWaker;
use ringleader::net::{TcpListener, TcpStream};
use ringleader::time::{Elapsed, Sleep, sleep, sleep_until, timeout};

/// First pause after an accept failed for want of fds or memory; doubled per failure.
pub const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest such pause.
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one log line per loop this often about refused accepts.
const LOG_EVERY: Duration = Duration::from_secs(1);
/// At most one log line per loop this often about reaching the cap.
const CAP_LOG_EVERY: Duration = Duration::from_secs(10);

/// One server's admission state, shared by its cores. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Gate {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Log prefix: the program's name.
    name: &'static str,
    max: usize,
    /// Slots taken: open connections plus in-flight accepts.
    slots: AtomicUsize,
    /// Open connections.
    conns: AtomicUsize,
    /// Connections closed since start: a loop waiting out an fd shortage retries when this
    /// moves.
    closed: AtomicU64,
    stopping: AtomicBool,
    /// Loops that wait for a slot or an fd (their `paused` flag is set): only then does a
    /// freed slot take the lock to wake them.
    paused: AtomicUsize,
    /// Running loops; the condvar signals a loop leaving or the last slot freed while
    /// stopping.
    loops: Mutex<Vec<Arc<LoopWaker>>>,
    drained: Condvar,
}

/// How a slot's owner wakes a loop on another (or the same) core.
#[derive(Debug, Default)]
struct LoopWaker {
    waker: AtomicWaker,
    paused: AtomicBool,
}

impl Gate {
    /// A gate for the server `name` (the log prefix) admitting at most `max_connections`
    /// connections at once over all its cores (`usize::MAX`: no cap).
    ///
    /// # Panics
    /// If `max_connections` is 0.
    pub fn new(name: &'static str, max_connections: usize) -> Gate {
        assert!(max_connections > 0, "a gate must admit a connection");
        Gate {
            shared: Arc::new(Shared {
                name,
                max: max_connections,
                slots: AtomicUsize::new(0),
                conns: AtomicUsize::new(0),
                closed: AtomicU64::new(0),
                stopping: AtomicBool::new(false),
                paused: AtomicUsize::new(0),
                loops: Mutex::new(Vec::new()),
                drained: Condvar::new(),
            }),
        }
    }

    /// Connections open now, over all cores.
    pub fn open(&self) -> usize {
        self.shared.conns.load(Ordering::SeqCst)
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::SeqCst)
    }

    /// Stop accepting on every core, and tell every connection through
    /// [`Conn::stopping`]. Returns at once; any thread may call it, more than once.
    pub fn stop(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        for l in self.shared.lock().iter() {
            l.waker.wake();
        }
    }

    /// Block (a plain thread, not a core) until every loop has left and every connection
    /// has ended, or `limit` has passed. Returns how many connections are still open: the
    /// caller then stops the runtime, which drops them. Call after [`stop`](Self::stop).
    pub fn drain(&self, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        let mut loops = self.shared.lock();
        loop {
            let open = self.open();
            if loops.is_empty() && open == 0 {
                return 0;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return open;
            }
            loops = match self.shared.drained.wait_timeout(loops, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Accept on `listener` (this core's) until [`stop`](Self::stop), spawning
    /// `on_conn(stream, conn)` on this core for each connection. The listener is closed when
    /// this returns. Errors are logged (rate-limited) and never end the loop.
    pub async fn serve<F, Fut>(&self, listener: TcpListener, mut on_conn: F)
    where
        F: FnMut(TcpStream, Conn) -> Fut,
        Fut: Future<Output = ()> + 'static,
    {
        let me = Arc::new(LoopWaker::default());
        self.shared.lock().push(Arc::clone(&me));
        // Leaves the list however this future ends (stopped, or dropped by a runtime
        // shutdown), so `drain` never waits for a loop that is gone.
        let _registered = Registered {
            shared: &self.shared,
            me: &me,
        };
        let local = Rc::new(Local::default());
        let mut state = LoopState {
            gate: self,
            me: &me,
            listener: &listener,
            accept: None,
            backoff: None,
            next_backoff: BACKOFF_MIN,
            log: Log::default(),
        };
        loop {
            match poll_fn(|cx| state.poll_event(cx)).await {
                Event::Stop => break,
                Event::Accepted(stream, slot) => {
                    state.next_backoff = BACKOFF_MIN;
                    state.log.recovered(self.shared.name);
                    let conn = Conn::new(slot, &local);
                    ringleader::spawn(on_conn(stream, conn)).detach();
                }
                Event::Failed(e) => state.failed(e),
            }
        }
        // Stop: no more accepts, close the listener, tell this loop's connections.
        state.accept = None;
        state.set_paused(false);
        drop(state);
        drop(listener);
        local.stop();
    }
}

/// A running loop's place in [`Shared::loops`], given up on drop.
struct Registered<'a> {
    shared: &'a Shared,
    me: &'a Arc<LoopWaker>,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut loops = self.shared.lock();
        loops.retain(|l| !Arc::ptr_eq(l, self.me));
        self.shared.drained.notify_all();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<Arc<LoopWaker>>> {
        // A panic elsewhere while holding the list leaves it valid: it is only pushed to,
        // filtered and iterated.
        self.loops.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take a slot if the cap allows.
    fn try_slot(self: &Arc<Self>) -> Option<Slot> {
        self.slots
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(Arc::clone(self)))
    }

    /// A slot was freed: wake the loops waiting for one.
    fn freed(&self) {
        if self.paused.load(Ordering::SeqCst) > 0 {
            for l in self.lock().iter() {
                if l.paused.load(Ordering::SeqCst) {
                    l.waker.wake();
                }
            }
        }
    }
}

/// One unit of the cap: held by an in-flight accept, then by its connection's [`Conn`].
#[derive(Debug)]
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.slots.fetch_sub(1, Ordering::SeqCst);
        self.0.freed();
    }
}

/// An accepted connection's admission: keeps its slot until dropped, and tells it when the
/// server stops. Hand it to the connection's future and keep it there to the end.
#[derive(Debug)]
pub struct Conn {
    local: Rc<Local>,
    key: usize,
    /// Dropped after `Drop::drop` counted the close, so a loop woken by the freed slot
    /// sees it.
    slot: Slot,
}

impl Conn {
    fn new(slot: Slot, local: &Rc<Local>) -> Conn {
        slot.0.conns.fetch_add(1, Ordering::SeqCst);
        let key = local.insert();
        Conn {
            local: Rc::clone(local),
            key,
            slot,
        }
    }

    /// Whether the server is stopping (see [`Gate::stop`]).
    pub fn is_stopping(&self) -> bool {
        self.local.stopped.get() || self.slot.0.stopping.load(Ordering::SeqCst)
    }

    /// Resolves once the server stops: finish what is in flight, then end the connection.
    pub fn stopping(&self) -> Stopping<'_> {
        Stopping { conn: self }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.local.remove(self.key);
        let shared = &self.slot.0;
        shared.closed.fetch_add(1, Ordering::SeqCst);
        if shared.conns.fetch_sub(1, Ordering::SeqCst) == 1
            && shared.stopping.load(Ordering::SeqCst)
        {
            let _loops = shared.lock();
            shared.drained.notify_all();
        }
        // `slot` is dropped next: frees the slot and wakes waiting loops.
    }
}

/// Future of [`Conn::stopping`].
#[derive(Debug)]
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Stopping<'a> {
    conn: &'a Conn,
}

impl Future for Stopping<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.conn.is_stopping() {
            return Poll::Ready(());
        }
        self.conn.local.set_waker(self.conn.key, cx.waker());
        Poll::Pending
    }
}

/// One loop's connections (on its core), to wake them when it stops: a small slab of
/// wakers, indexed by each `Conn`'s key.
#[derive(Debug, Default)]
struct Local {
    stopped: Cell<bool>,
    wakers: RefCell<Vec<Option<Waker>>>,
    free: RefCell<Vec<usize>>,
}

impl Local {
    fn insert(&self) -> usize {
        if let Some(key) = self.free.borrow_mut().pop() {
            return key;
        }
        let mut w = self.wakers.borrow_mut();
        w.push(None);
        w.len() - 1
    }

    fn remove(&self, key: usize) {
        // The old waker is dropped outside the borrow: a waker's drop may run user code.
        let old = self.wakers.borrow_mut()[key].take();
        self.free.borrow_mut().push(key);
        drop(old);
    }

    fn set_waker(&self, key: usize, waker: &Waker) {
        let old = {
            let mut w = self.wakers.borrow_mut();
            match &w[key] {
                Some(old) if old.will_wake(waker) => return,
                _ => w[key].replace(waker.clone()),
            }
        };
        drop(old);
    }

    fn stop(&self) {
        self.stopped.set(true);
        let wakers: Vec<Waker> = self
            .wakers
            .borrow_mut()
            .iter_mut()
            .flat_map(Option::take)
            .collect();
        for w in wakers {
            w.wake();
        }
    }
}

type AcceptFuture<'l> = Pin<Box<dyn Future<Output = io::Result<(TcpStream, SocketAddr)>> + 'l>>;

enum Event {
    Stop,
    Accepted(TcpStream, Slot),
    Failed(io::Error),
}

/// One loop's state between events.
struct LoopState<'g, 'l> {
    gate: &'g Gate,
    me: &'g Arc<LoopWaker>,
    listener: &'l TcpListener,
    /// The accept in flight and the slot it holds.
    accept: Option<(AcceptFuture<'l>, Slot)>,
    /// Waiting out an fd shortage: until this sleep ends or `closed` moves from the value.
    backoff: Option<(Sleep, u64)>,
    next_backoff: Duration,
    log: Log,
}

impl LoopState<'_, '_> {
    fn shared(&self) -> &Arc<Shared> {
        &self.gate.shared
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        self.me.waker.register(cx.waker());
        if self.gate.is_stopping() {
            return Poll::Ready(Event::Stop);
        }
        if let Some((sleep, closed_then)) = &mut self.backoff {
            let closed_then = *closed_then;
            let waiting = Pin::new(sleep).poll(cx).is_pending();
            if waiting && self.shared().closed.load(Ordering::SeqCst) == closed_then {
                self.set_paused(true);
                // Re-check after announcing the pause: a close in between woke nobody.
                if self.shared().closed.load(Ordering::SeqCst) == closed_then {
                    return Poll::Pending;
                }
            }
            self.backoff = None;
        }
        if self.accept.is_none() {
            match self.shared().try_slot() {
                Some(slot) => self.accept = Some((Box::pin(self.listener.accept()), slot)),
                None => {
                    self.set_paused(true);
                    match self.shared().try_slot() {
                        Some(slot) => {
                            self.accept = Some((Box::pin(self.listener.accept()), slot));
                        }
                        None => {
                            self.log.at_cap(self.shared().name, self.shared().max);
                            return Poll::Pending;
                        }
                    }
                }
            }
        }
        self.set_paused(false);
        let (fut, _) = self.accept.as_mut().expect("an accept is in flight");
        let res = std::task::ready!(fut.as_mut().poll(cx));
        let (_, slot) = self.accept.take().expect("an accept is in flight");
        Poll::Ready(match res {
            Ok((stream, _peer)) => Event::Accepted(stream, slot),
            // The slot is freed here (no connection holds it).
            Err(e) => Event::Failed(e),
        })
    }

    fn set_paused(&self, paused: bool) {
        if self.me.paused.swap(paused, Ordering::SeqCst) != paused {
            if paused {
                self.shared().paused.fetch_add(1, Ordering::SeqCst);
            } else {
                self.shared().paused.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// An accept failed: retry at once if it was the client's doing, else back off.
    fn failed(&mut self, e: io::Error) {
        let name = self.shared().name;
        if is_transient(&e) {
            self.log.transient(name, &e);
            return;
        }
        let closed = self.shared().closed.load(Ordering::SeqCst);
        self.backoff = Some((sleep(self.next_backoff), closed));
        self.log.refused(name, &e, self.next_backoff);
        self.next_backoff = (self.next_backoff * 2).min(BACKOFF_MAX);
    }
}

impl Drop for LoopState<'_, '_> {
    fn drop(&mut self) {
        self.set_paused(false);
    }
}

/// Accept errors that are the client's (a reset before the accept, a network error the
/// kernel hands over, per accept(2)): the next client is fine, so retry at once.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNABORTED
                | libc::EPROTO
                | libc::EPERM
                | libc::ENETDOWN
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH
                | libc::EINTR
                | libc::EAGAIN
        )
    )
}

/// A loop's rate-limited log lines: about refused accepts (and their end) at most one a
/// second, each counting what it summarises.
#[derive(Debug, Default)]
struct Log {
    /// When the last line about refused accepts (or their end) went out.
    last: Option<Instant>,
    /// Refused since that line.
    refused: u64,
    /// A line said accepts are paused and no line has said they resumed.
    pausing: bool,
    last_transient: Option<Instant>,
    transient: u64,
    last_cap: Option<Instant>,
}

fn due(last: Option<Instant>, every: Duration) -> bool {
    last.is_none_or(|t| t.elapsed() >= every)
}

impl Log {
    fn refused(&mut self, name: &str, e: &io::Error, pause: Duration) {
        self.refused += 1;
        if due(self.last, LOG_EVERY) {
            eprintln!(
                "{name}: core {}: accept: {e}; pausing accepts for {pause:?} or until a \
                 connection closes ({} refused since the last report)",
                ringleader::current_core(),
                self.refused
            );
            self.refused = 0;
            self.pausing = true;
            self.last = Some(Instant::now());
        }
    }

    fn recovered(&mut self, name: &str) {
        if self.pausing && due(self.last, LOG_EVERY) {
            eprintln!(
                "{name}: core {}: accepting again ({} refused since the last report)",
                ringleader::current_core(),
                self.refused
            );
            self.refused = 0;
            self.pausing = false;
            self.last = Some(Instant::now());
        }
    }

    fn transient(&mut self, name: &str, e: &io::Error) {
        self.transient += 1;
        if due(self.last_transient, LOG_EVERY) {
            eprintln!(
                "{name}: core {}: accept: {e} ({} such since the last report)",
                ringleader::current_core(),
                self.transient
            );
            self.transient = 0;
            self.last_transient = Some(Instant::now());
        }
    }

    fn at_cap(&mut self, name: &str, max: usize) {
        if due(self.last_cap, CAP_LOG_EVERY) {
            eprintln!(
                "{name}: core {}: at --max-connections {max}: new clients \
                 wait in the listen backlog",
                ringleader::current_core()
            );
            self.last_cap = Some(Instant::now());
        }
    }
}

/// Run `fut` for at most `limit` (`None`: no limit). On expiry `fut` is dropped, which
/// cancels its ops. For a phase with a deadline of its own, such as a handshake.
pub async fn within<F: Future>(limit: Option<Duration>, fut: F) -> Result<F::Output, Elapsed> {
    match limit {
        Some(limit) => timeout(limit, fut).await,
        None => Ok(fut.await),
    }
}

/// Closes a connection that makes no progress: [`touch`](Self::touch) on every read or
/// write (a clock read, no syscall, no SQE), and [`expired`](Self::expired) resolves once
/// nothing touched it for the limit. One timeout op is armed per idle period, not per
/// touch: when it fires early because of a touch, it is re-armed for the rest.
#[derive(Debug)]
pub struct IdleTimer {
    limit: Option<Duration>,
    last: Rc<Cell<Instant>>,
    sleep: Option<(Sleep, Instant)>,
}

/// A handle that touches an [`IdleTimer`] from elsewhere (an I/O wrapper).
#[derive(Clone, Debug)]
pub struct Activity(Rc<Cell<Instant>>);

impl Activity {
    /// Record progress now.
    pub fn touch(&self) {
        self.0.set(Instant::now());
    }
}

impl IdleTimer {
    /// A timer that expires after `limit` without a touch (`None`: never), counting from now.
    pub fn new(limit: Option<Duration>) -> IdleTimer {
        IdleTimer {
            limit,
            last: Rc::new(Cell::new(Instant::now())),
            sleep: None,
        }
    }

    /// Record progress now.
    pub fn touch(&self) {
        self.last.set(Instant::now());
    }

    /// A handle for touching this timer from elsewhere.
    pub fn activity(&self) -> Activity {
        Activity(Rc::clone(&self.last))
    }

    /// The limit (`None`: never expires).
    pub fn limit(&self) -> Option<Duration> {
        self.limit
    }

    /// Change the limit (e.g. shorter while the server drains); takes effect at once.
    pub fn set_limit(&mut self, limit: Option<Duration>) {
        self.limit = limit;
        self.sleep = None;
    }

    /// Resolves once the timer has gone `limit` without a touch.
    pub fn expired(&mut self) -> impl Future<Output = ()> + '_ {
        poll_fn(|cx| self.poll_expired(cx))
    }

    /// Poll form of [`expired`](Self::expired).
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(limit) = self.limit else {
            return Poll::Pending;
        };
        loop {
            let deadline = self.last.get() + limit;
            match &mut self.sleep {
                // Armed for a deadline at or before the current one: wait for it.
                Some((sleep, until)) if *until <= deadline => {
                    std::task::ready!(Pin::new(sleep).poll(cx));
                    self.sleep = None;
                    if Instant::now() >= self.last.get() + limit {
                        return Poll::Ready(());
                    }
                    // Touched meanwhile: re-arm for the rest.
                }
                _ => {
                    if Instant::now() >= deadline {
                        return Poll::Ready(());
                    }
                    self.sleep = Some((sleep_until(deadline), deadline));
                }
            }
        }
    }
}
