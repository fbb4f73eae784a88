//! The clients of the proxy and of its upstream echo server: bursts of short connections through the proxy,
//! and a latency probe per server.
//!
//! - [`bursts`]: every `period`, one **cycle**: bursts of 1, 10, 100, 1,000 and 10,000
//!   connections (configurable), one after the other; in a burst every connection is opened
//!   at once, sends 4 KiB, reads the 4 KiB back from the echo upstream, checks them and
//!   closes. A burst has 120 s; connections not done by then fail. After a cycle the proxy
//!   and the upstream are sampled ([`CycleSample`]) once the proxy is quiet (its fds back to
//!   `quiet_fds`, or 10 s, whichever is first; at least 1 s): those quiet samples, not the
//!   periodic ones taken at random points of a burst, are what the growth check of these
//!   two servers compares.
//! - [`echo_probe`]: a 64-byte round trip every 100 ms on one long connection, timed and
//!   checked; to the proxy (through it to the upstream) and to the upstream directly.
//!
//! The burst client is a tokio current-thread runtime (a fresh one per burst, so dropping it
//! closes every socket the burst left), on the bursts thread.

use std::future::{Future, poll_fn};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::procs::{Usage, usage};
use super::{Board, Kind, Latency, Who};

/// Bytes each burst connection sends and expects back.
pub const BURST_BYTES: usize = 4096;
/// Time one burst may take.
const BURST_LIMIT: Duration = Duration::from_secs(120);

/// How one burst went.
#[derive(Clone, Debug, Default)]
pub struct Burst {
    pub conns: usize,
    pub ok: usize,
    /// Connections whose echo differed.
    pub wrong: usize,
    /// Connections that failed otherwise or were not done in time.
    pub failed: usize,
    /// First connect to last connection done.
    pub elapsed: Duration,
    /// Connect-to-done times of the connections that succeeded, sorted.
    pub conn_times: Vec<Duration>,
    /// A few of the failures.
    pub errors: Vec<String>,
}

/// The proxy and the upstream sampled one second after a burst cycle.
#[derive(Clone, Copy, Debug)]
pub struct CycleSample {
    pub proxy: Usage,
    pub upstream: Usage,
}

/// The bytes connection `i` sends.
fn burst_payload(i: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(BURST_BYTES);
    let mut x = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while v.len() < BURST_BYTES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(BURST_BYTES);
    v
}

enum ConnErr {
    Wrong(String),
    Failed(String),
}

async fn one_conn(addr: SocketAddr, i: usize) -> Result<Duration, ConnErr> {
    let t0 = Instant::now();
    let failed = |what: &str, e: std::io::Error| ConnErr::Failed(format!("{what}: {e}"));
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| failed("connect", e))?;
    let _ = s.set_nodelay(true);
    let out = burst_payload(i);
    s.write_all(&out).await.map_err(|e| failed("send", e))?;
    let mut back = vec![0u8; BURST_BYTES];
    s.read_exact(&mut back)
        .await
        .map_err(|e| failed("receive", e))?;
    if back != out {
        let at = (0..BURST_BYTES).find(|&j| back[j] != out[j]).unwrap_or(0);
        return Err(ConnErr::Wrong(format!(
            "connection {i}: echoed byte {at} is {:#04x}, sent {:#04x}",
            back[at], out[at]
        )));
    }
    Ok(t0.elapsed())
}

/// Results of a burst's connections, and a waker for the burst's main future.
#[derive(Default)]
struct Collect {
    done: AtomicUsize,
    expired: AtomicBool,
    waker: Mutex<Option<Waker>>,
    results: Mutex<Vec<Result<Duration, ConnErr>>>,
}

impl Collect {
    fn wake(&self) {
        if let Some(w) = self.waker.lock().unwrap().take() {
            w.wake();
        }
    }
}

/// Run one burst of `n` connections to `addr`; `None` if the soak stopped meanwhile.
pub fn burst(board: &Arc<Board>, addr: SocketAddr, n: usize) -> std::io::Result<Option<Burst>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let collect = Arc::new(Collect::default());
    // The deadline: a thread that wakes the burst when the limit passes or the soak stops,
    // and ends early when `alive` is dropped (the burst finished).
    let (alive, gone) = mpsc::channel::<()>();
    let watchdog = {
        let collect = collect.clone();
        let board = board.clone();
        let end = Instant::now() + BURST_LIMIT;
        std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) =
                gone.recv_timeout(Duration::from_millis(250))
            {
                if board.stopped() || Instant::now() >= end {
                    collect.expired.store(true, Ordering::Relaxed);
                    collect.wake();
                    return;
                }
            }
        })
    };
    let t0 = Instant::now();
    rt.block_on(async {
        for i in 0..n {
            let collect = collect.clone();
            tokio::spawn(async move {
                let r = one_conn(addr, i).await;
                collect.results.lock().unwrap().push(r);
                if collect.done.fetch_add(1, Ordering::Relaxed) + 1 == n {
                    collect.wake();
                }
            });
        }
        wait_all(&collect, n).await;
    });
    let elapsed = t0.elapsed();
    // Dropping the runtime drops the unfinished tasks and closes their sockets.
    drop(rt);
    drop(alive);
    let _ = watchdog.join();
    if board.stopped() {
        return Ok(None);
    }
    let mut b = Burst {
        conns: n,
        elapsed,
        ..Burst::default()
    };
    let results = std::mem::take(&mut *collect.results.lock().unwrap());
    b.failed = n - results.len();
    if b.failed > 0 {
        b.errors.push(format!(
            "{} connections not done after {} s",
            b.failed,
            BURST_LIMIT.as_secs()
        ));
    }
    for r in results {
        match r {
            Ok(d) => {
                b.ok += 1;
                b.conn_times.push(d);
            }
            Err(ConnErr::Wrong(m)) => {
                b.wrong += 1;
                if b.errors.len() < 3 {
                    b.errors.push(m);
                }
            }
            Err(ConnErr::Failed(m)) => {
                b.failed += 1;
                if b.errors.len() < 3 {
                    b.errors.push(m);
                }
            }
        }
    }
    b.conn_times.sort();
    Ok(Some(b))
}

fn wait_all(collect: &Collect, n: usize) -> impl Future<Output = ()> + '_ {
    poll_fn(move |cx| {
        *collect.waker.lock().unwrap() = Some(cx.waker().clone());
        if collect.done.load(Ordering::Relaxed) >= n || collect.expired.load(Ordering::Relaxed) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
}

/// What [`bursts`] does.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The proxy.
    pub addr: SocketAddr,
    /// Burst sizes of a cycle, in order.
    pub sizes: Vec<usize>,
    /// A cycle starts this often (or when the previous one ends, if later).
    pub period: Duration,
    /// The proxy's and the upstream's PIDs.
    pub pids: (u32, u32),
    /// The proxy is quiet with at most this many fds.
    pub quiet_fds: u64,
}

/// Burst cycles through the proxy until the board stops; prints one line per cycle, and
/// samples the proxy and the upstream after each once the proxy is quiet (or 10 s have
/// passed) into `samples`; every burst goes into `log`.
pub fn bursts(
    board: Arc<Board>,
    plan: Plan,
    samples: Arc<Mutex<Vec<CycleSample>>>,
    log: Arc<Mutex<Vec<Burst>>>,
) {
    let Plan {
        addr,
        sizes,
        period,
        pids,
        quiet_fds,
    } = plan;
    let tally = board.tally(Who::Proxy);
    while !board.stopped() {
        let start = Instant::now();
        let mut parts = Vec::new();
        for &n in &sizes {
            if board.stopped() {
                return;
            }
            let b = match burst(&board, addr, n) {
                Ok(Some(b)) => b,
                Ok(None) => return,
                Err(e) => {
                    board.problem(Who::Proxy, Kind::Error, format!("burst of {n}: {e}"));
                    continue;
                }
            };
            tally.count("burst connections ok", b.ok as u64);
            tally.count("burst connections failed", (b.failed + b.wrong) as u64);
            if b.wrong > 0 {
                board.problem(
                    Who::Proxy,
                    Kind::Verify,
                    format!(
                        "burst of {n}: {} wrong echoes: {}",
                        b.wrong,
                        b.errors.join("; ")
                    ),
                );
            }
            if b.failed > 0 {
                board.problem(
                    Who::Proxy,
                    Kind::Error,
                    format!(
                        "burst of {n}: {} of {n} connections failed: {}",
                        b.failed,
                        b.errors.join("; ")
                    ),
                );
            }
            parts.push(format!("{n}: {}", short(b.elapsed)));
            log.lock().unwrap().push(b);
            if !board.sleep(Duration::from_millis(500)) {
                return;
            }
        }
        tally.count("burst cycles", 1);
        let done = Instant::now();
        if !board.sleep(Duration::from_secs(1)) {
            return;
        }
        while done.elapsed() < Duration::from_secs(10)
            && usage(pids.0).is_ok_and(|u| u.fds > quiet_fds)
        {
            if !board.sleep(Duration::from_millis(250)) {
                return;
            }
        }
        if let (Ok(proxy), Ok(upstream)) = (usage(pids.0), usage(pids.1)) {
            let t = board.elapsed();
            samples
                .lock()
                .unwrap()
                .push(CycleSample { proxy, upstream });
            println!(
                "[{:>5.0}s] proxy burst cycle in {:.1} s ({}); {:.1} s later: proxy fds {} \
                 threads {} rss {}, upstream fds {} threads {} rss {}",
                t.as_secs_f64(),
                (done - start).as_secs_f64(),
                parts.join(", "),
                done.elapsed().as_secs_f64(),
                proxy.fds,
                proxy.threads,
                super::verdict::mib(proxy.rss),
                upstream.fds,
                upstream.threads,
                super::verdict::mib(upstream.rss),
            );
        }
        let left = period.saturating_sub(start.elapsed());
        if !board.sleep(left) {
            return;
        }
    }
}

/// A duration in a few characters: "850us", "12ms", "2.41s".
pub fn short(d: Duration) -> String {
    let us = d.as_micros();
    if us < 1000 {
        format!("{us}us")
    } else if us < 1_000_000 {
        format!("{}ms", us / 1000)
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

/// A 64-byte round trip every 100 ms on one connection to `addr` (an echo, or a proxy in
/// front of one), into `lat`; problems are charged to `who`.
pub fn echo_probe(board: Arc<Board>, who: Who, addr: SocketAddr, lat: Arc<Latency>) {
    let mut conn: Option<TcpStream> = None;
    let mut seq = 0u64;
    let mut next = Instant::now();
    let connect = || -> std::io::Result<TcpStream> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_write_timeout(Some(Duration::from_secs(30)))?;
        Ok(s)
    };
    while !board.stopped() {
        next += Duration::from_millis(100);
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
        let s = match &mut conn {
            Some(s) => s,
            None => match connect() {
                Ok(s) => conn.insert(s),
                Err(e) => {
                    board.problem(who, Kind::Error, format!("probe: connect: {e}"));
                    board.sleep(Duration::from_secs(1));
                    continue;
                }
            },
        };
        seq += 1;
        let mut msg = [0u8; 64];
        for (j, chunk) in msg.chunks_mut(8).enumerate() {
            chunk.copy_from_slice(&(seq * 8 + j as u64).to_le_bytes());
        }
        let mut back = [0u8; 64];
        let t0 = Instant::now();
        match s.write_all(&msg).and_then(|()| s.read_exact(&mut back)) {
            Ok(()) => {
                lat.record(t0.elapsed());
                if back != msg {
                    board.problem(
                        who,
                        Kind::Verify,
                        format!("probe: round trip {seq} came back different"),
                    );
                    conn = None;
                }
            }
            Err(e) => {
                board.problem(
                    who,
                    Kind::Error,
                    format!(
                        "probe: round trip {seq} failed after {:.1} s: {e}",
                        t0.elapsed().as_secs_f64()
                    ),
                );
                conn = None;
            }
        }
    }
}
