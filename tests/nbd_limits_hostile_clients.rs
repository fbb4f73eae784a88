//! The NBD server against slow, greedy and departed clients (issue 14): a client that never
//! finishes its handshake, one that stops reading its replies, clients that queue far more
//! read data than the memory budget and then leave, and a restart right after SIGKILL.
//!
//! Each limit is set small on the command line so the test sees it trip quickly; the
//! assertions are about behaviour (the connection is closed, memory stays bounded, the work
//! of a departed client is not done, every connection is served), never about timings: the
//! generous waits only keep a broken server from hanging the test.

mod nbd_common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use nbd_common::*;

/// Wait until `stream` is closed by the server (end of stream or reset), reading and
/// dropping whatever comes; `false` if it is still open after `limit`.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(e) => panic!("reading: {e}"),
        }
    }
}

/// Whether the peer closes its side of `stream` within `limit`, looked at with `poll`
/// (`POLLRDHUP`), reading nothing.
fn peer_closed_within(stream: &TcpStream, limit: Duration) -> bool {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd for an fd the stream owns; poll writes only `revents`.
    let n = unsafe { libc::poll(&mut p, 1, limit.as_millis() as libc::c_int) };
    n == 1 && p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}

/// A field of `/proc/PID/status` or `/proc/PID/io`, as a number (kB for the former).
fn proc_field(pid: u32, file: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap();
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} in /proc/{pid}/{file}"))
}

#[test]
fn a_client_that_never_finishes_its_handshake_is_closed() {
    let server = Server::start(&["--handshake-timeout", "1s"]);
    // Connects, reads the greeting, then sends nothing (a slowloris handshake).
    let mut silent = TcpStream::connect(server.addr).unwrap();
    let mut hello = [0u8; 18];
    silent.read_exact(&mut hello).unwrap();
    // One that sends its flags, then half an option header, and stops.
    let mut dripping = Raw::greet(server.addr);
    dripping.send(&IHAVEOPT.to_be_bytes());
    assert!(
        closed_within(&mut silent, Duration::from_secs(30)),
        "a silent client is still connected 30 s after a 1 s handshake timeout"
    );
    assert!(
        closed_within(&mut dripping.s, Duration::from_secs(30)),
        "a client stuck inside an option is still connected 30 s after a 1 s handshake timeout"
    );
    still_serves(server.addr, 0);
}

/// A client that sends READs and never reads the replies pins its connection's memory; the
/// stall timeout closes it, and the server goes on serving others.
#[test]
fn a_client_that_stops_reading_replies_is_closed() {
    let server = Server::start(&["--stall-timeout", "1s", "--size", "256M"]);
    let (mut c, _, _) = Raw::ready(server.addr, false);
    c.s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    // 64 reads of 1 MiB: far more than the socket buffers hold.
    for h in 0..64u64 {
        c.request(0, CMD_READ, h, h << 20, 1 << 20);
    }
    // Now the client reads nothing: the server must close its side (seen as the peer's FIN,
    // `POLLRDHUP`, without reading the replies queued before it).
    let closed = peer_closed_within(&c.s, Duration::from_secs(30));
    assert!(closed, "the stalled connection is still open");
    still_serves(server.addr, 0);
}

/// Eight clients each queue 16 READs of 32 MiB (4 GiB in all) and read nothing back, then
/// leave. The server holds at most about its `--max-memory` of read data, and the reads of
/// the departed clients are cancelled rather than run to the end.
#[test]
fn greedy_clients_stay_within_the_memory_budget_and_their_work_stops_when_they_leave() {
    let image = sparse_file("greedy", 512 << 20);
    let server = Server::start(&[
        "--image",
        image.path().to_str().unwrap(),
        "--max-memory",
        "256M",
    ]);
    let pid = server.child.id();
    let rchar_before = proc_field(pid, "io", "rchar:");
    let mut clients = Vec::new();
    for c in 0..8u64 {
        let (mut r, _, _) = Raw::ready(server.addr, false);
        for h in 0..16u64 {
            let offset = ((c * 16 + h) % 16) * (32 << 20);
            r.request(0, CMD_READ, h, offset, 32 << 20);
        }
        clients.push(r);
    }
    // Let the server take what it will.
    std::thread::sleep(Duration::from_secs(3));
    let peak_kib = proc_field(pid, "status", "VmHWM:");
    // Leave without reading: the close resets the connections.
    drop(clients);
    // The server notices at once; give it time to do whatever it still would.
    std::thread::sleep(Duration::from_secs(3));
    let read = proc_field(pid, "io", "rchar:") - rchar_before;
    still_serves(server.addr, 0);
    let budget_kib = 256 << 10;
    assert!(
        peak_kib < budget_kib + (192 << 10),
        "peak RSS {} MiB with a 256 MiB memory budget",
        peak_kib >> 10
    );
    let asked = 8 * 16 * (32u64 << 20);
    assert!(
        read < asked / 4,
        "the server read {} MiB of the {} MiB that departed clients asked for: their queued \
         reads were not cancelled",
        read >> 20,
        asked >> 20
    );
}

/// Restart on the same port right after SIGKILL: every connection to the new server is
/// served (none reset by a listener of the dead process lingering in a reuseport group).
#[test]
fn restart_right_after_sigkill_serves_every_connection() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let listen = addr.to_string();
    for round in 0..4 {
        // A later `--listen` overrides the helper's `127.0.0.1:0`.
        let server = Server::start(&["--listen", &listen]);
        assert_eq!(server.addr, addr);
        for i in 0..10u64 {
            let (mut c, _, _) = Raw::ready(addr, false);
            let data = pseudo_random(4096, round * 100 + i);
            assert_eq!(c.write(1, i * 4096, &data, 0), 0);
            assert_eq!(c.read(2, i * 4096, 4096).unwrap(), data);
            c.s.flush().unwrap();
            c.disconnect();
        }
        server.kill_hard();
    }
}
