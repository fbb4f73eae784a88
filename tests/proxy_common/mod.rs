//! Helpers for the proxy tests: run `examples/proxy` as a child process (its stderr, and so
//! its `--stats` lines, collected), in-test upstream and mirror servers on std threads, a
//! reproducible byte stream to send and verify, and `/proc` readers for the proxy's fds and
//! memory.
//!
//! Everything is bounded: sockets carry read and write timeouts, waits have deadlines, and
//! the proxy is killed (by its PID) when its handle drops.
#![allow(dead_code)]

#[path = "../support/example_bin.rs"]
mod example_bin;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// No single socket read or write waits longer than this: a hang fails instead of stalling.
pub const IO_TIMEOUT: Duration = Duration::from_secs(60);

pub const MODES: [&str; 3] = ["lease", "splice", "copy"];

/// Flags for tests that check that every mirror gets every byte: a mirror that falls behind
/// the upstream is dropped by default (`--mirror-budget`), and a test server on a loaded
/// machine may pause for longer than the default budget lasts at loopback speed. With `off`
/// a mirror is never dropped for its lag (only after `--mirror-timeout` without progress);
/// `proxy_stalled_mirror_*` tests the budget itself.
pub const LOSSLESS: [&str; 2] = ["--mirror-budget", "off"];

/// The example's binary (see `support/example_bin.rs`).
pub fn proxy_bin() -> PathBuf {
    example_bin::example_bin("proxy", &[])
}

/// One `proxy-stats:` line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub conns: u64,
    pub accepted: u64,
    pub held_bytes: u64,
    pub max_held_bytes: u64,
    pub bound: u64,
    pub throttled: u64,
    pub mirrors_dropped: u64,
    pub rings: u64,
    pub idle_pipes: u64,
}

impl Stats {
    fn parse(line: &str) -> Option<Stats> {
        let rest = line.strip_prefix("proxy-stats: ")?;
        let mut s = Stats::default();
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            let v: u64 = v.parse().ok()?;
            match k {
                "conns" => s.conns = v,
                "accepted" => s.accepted = v,
                "held_bytes" => s.held_bytes = v,
                "max_held_bytes" => s.max_held_bytes = v,
                "bound" => s.bound = v,
                "throttled" => s.throttled = v,
                "mirrors_dropped" => s.mirrors_dropped = v,
                "rings" => s.rings = v,
                "idle_pipes" => s.idle_pipes = v,
                _ => {}
            }
        }
        Some(s)
    }
}

/// The proxy example running as a child process; SIGKILLed and reaped on drop.
pub struct Proxy {
    child: Child,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    /// Start `proxy --listen 127.0.0.1:0 --stats --stats-ms 20 ARGS...` and wait for its first
    /// stdout line, which names the bound address.
    pub fn start(args: &[String]) -> Proxy {
        let mut child = Command::new(proxy_bin())
            .args(["--listen", "127.0.0.1:0", "--stats", "--stats-ms", "20"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning the proxy example");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&stderr);
        let err = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { return };
                if !line.starts_with("proxy-stats:") {
                    eprintln!("[proxy stderr] {line}");
                }
                lines.lock().unwrap().push(line);
            }
        });
        let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        out.read_line(&mut line)
            .expect("reading the proxy's first line");
        // "proxy: listening on ADDR (mode M, upstream U, N mirrors)"
        let addr = line
            .strip_prefix("proxy: listening on ")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("unexpected first line from the proxy: {line:?}");
        };
        // Keep stdout open (and drained) so a late write never fails with EPIPE.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = out.read_to_end(&mut sink);
        });
        Proxy {
            child,
            addr,
            stderr,
        }
    }

    /// A proxy in `mode` to `upstream`, copying to `mirrors`, with `extra` flags.
    pub fn with(mode: &str, upstream: SocketAddr, mirrors: &[SocketAddr], extra: &[&str]) -> Proxy {
        let mut args = vec![
            "--mode".to_owned(),
            mode.to_owned(),
            "--upstream".to_owned(),
            upstream.to_string(),
        ];
        for m in mirrors {
            args.push("--mirror".to_owned());
            args.push(m.to_string());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        Proxy::start(&args)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A client connection through the proxy, with timeouts.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connecting to the proxy");
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        s
    }

    /// Open fds of the proxy process.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("/proc/<proxy>/fd")
            .count()
    }

    /// Wait (at most `limit`) until the proxy holds no fd beyond `baseline` but the empty
    /// pipes splice mode keeps for reuse (two fds each, `idle_pipes` in its stats): every
    /// socket and pipe of the connections that came and went is closed.
    pub fn wait_fds_back_to(&self, baseline: usize, limit: Duration) {
        wait_until(limit, "the proxy's fds back to their baseline", || {
            let pooled = 2 * self.fresh_stats().idle_pipes as usize;
            self.fd_count() == baseline + pooled
        });
    }

    /// The proxy's resident set size, in KiB (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/<proxy>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in /proc/<proxy>/status")
    }

    /// Every stderr line so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Every `--stats` line so far, parsed.
    pub fn all_stats(&self) -> Vec<Stats> {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| Stats::parse(l))
            .collect()
    }

    /// The next `--stats` line printed after this call (so it reflects the present).
    pub fn fresh_stats(&self) -> Stats {
        let seen = self.all_stats().len();
        wait_until(Duration::from_secs(10), "a fresh proxy-stats line", || {
            self.all_stats().len() > seen
        });
        *self.all_stats().last().unwrap()
    }

    /// The proxy's threads: (all, io-wq workers: named `iou-wrk-*`).
    pub fn threads(&self) -> (usize, usize) {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{}/task", self.pid())) else {
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

    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Send `signal` to the proxy (our own child, not reaped yet: the PID is still ours).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with a PID of our unreaped child and a valid signal number.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// Wait up to `limit` for the proxy to exit; its status, or `None` if it still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Our own child, not reaped yet: the PID is still ours.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `cond` every few milliseconds; panic with `what` after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A reproducible byte stream: 64 KiB blocks of xorshift64* output, block `k` seeded from
/// `(seed, k)`, so bytes out of place or missing never line up by chance.
pub struct Pattern {
    seed: u64,
    block: Vec<u8>,
    next_block: u64,
    off: usize,
}

const BLOCK: usize = 64 << 10;

impl Pattern {
    pub fn new(seed: u64) -> Pattern {
        Pattern {
            seed,
            block: vec![0; BLOCK],
            next_block: 0,
            off: BLOCK,
        }
    }

    fn refill(&mut self) {
        let mut x = (self.seed ^ self.next_block.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1;
        for w in self.block.chunks_exact_mut(8) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            w.copy_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        self.next_block += 1;
        self.off = 0;
    }

    /// The next `out.len()` bytes of the stream.
    pub fn fill(&mut self, out: &mut [u8]) {
        let mut done = 0;
        while done < out.len() {
            if self.off == BLOCK {
                self.refill();
            }
            let n = (out.len() - done).min(BLOCK - self.off);
            out[done..done + n].copy_from_slice(&self.block[self.off..self.off + n]);
            self.off += n;
            done += n;
        }
    }

    /// Whether `data` is the next `data.len()` bytes of the stream (consumes them).
    pub fn matches(&mut self, data: &[u8]) -> bool {
        let mut done = 0;
        let mut ok = true;
        while done < data.len() {
            if self.off == BLOCK {
                self.refill();
            }
            let n = (data.len() - done).min(BLOCK - self.off);
            ok &= data[done..done + n] == self.block[self.off..self.off + n];
            self.off += n;
            done += n;
        }
        ok
    }
}

/// What a server saw on one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Bytes received before end of stream (or the error).
    pub bytes: u64,
    /// Every byte was the expected pattern byte.
    pub intact: bool,
    /// The stream ended with a clean end of stream (not an error or timeout).
    pub eof: bool,
}

/// What a server does with each connection.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// Verify against `Pattern::new(seed)`; send nothing.
    Verify { seed: u64 },
    /// Verify, and send every received chunk back as it arrives, each byte XORed with `xor`.
    Echo { seed: u64, xor: u8 },
    /// Verify until end of stream, then send `reply` bytes of `Pattern::new(reply_seed)` and
    /// close.
    ReplyAfterEof {
        seed: u64,
        reply_seed: u64,
        reply: u64,
    },
    /// Echo without verifying (short-connection tests).
    PlainEcho,
}

/// An in-test upstream or mirror: a std listener on `127.0.0.1:0`, one thread per
/// connection, a report per connection on a channel.
pub struct Server {
    pub addr: SocketAddr,
    seen: Receiver<Seen>,
}

impl Server {
    pub fn start(behaviour: Behaviour) -> Server {
        Server::start_gated(behaviour, None, None)
    }

    /// As [`Server::start`]; with a `gate`, each connection reads nothing until the gate
    /// receives a message (a mirror that stops reading); with `rcvbuf`, accepted sockets get
    /// that `SO_RCVBUF` (inherited from the listener), so the kernel buffers little for them.
    pub fn start_gated(
        behaviour: Behaviour,
        gate: Option<Receiver<()>>,
        rcvbuf: Option<usize>,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a test server");
        if let Some(n) = rcvbuf {
            set_buf(&listener, libc::SO_RCVBUF, n);
        }
        Server::start_on(listener, behaviour, gate)
    }

    /// As [`Server::start_gated`], on a listener the caller bound.
    pub fn start_on(
        listener: TcpListener,
        behaviour: Behaviour,
        gate: Option<Receiver<()>>,
    ) -> Server {
        let addr = listener.local_addr().unwrap();
        let (tx, seen) = mpsc::channel();
        let gate = gate.map(|g| Arc::new(Mutex::new(g)));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let tx: Sender<Seen> = tx.clone();
                let gate = gate.clone();
                std::thread::spawn(move || {
                    if let Some(g) = gate {
                        let _ = g.lock().unwrap().recv_timeout(IO_TIMEOUT);
                    }
                    let _ = tx.send(serve(conn, behaviour));
                });
            }
        });
        Server { addr, seen }
    }

    /// The report of the next connection to finish (panics after `IO_TIMEOUT`).
    pub fn next_seen(&self) -> Seen {
        self.seen
            .recv_timeout(IO_TIMEOUT * 2)
            .expect("a test server's connection to finish")
    }
}

fn serve(mut s: TcpStream, behaviour: Behaviour) -> Seen {
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let (seed, verify) = match behaviour {
        Behaviour::Verify { seed } | Behaviour::Echo { seed, .. } => (seed, true),
        Behaviour::ReplyAfterEof { seed, .. } => (seed, true),
        Behaviour::PlainEcho => (0, false),
    };
    let mut expect = Pattern::new(seed);
    let mut buf = vec![0u8; 256 << 10];
    let mut seen = Seen {
        bytes: 0,
        intact: true,
        eof: false,
    };
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) => {
                seen.eof = true;
                break;
            }
            Ok(n) => n,
            Err(_) => break,
        };
        seen.bytes += n as u64;
        if verify {
            seen.intact &= expect.matches(&buf[..n]);
        }
        let echo = match behaviour {
            Behaviour::Echo { xor, .. } => {
                buf[..n].iter_mut().for_each(|b| *b ^= xor);
                true
            }
            Behaviour::PlainEcho => true,
            _ => false,
        };
        if echo && s.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    if let (
        true,
        Behaviour::ReplyAfterEof {
            reply_seed, reply, ..
        },
    ) = (seen.eof, behaviour)
    {
        let _ = send_pattern(&mut s, reply_seed, reply, None);
    }
    let _ = s.shutdown(Shutdown::Write);
    seen
}

/// Send `total` bytes of `Pattern::new(seed)`, counting progress into `sent`.
pub fn send_pattern(
    s: &mut TcpStream,
    seed: u64,
    total: u64,
    sent: Option<&AtomicU64>,
) -> std::io::Result<()> {
    let mut pattern = Pattern::new(seed);
    let mut buf = vec![0u8; 256 << 10];
    let mut left = total;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        pattern.fill(&mut buf[..n]);
        s.write_all(&buf[..n])?;
        left -= n as u64;
        if let Some(c) = sent {
            c.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// Read `s` to its end, verifying against `Pattern::new(seed)` (XORed with `xor`).
pub fn read_pattern(s: &mut TcpStream, seed: u64, xor: u8) -> Seen {
    let mut expect = Pattern::new(seed);
    let mut buf = vec![0u8; 256 << 10];
    let mut seen = Seen {
        bytes: 0,
        intact: true,
        eof: false,
    };
    loop {
        match s.read(&mut buf) {
            Ok(0) => {
                seen.eof = true;
                return seen;
            }
            Ok(n) => {
                seen.bytes += n as u64;
                buf[..n].iter_mut().for_each(|b| *b ^= xor);
                seen.intact &= expect.matches(&buf[..n]);
            }
            Err(_) => return seen,
        }
    }
}

/// Set `SO_SNDBUF`/`SO_RCVBUF` on a socket (the kernel doubles the value for bookkeeping).
pub fn set_buf(sock: &impl AsRawFd, opt: i32, bytes: usize) {
    let v = bytes as libc::c_int;
    // SAFETY: setsockopt reads one int from `v`, which lives across the call.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "setsockopt: {}", std::io::Error::last_os_error());
}

/// The largest value of a `/proc/sys/net/ipv4/tcp_{r,w}mem` triple: how far the kernel may
/// grow one socket's buffer by itself.
pub fn tcp_mem_max(which: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/sys/net/ipv4/{which}"))
        .ok()
        .and_then(|s| s.split_whitespace().last().and_then(|v| v.parse().ok()))
        .unwrap_or(32 << 20)
}

/// A port with nothing listening on it (bound once, then released).
pub fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Close `s` with a reset (`SO_LINGER` 0) instead of a FIN.
pub fn reset(s: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads one `linger` from `linger`, which lives across the call.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
    drop(s);
}
