//! Issue 14 defect 3 for echo: `--idle-timeout` closes a connection that makes no progress,
//! and only such a connection.
//!
//! - a client that connects and sends nothing reads end-of-stream;
//! - a client that keeps sending (every 200 ms, well inside a 1 s limit) stays served for
//!   several limits, then is closed once it stops;
//! - a client that sends without ever reading stalls the server's sends and is closed too,
//!   instead of holding its buffers forever.

#[path = "support/example_bin.rs"]
mod example_bin;
#[path = "support/example_server.rs"]
mod example_server;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use example_server::Server;

fn start() -> Server {
    Server::start(
        "echo",
        &[],
        &[
            "--listen",
            "127.0.0.1:0",
            "--cores",
            "2",
            "--idle-timeout",
            "1s",
        ],
        None,
    )
}

/// Whether the server closed `s` within `limit` (end of stream or a reset).
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

#[test]
fn a_silent_client_is_closed() {
    let server = start();
    let mut s = server.connect();
    assert!(
        closed_within(&mut s, Duration::from_secs(15)),
        "a client that sent nothing was held for 15 s"
    );
}

#[test]
fn an_active_client_is_kept_and_closed_once_it_stops() {
    let server = start();
    let mut s = server.connect();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut back = [0u8; 5];
    while started.elapsed() < Duration::from_secs(3) {
        s.write_all(b"alive").unwrap();
        s.read_exact(&mut back)
            .expect("an active client must stay served past its idle limit");
        assert_eq!(&back, b"alive");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        closed_within(&mut s, Duration::from_secs(15)),
        "a client that stopped sending was held for 15 s"
    );
}

#[test]
fn a_client_that_never_reads_is_closed() {
    let server = start();
    let s = server.connect();
    let mut w = s.try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = Instant::now();
    let chunk = vec![7u8; 64 * 1024];
    let mut sent = 0usize;
    // Send until the server's echoes (never read) and then our sends back up; the server
    // must then close the connection, which fails our send.
    let err = loop {
        match w.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) => break e,
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still sending after 20 s ({sent} bytes): the stalled connection was not closed"
        );
    };
    eprintln!("sent {sent} bytes, then: {err}");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
        ),
        "expected the server to close the connection, got {err}"
    );
}
