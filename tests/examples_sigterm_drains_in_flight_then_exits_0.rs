//! Issue 14 defect 6 for echo and http_server: SIGTERM under load stops the server cleanly.
//! It stops accepting (new clients are refused), the transfers in flight complete
//! byte-exact, idle connections are closed, and the process exits with status 0 (it used to
//! die by SIGTERM's default action). A connection that never finishes is cut at
//! `--drain-timeout`, and the exit is still clean.

#[path = "support/example_bin.rs"]
mod example_bin;
#[path = "support/example_server.rs"]
mod example_server;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use example_server::{Server, describe};

/// A deterministic byte pattern, different per client.
fn pattern(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i * 31 + seed * 7 + i / 251) as u8)
        .collect()
}

/// Whether `addr` refuses new connections within a few seconds (the listeners closed).
fn refuses_new_clients(addr: SocketAddr) -> bool {
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        match TcpStream::connect(addr) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return true,
            // Still listening (or a dying listener's backlog): try again.
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    false
}

/// Whether the server closes `s` (end of stream or reset) within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// Send `data` in paced chunks while reading the echo; then half-close and read to the end.
fn echo_transfer(server: &Server, seed: usize, data: &[u8]) -> Result<(), String> {
    let s = server.connect();
    let mut w = s.try_clone().unwrap();
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> Result<(), String> {
            for chunk in data.chunks(64 * 1024) {
                w.write_all(chunk)
                    .map_err(|e| format!("client {seed} send: {e}"))?;
                std::thread::sleep(Duration::from_millis(20));
            }
            w.shutdown(Shutdown::Write)
                .map_err(|e| format!("client {seed} shutdown: {e}"))
        });
        let mut back = Vec::with_capacity(data.len());
        let read = (&s).read_to_end(&mut back);
        let wrote = writer.join().unwrap();
        read.map_err(|e| format!("client {seed}: {e} after {} bytes", back.len()))?;
        wrote?;
        if back != data {
            return Err(format!(
                "client {seed}: {} of {} bytes echoed, or bytes differ",
                back.len(),
                data.len()
            ));
        }
        Ok(())
    })
}

#[test]
fn echo_drains_on_sigterm_and_exits_0() {
    const LEN: usize = 6 << 20;
    let mut server = Server::start(
        "echo",
        &[],
        &["--listen", "127.0.0.1:0", "--cores", "2"],
        None,
    );
    let mut idle = server.connect();
    let results = std::thread::scope(|scope| {
        let server = &server;
        let clients: Vec<_> = (0..8)
            .map(|seed| scope.spawn(move || echo_transfer(server, seed, &pattern(seed, LEN))))
            .collect();
        // The transfers are under way (each takes ~2 s at its pace): stop the server.
        std::thread::sleep(Duration::from_millis(500));
        server.signal(libc::SIGTERM);
        let refused = refuses_new_clients(server.addr);
        let idle_closed = closed_within(&mut idle, Duration::from_secs(8));
        let done: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
        (refused, idle_closed, done)
    });
    let status = server.wait_exit(Duration::from_secs(20));
    eprintln!("stderr: {}", server.stderr_text());
    assert!(
        status.is_some_and(|s| s.success()),
        "echo ended with {} after SIGTERM",
        describe(status)
    );
    let (refused, idle_closed, done) = results;
    for r in done {
        r.unwrap();
    }
    assert!(refused, "echo still accepted new clients after SIGTERM");
    assert!(idle_closed, "an idle connection held the drain");
}

#[test]
fn echo_cuts_what_outlasts_the_drain_timeout_and_exits_0() {
    let mut server = Server::start(
        "echo",
        &[],
        &[
            "--listen",
            "127.0.0.1:0",
            "--cores",
            "1",
            "--drain-timeout",
            "1s",
        ],
        None,
    );
    let mut s = server.connect();
    let mut r = s.try_clone().unwrap();
    // A client that never stops: a 100 ms heartbeat, its echoes drained by a thread.
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while matches!(r.read(&mut buf), Ok(n) if n > 0) {}
    });
    s.write_all(b"beat").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    server.signal(libc::SIGTERM);
    let started = Instant::now();
    while server.running() && started.elapsed() < Duration::from_secs(20) {
        if s.write_all(b"beat").is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = server.wait_exit(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "echo ended with {} after SIGTERM: {}",
        describe(status),
        server.stderr_text()
    );
    assert!(
        server.stderr_text().contains("closing 1 connection"),
        "the cut connection is reported: {}",
        server.stderr_text()
    );
    drop(s);
    reader.join().unwrap();
}

#[cfg(feature = "hyper")]
mod http {
    use super::*;

    const LEN: usize = 16 << 20;

    /// GET /download/big.bin, read slowly; the body, which must be whole.
    fn slow_download(server: &Server, seed: usize) -> Result<(), String> {
        let mut s = server.connect();
        s.write_all(b"GET /download/big.bin HTTP/1.1\r\nhost: x\r\n\r\n")
            .map_err(|e| format!("client {seed}: {e}"))?;
        let mut got = Vec::with_capacity(LEN + 512);
        let mut buf = vec![0u8; 128 * 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return Err(format!("client {seed}: {e} after {} bytes", got.len())),
            }
            let head_end = got.windows(4).position(|w| w == b"\r\n\r\n");
            if head_end.is_some_and(|h| got.len() >= h + 4 + LEN) {
                break;
            }
            std::thread::sleep(Duration::from_millis(15));
        }
        let Some(h) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
            return Err(format!("client {seed}: no response head"));
        };
        if !got.starts_with(b"HTTP/1.1 200") {
            return Err(format!(
                "client {seed}: {:?}",
                String::from_utf8_lossy(&got[..h])
            ));
        }
        let body = &got[h + 4..];
        if body != pattern(0, LEN) {
            return Err(format!(
                "client {seed}: {} of {LEN} body bytes, or bytes differ",
                body.len()
            ));
        }
        Ok(())
    }

    #[test]
    fn http_server_drains_on_sigterm_and_exits_0() {
        let dir = std::env::temp_dir().join(format!("rl-http-drain-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("big.bin"), pattern(0, LEN)).unwrap();
        let mut server = Server::start(
            "http_server",
            &["hyper"],
            &[
                "--listen",
                "127.0.0.1:0",
                "--cores",
                "2",
                "--dir",
                dir.to_str().unwrap(),
            ],
            None,
        );
        // A kept-alive connection between requests: closed at once by the drain.
        let mut idle = server.connect();
        idle.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        let mut hello = [0u8; 512];
        let n = idle.read(&mut hello).unwrap();
        assert!(hello[..n].ends_with(b"hello"));
        let results = std::thread::scope(|scope| {
            let server = &server;
            let clients: Vec<_> = (0..6)
                .map(|seed| scope.spawn(move || slow_download(server, seed)))
                .collect();
            std::thread::sleep(Duration::from_millis(500));
            server.signal(libc::SIGTERM);
            let refused = refuses_new_clients(server.addr);
            let idle_closed = closed_within(&mut idle, Duration::from_secs(3));
            let done: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
            (refused, idle_closed, done)
        });
        let status = server.wait_exit(Duration::from_secs(20));
        let _ = std::fs::remove_dir_all(&dir);
        eprintln!("stderr: {}", server.stderr_text());
        assert!(
            status.is_some_and(|s| s.success()),
            "http_server ended with {} after SIGTERM",
            describe(status)
        );
        let (refused, idle_closed, done) = results;
        for r in done {
            r.unwrap();
        }
        assert!(
            refused,
            "http_server still accepted new clients after SIGTERM"
        );
        assert!(idle_closed, "an idle kept-alive connection held the drain");
    }
}
