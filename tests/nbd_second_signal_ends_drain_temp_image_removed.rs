//! nbd_server's stop: SIGTERM or SIGINT starts the drain (the listener closes; requests
//! received are answered), a second signal during the drain stops at once instead of
//! waiting out `--drain-timeout`, and either way the temporary image (made when no
//! `--image` is given) is removed and the exit status is 0.

mod nbd_common;

use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nbd_common::*;

/// Where the server keeps its temporary image (see `examples/nbd_server/image.rs`).
fn temp_dir_of(server: &Server) -> PathBuf {
    std::env::temp_dir().join(format!("ringleader-nbd-{}", server.child.id()))
}

fn kill(server: &Server, sig: i32) {
    // SAFETY: kill(2) on our own child's PID, not reaped before `Server` drops.
    assert_eq!(unsafe { libc::kill(server.child.id() as i32, sig) }, 0);
}

/// Wait (at most 30 s) for the server to exit; its status.
fn wait_exit(server: &mut Server) -> std::process::ExitStatus {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < end, "the server did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether new clients are refused within a few seconds (the drain closed the listener).
fn refuses_new_clients(server: &Server) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if TcpStream::connect(server.addr).is_err() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn one_signal_drains_and_removes_the_temporary_image() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut server = Server::start(&["--size", "16M"]);
        let dir = temp_dir_of(&server);
        assert!(dir.exists(), "the temporary image lives in {dir:?}");
        still_serves(server.addr, 0);
        kill(&server, sig);
        let status = wait_exit(&mut server);
        assert!(status.success(), "after signal {sig}: {status}");
        assert!(!dir.exists(), "{dir:?} is left behind after signal {sig}");
    }
}

#[test]
fn second_signal_during_the_drain_stops_at_once() {
    let mut server = Server::start(&["--size", "16M", "--drain-timeout", "10m"]);
    let dir = temp_dir_of(&server);
    assert!(dir.exists(), "the temporary image lives in {dir:?}");
    // A request half received holds the drain: a WRITE whose data has not all arrived.
    let (mut c, _, _) = Raw::ready(server.addr, false);
    c.request(0, CMD_WRITE, 1, 0, 64 << 10);
    c.send(&[7u8; 4096]);
    kill(&server, libc::SIGTERM);
    assert!(refuses_new_clients(&server), "the drain did not start");
    assert!(server.alive(), "the half-received WRITE holds the drain");
    kill(&server, libc::SIGINT);
    // The drain timeout is 10 minutes: only the second signal can end it within 30 s.
    let status = wait_exit(&mut server);
    assert!(status.success(), "after the second signal: {status}");
    assert!(!dir.exists(), "{dir:?} is left behind");
    drop(c);
}
