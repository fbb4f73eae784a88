//! echo shares one buffer ring of 512 buffers per core among its connections. A connection
//! used to keep the buffer of its last echo until its next receive, so 513 connections
//! that had each been echoed once held every buffer: the core served nothing more (new
//! clients included) until the idle timeout closed them (found by bench/src/bin/soak.rs).
//! A buffer must go back to the ring as soon as its echo is sent.

#[path = "support/example_bin.rs"]
mod example_bin;
#[path = "support/example_server.rs"]
mod example_server;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use example_server::Server;

/// More than the 512 buffers of one core's ring.
const CONNECTIONS: usize = 600;

fn echoed(s: &mut TcpStream, msg: &[u8]) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).is_ok() && back == msg
}

#[test]
fn buffers_return_to_the_ring_after_each_echo() {
    more_connections_than_buffers(|i| format!("client {i:04} says hello").into_bytes());
}

/// Chunks above 2 KiB are sent back from the ring buffer itself (small ones from a copy):
/// that buffer too must return once its send completes.
#[test]
fn ring_buffers_sent_back_whole_return_after_each_echo() {
    more_connections_than_buffers(|i| {
        let mut m = format!("client {i:04} sends 3000 bytes ").into_bytes();
        m.resize(3000, b'.');
        m
    });
}

fn more_connections_than_buffers(message: impl Fn(usize) -> Vec<u8>) {
    let server = Server::start(
        "echo",
        &[],
        &[
            "--listen",
            "127.0.0.1:0",
            "--cores",
            "1",
            "--idle-timeout",
            "5m",
        ],
        None,
    );
    let mut open = Vec::new();
    for i in 0..CONNECTIONS {
        let mut s = server.connect();
        let msg = message(i);
        assert!(
            echoed(&mut s, &msg),
            "connection {i} got no echo while {i} others were open and idle"
        );
        open.push(s);
    }
    // Every connection is still served, and so is a new one.
    for (i, s) in open.iter_mut().enumerate() {
        assert!(echoed(s, b"again"), "connection {i} got no second echo");
    }
    let mut fresh = server.connect();
    assert!(
        echoed(&mut fresh, b"new client"),
        "a new client got no echo"
    );
}
