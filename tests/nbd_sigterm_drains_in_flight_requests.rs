//! SIGTERM under load (issue 14): the server stops accepting, answers every request it has
//! received (a request it had not started may get `NBD_ESHUTDOWN` instead), closes idle
//! connections, syncs, and exits with status 0; every write it acknowledged is in the image.
//! Before, it exited at once with its queues unanswered.

mod nbd_common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use nbd_common::*;

const ESHUTDOWN: u32 = 108;
const DEPTH: u64 = 32;
const LEN: usize = 256 << 10;

#[test]
fn sigterm_answers_every_received_request_then_exits_cleanly() {
    let image = sparse_file("drain", 64 << 20);
    let mut server = Server::start(&["--image", image.path().to_str().unwrap(), "--cores", "1"]);
    let child = &mut server.child;
    let addr = server.addr;
    // An idle connection must not hold the stop up.
    let (idle, _, _) = Raw::ready(addr, false);
    let (mut c, _, _) = Raw::ready(addr, false);
    // A 32-deep queue of writes and reads, all sent before the signal.
    let mut sent = Vec::new();
    for i in 0..DEPTH {
        let data = pseudo_random(LEN, i + 1);
        let offset = i * LEN as u64;
        if i % 2 == 0 {
            c.request(0, CMD_WRITE, i, offset, LEN as u32);
            c.send(&data);
        } else {
            c.request(0, CMD_READ, i, offset, LEN as u32);
        }
        sent.push((i, offset, data));
    }
    // SAFETY: kill(2) on our own child's PID, not yet reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let mut answered = vec![None; DEPTH as usize];
    for _ in 0..DEPTH {
        let (error, handle) = c.simple();
        assert!(handle < DEPTH, "reply for unknown handle {handle}");
        assert!(
            error == 0 || error == ESHUTDOWN,
            "request {handle} failed with {error}"
        );
        if handle % 2 == 1 && error == 0 {
            c.read_n(LEN);
        }
        assert!(answered[handle as usize].replace(error).is_none());
    }
    // After its replies, the connection ends; so does the idle one.
    c.expect_closed();
    let mut idle = idle;
    idle.expect_closed();
    // The process exits by itself, successfully.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");
    // New clients are refused once it is gone.
    assert!(TcpStream::connect(addr).is_err());
    // Every acknowledged write is in the image.
    let bytes = std::fs::read(image.path()).unwrap();
    let mut acked = 0;
    for (i, offset, data) in &sent {
        if i % 2 == 0 && answered[*i as usize] == Some(0) {
            let at = *offset as usize;
            assert!(
                bytes[at..at + LEN] == data[..],
                "acknowledged write {i} is not in the image"
            );
            acked += 1;
        }
    }
    eprintln!(
        "{acked} of {} writes were acknowledged before the stop",
        DEPTH / 2
    );
}
