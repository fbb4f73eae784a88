//! The proxy's limits, which every server needs against clients and peers that misbehave:
//! `--max-connections` (clients beyond the cap wait in the listen backlog until one ends),
//! `--idle-timeout` (a connection on which no byte moves is closed; one that keeps talking
//! is not), `--connect-timeout` (an upstream that never answers the SYN does not hold the
//! client for the kernel's two minutes of retries) and the drain on SIGTERM (no new
//! clients, a transfer in flight completes byte-exact, a quiet connection is closed, exit 0).
//! Before these the proxy accepted without bound, kept a silent connection forever, waited
//! out the kernel's connect retries and died at once on SIGTERM.

mod proxy_common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use proxy_common::{Behaviour, Pattern, Proxy, Server, read_pattern, wait_until};

/// How long a client is watched to see that it is *not* served or *not* closed.
const WATCH: Duration = Duration::from_millis(700);

/// Send one byte and wait up to `limit` for its echo: `Some(true)` echoed, `Some(false)` the
/// connection was closed, `None` nothing yet.
fn echo_once(s: &mut TcpStream, limit: Duration) -> Option<bool> {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(1) => Some(true),
        Ok(_) => Some(false),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
        Err(_) => Some(false),
    }
}

/// Wait (boundedly) for a stderr line of the proxy that contains `what`.
fn logged(proxy: &Proxy, what: &str) {
    wait_until(Duration::from_secs(10), what, || {
        proxy.stderr_lines().iter().any(|l| l.contains(what))
    });
}

fn client(proxy: &Proxy) -> TcpStream {
    let mut s = proxy.connect();
    s.write_all(b"x").unwrap();
    s
}

#[test]
fn clients_beyond_max_connections_wait_until_one_ends() {
    let upstream = Server::start(Behaviour::PlainEcho);
    let proxy = Proxy::with("lease", upstream.addr, &[], &["--max-connections", "2"]);
    let mut first: Vec<TcpStream> = (0..2).map(|_| client(&proxy)).collect();
    for s in &mut first {
        assert_eq!(
            echo_once(s, Duration::from_secs(10)),
            Some(true),
            "below the cap"
        );
    }
    let mut third = client(&proxy);
    assert_eq!(
        echo_once(&mut third, WATCH),
        None,
        "a client beyond --max-connections 2 was served"
    );
    drop(first.pop());
    assert_eq!(
        echo_once(&mut third, Duration::from_secs(10)),
        Some(true),
        "a slot freed: the waiting client is served"
    );
    logged(&proxy, "--max-connections 2");
}

#[test]
fn a_connection_that_moves_no_bytes_is_closed_after_idle_timeout() {
    let upstream = Server::start(Behaviour::PlainEcho);
    for mode in ["lease", "splice", "copy"] {
        let proxy = Proxy::with(mode, upstream.addr, &[], &["--idle-timeout", "400ms"]);
        // Talking every 100 ms for well over the limit: never idle, never closed.
        let mut busy = client(&proxy);
        assert_eq!(
            echo_once(&mut busy, Duration::from_secs(10)),
            Some(true),
            "{mode}"
        );
        for _ in 0..12 {
            std::thread::sleep(Duration::from_millis(100));
            busy.write_all(b"y").unwrap();
            assert_eq!(
                echo_once(&mut busy, Duration::from_secs(10)),
                Some(true),
                "{mode}: a connection that keeps talking was closed"
            );
        }
        // Then silent: closed.
        let started = Instant::now();
        assert_eq!(
            echo_once(&mut busy, Duration::from_secs(20)),
            Some(false),
            "{mode}: a silent connection was not closed"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{mode}: closed only by the test's own read timeout"
        );
        logged(&proxy, "--idle-timeout");
    }
}

/// A listener whose accept queue is full: the kernel drops further SYNs, so a connect to it
/// gets no answer (the client retries for about two minutes).
struct Blackhole {
    addr: SocketAddr,
    _listener: OwnedFd,
    _queued: Vec<TcpStream>,
}

fn blackhole() -> Blackhole {
    // SAFETY: socket(2) with constant arguments; the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is a new socket nobody else owns.
    let listener = unsafe { OwnedFd::from_raw_fd(fd) };
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `sin` is a valid sockaddr_in of `len` bytes that outlives the call.
    let rc = unsafe { libc::bind(fd, (&raw const sin).cast(), len) };
    assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
    // SAFETY: listen(2) on our bound socket; backlog 0 is the smallest queue.
    assert_eq!(unsafe { libc::listen(fd, 0) }, 0);
    let mut out: libc::sockaddr_in = sin;
    let mut out_len = len;
    // SAFETY: `out` and `out_len` are valid out-pointers of the sizes given.
    let rc = unsafe { libc::getsockname(fd, (&raw mut out).cast(), &mut out_len) };
    assert_eq!(rc, 0);
    let addr = SocketAddr::from(([127, 0, 0, 1], u16::from_be(out.sin_port)));
    // Fill the queue (never accepted); connects that time out here are the dropped ones.
    let mut queued = Vec::new();
    for _ in 0..4 {
        if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            queued.push(s);
        }
    }
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
        "the test's blackhole listener still answers connects"
    );
    Blackhole {
        addr,
        _listener: listener,
        _queued: queued,
    }
}

#[test]
fn an_upstream_that_never_answers_is_given_up_after_connect_timeout() {
    let hole = blackhole();
    let proxy = Proxy::with("lease", hole.addr, &[], &["--connect-timeout", "500ms"]);
    let mut c = proxy.connect();
    let started = Instant::now();
    assert_eq!(
        echo_once(&mut c, Duration::from_secs(30)),
        Some(false),
        "the client was not closed"
    );
    // The kernel's own connect retries last about two minutes: the client was closed by
    // the proxy's limit, not by those.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "closed only by the test's read timeout"
    );
    logged(&proxy, "--connect-timeout");
}

#[test]
fn sigterm_refuses_new_clients_finishes_transfers_closes_quiet_ones_and_exits_0() {
    let upstream = Server::start(Behaviour::Echo { seed: 7, xor: 0x5a });
    let mut proxy = Proxy::with("lease", upstream.addr, &[], &["--drain-timeout", "30s"]);
    // A quiet connection: it spoke once, then says nothing.
    let mut quiet = proxy.connect();
    // A transfer that is in flight when the signal comes: 8 MiB, sent in paced chunks.
    let busy = proxy.connect();
    let total: u64 = 8 << 20;
    let mut w = busy.try_clone().unwrap();
    let mut r = busy.try_clone().unwrap();
    let reader = std::thread::spawn(move || read_pattern(&mut r, 7, 0x5a));
    let writer = std::thread::spawn(move || {
        // 64 KiB every 10 ms: the signal comes early in the transfer.
        let mut p = Pattern::new(7);
        let mut buf = vec![0u8; 64 << 10];
        for _ in 0..total / buf.len() as u64 {
            p.fill(&mut buf);
            w.write_all(&buf).unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
        w.shutdown(Shutdown::Write).unwrap();
    });
    std::thread::sleep(Duration::from_millis(100));
    proxy.signal(libc::SIGTERM);
    // No new clients.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(proxy.addr) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => break,
            _ => {
                assert!(Instant::now() < deadline, "new clients still accepted");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    writer.join().unwrap();
    let seen = reader.join().unwrap();
    assert_eq!(seen.bytes, total, "the in-flight transfer was cut");
    assert!(seen.intact, "the in-flight transfer's bytes differ");
    assert!(seen.eof, "the in-flight transfer did not end cleanly");
    // The quiet connection is closed well before --drain-timeout.
    assert_eq!(
        echo_once(&mut quiet, Duration::from_secs(20)),
        Some(false),
        "the quiet connection was left open while stopping"
    );
    drop(busy);
    let status = proxy
        .wait_exit(Duration::from_secs(20))
        .expect("the proxy did not exit after draining");
    assert!(status.success(), "exit status {status:?}");
}
