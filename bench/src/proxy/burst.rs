//! Bursts of short connections through a proxy: the workload of `src/bin/proxy_burst.rs`.
//!
//! A **burst** of `N` opens `N` client connections to the proxy at once; each sends `size`
//! bytes, reads the same bytes back (the upstream is an echo server), checks them and closes.
//! The burst's time is from the first connect to the last connection done: what the slowest
//! client of the burst waited. Each connection's own time (connect to done) is kept too, so
//! the report can say whether every client waited or a few.
//!
//! - The client is a tokio current-thread runtime on the calling thread (pinned by the
//!   caller), a task per connection; the upstream is [`echo`], a tokio current-thread echo
//!   server in a process of its own.
//! - A burst that is not done after its limit is abandoned: the connections still open count
//!   as failed (and are closed when the client runtime drops).
//! - [`raise_nofile`] lifts `RLIMIT_NOFILE` for the bench and every process it starts (they
//!   inherit it): a burst of 10,000 needs 10,000 fds in the client and 20,000 or more in the
//!   proxy.

use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Raise `RLIMIT_NOFILE` (soft and, as far as allowed, hard) to at least `want`; returns the
/// soft limit now in force.
pub fn raise_nofile(want: u64) -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into `lim`, which lives across the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur >= want {
        return Ok(lim.rlim_cur);
    }
    let raised = libc::rlimit {
        rlim_cur: want,
        rlim_max: lim.rlim_max.max(want),
    };
    // SAFETY: setrlimit reads one `rlimit`, which lives across the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        return Ok(want);
    }
    // Not allowed to raise the hard limit: go as far as it.
    let capped = libc::rlimit {
        rlim_cur: lim.rlim_max,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &capped) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim.rlim_max)
}

/// An echo server on `listen`: announces `echo: listening on ADDR`, then echoes every
/// connection until its end of stream. Returns only on a set-up or accept error.
pub fn echo(listen: SocketAddr) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener_with_backlog(listen)?)?;
        {
            let mut out = io::stdout().lock();
            writeln!(out, "echo: listening on {}", listener.local_addr()?)?;
            out.flush()?;
        }
        loop {
            let (mut conn, _) = match listener.accept().await {
                Ok(c) => c,
                // EMFILE and friends: keep serving the connections already open.
                Err(_) => {
                    tokio::task::yield_now().await;
                    continue;
                }
            };
            tokio::spawn(async move {
                let _ = conn.set_nodelay(true);
                let mut buf = vec![0u8; 16 << 10];
                loop {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    })
}

/// The echo server's accept queue: above the largest burst, so that what a burst measures
/// is the proxy, not SYNs the echo server's queue dropped (each one a 1 s retransmission).
/// The kernel caps it at `net.core.somaxconn`.
const ECHO_BACKLOG: libc::c_int = 16384;

/// A non-blocking std listener on `addr` with [`ECHO_BACKLOG`] (tokio's own bind uses 1024).
fn listener_with_backlog(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    // SAFETY: listen(2) on a socket this function owns; plain integer arguments.
    if unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&l), ECHO_BACKLOG) } != 0 {
        return Err(io::Error::last_os_error());
    }
    l.set_nonblocking(true)?;
    Ok(l)
}

/// What one burst measured.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// First connect to the last connection done (or to the limit, if some never were).
    pub elapsed: Duration,
    /// Connections that got their bytes back intact.
    pub ok: usize,
    /// Connections that failed, got wrong bytes, or were not done at the limit.
    pub failed: usize,
    /// The first failure, for the report.
    pub first_error: Option<String>,
    /// Each successful connection's time, connect to done, sorted.
    pub times: Vec<Duration>,
}

impl Outcome {
    /// The `p`-quantile (0..=1) of the successful connections' times.
    pub fn quantile(&self, p: f64) -> Option<Duration> {
        if self.times.is_empty() {
            return None;
        }
        let i = ((self.times.len() - 1) as f64 * p).round() as usize;
        Some(self.times[i])
    }
}

/// Run one burst of `conns` connections of `size` bytes each to `target`; give up after
/// `limit`.
pub fn burst(target: SocketAddr, conns: usize, size: usize, limit: Duration) -> Outcome {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return Outcome {
                elapsed: Duration::ZERO,
                ok: 0,
                failed: conns,
                first_error: Some(format!("client runtime: {e}")),
                times: Vec::new(),
            };
        }
    };
    let payload: Arc<[u8]> = (0..size).map(|i| (i * 7 + 13) as u8).collect();
    let left = Arc::new(AtomicUsize::new(conns));
    let results: Arc<Mutex<Vec<Result<Duration, String>>>> =
        Arc::new(Mutex::new(Vec::with_capacity(conns)));
    let all_done = Arc::new(Notify::default());
    let deadline = Deadline::after(limit);
    let start = Instant::now();
    let last_done = rt.block_on(async {
        for _ in 0..conns {
            let payload = Arc::clone(&payload);
            let left = Arc::clone(&left);
            let results = Arc::clone(&results);
            let all_done = Arc::clone(&all_done);
            tokio::spawn(async move {
                let t0 = Instant::now();
                let r = one(target, &payload).await.map(|()| t0.elapsed());
                results.lock().unwrap().push(r);
                if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                    all_done.fire();
                }
            });
        }
        if conns == 0 {
            all_done.fire();
        }
        futures_lite::future::or(all_done.wait(), deadline.wait()).await;
        start.elapsed()
    });
    // Tasks still running are dropped with the runtime: their sockets close.
    drop(rt);
    let results = std::mem::take(&mut *results.lock().unwrap());
    let mut times = Vec::with_capacity(results.len());
    let mut first_error = None;
    for r in results {
        match r {
            Ok(t) => times.push(t),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    times.sort_unstable();
    let ok = times.len();
    if ok < conns && first_error.is_none() {
        first_error = Some(format!(
            "{} connection(s) not done after {limit:?}",
            conns - ok
        ));
    }
    Outcome {
        elapsed: last_done,
        ok,
        failed: conns - ok,
        first_error,
        times,
    }
}

/// One client: connect, send `payload`, read it back, check it, close.
async fn one(target: SocketAddr, payload: &[u8]) -> Result<(), String> {
    let mut s = tokio::net::TcpStream::connect(target)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = s.set_nodelay(true);
    s.write_all(payload)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut back = vec![0u8; payload.len()];
    s.read_exact(&mut back)
        .await
        .map_err(|e| format!("read: {e}"))?;
    if back != payload {
        return Err("the echo differs from what was sent".to_owned());
    }
    Ok(())
}

/// A one-shot event a future can wait for, fired from any thread.
#[derive(Default)]
struct Notify {
    st: Mutex<(bool, Option<Waker>)>,
}

impl Notify {
    fn fire(&self) {
        let waker = {
            let mut st = self.st.lock().unwrap();
            st.0 = true;
            st.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn wait(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx: &mut Context<'_>| {
            let mut st = self.st.lock().unwrap();
            if st.0 {
                Poll::Ready(())
            } else {
                st.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }
}

/// A [`Notify`] fired by a helper thread after a delay (the client runtime has no timers);
/// the thread leaves early when the deadline is dropped.
struct Deadline {
    notify: Arc<Notify>,
    _cancel: mpsc::Sender<()>,
}

impl Deadline {
    fn after(limit: Duration) -> Deadline {
        let notify = Arc::new(Notify::default());
        let (cancel, cancelled) = mpsc::channel::<()>();
        let n = Arc::clone(&notify);
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = cancelled.recv_timeout(limit) {
                n.fire();
            }
        });
        Deadline {
            notify,
            _cancel: cancel,
        }
    }

    fn wait(&self) -> impl Future<Output = ()> + '_ {
        self.notify.wait()
    }
}

/// CPU time of process `pid`'s live threads, io-wq workers included, in nanoseconds (the
/// first field of each `/proc/PID/task/TID/schedstat`; finer than `/proc/PID/stat`'s ticks).
/// Threads that exited are not counted: io-wq workers linger idle for seconds, so a burst's
/// workers are still there when it is read right after.
pub fn cpu_ns(pid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    dir.flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Threads of process `pid`: (all, io-wq workers: those whose name starts with `iou-wrk`).
pub fn threads(pid: u32) -> (usize, usize) {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    let mut all = 0;
    let mut iowq = 0;
    for t in dir.flatten() {
        all += 1;
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.starts_with("iou-wrk") {
            iowq += 1;
        }
    }
    (all, iowq)
}
