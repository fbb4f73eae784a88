//! An upstream that refuses the connection: `examples/proxy` closes the client cleanly (the
//! client reads end of stream or a reset, never hangs), says so in exactly one stderr line,
//! and keeps running: once the upstream listens, the next client is served end to end.
//! A mirror that refuses is only left out: the client and the upstream talk as usual.

mod proxy_common;

use std::io::{ErrorKind, Read};
use std::net::{Shutdown, TcpListener};
use std::time::Duration;

use proxy_common::{
    Behaviour, MODES, Proxy, Server, closed_port, read_pattern, send_pattern, wait_until,
};

/// The client's socket is closed by the proxy: end of stream or a reset, within the read
/// timeout (a hang fails the test).
fn assert_closed(client: &mut std::net::TcpStream, mode: &str) {
    let mut buf = [0u8; 64];
    match client.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("{mode}: the client was not closed: {other:?}"),
    }
}

fn refused_then_served(mode: &str) {
    let upstream_addr = closed_port();
    let proxy = Proxy::with(mode, upstream_addr, &[], &[]);

    let mut client = proxy.connect();
    assert_closed(&mut client, mode);
    let wanted = format!("upstream {upstream_addr}: connect");
    wait_until(Duration::from_secs(10), "the proxy's stderr line", || {
        proxy.stderr_lines().iter().any(|l| l.contains(&wanted))
    });
    let lines: Vec<String> = proxy
        .stderr_lines()
        .into_iter()
        .filter(|l| !l.starts_with("proxy-stats:"))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "{mode}: one stderr line for the refusal: {lines:?}"
    );
    assert!(
        lines[0].contains("refused"),
        "{mode}: it names the cause: {lines:?}"
    );

    // The same address now listens: the proxy serves the next client.
    let listener = TcpListener::bind(upstream_addr).unwrap_or_else(|e| {
        panic!("re-binding the upstream port {upstream_addr} for the second client: {e}")
    });
    let upstream = Server::start_on(listener, Behaviour::Echo { seed: 7, xor: 0 }, None);
    let mut client = proxy.connect();
    send_pattern(&mut client, 7, 1 << 20, None).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let back = read_pattern(&mut client, 7, 0);
    assert_eq!(
        (back.bytes, back.intact, back.eof),
        (1 << 20, true, true),
        "{mode}"
    );
    let up = upstream.next_seen();
    assert_eq!(
        (up.bytes, up.intact, up.eof),
        (1 << 20, true, true),
        "{mode}"
    );
}

fn refused_mirror_left_out(mode: &str) {
    let upstream = Server::start(Behaviour::Echo { seed: 9, xor: 0 });
    let mirror_addr = closed_port();
    let proxy = Proxy::with(mode, upstream.addr, &[mirror_addr], &[]);
    let mut client = proxy.connect();
    send_pattern(&mut client, 9, 1 << 20, None).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let back = read_pattern(&mut client, 9, 0);
    assert_eq!(
        (back.bytes, back.intact, back.eof),
        (1 << 20, true, true),
        "{mode}"
    );
    let wanted = format!("mirror {mirror_addr}: connect");
    wait_until(Duration::from_secs(10), "the proxy's stderr line", || {
        proxy.stderr_lines().iter().any(|l| l.contains(&wanted))
    });
}

#[test]
fn lease_mode_closes_the_client_and_keeps_serving() {
    refused_then_served(MODES[0]);
}

#[test]
fn splice_mode_closes_the_client_and_keeps_serving() {
    refused_then_served(MODES[1]);
}

#[test]
fn copy_mode_closes_the_client_and_keeps_serving() {
    refused_then_served(MODES[2]);
}

#[test]
fn a_refused_mirror_is_left_out() {
    for mode in MODES {
        refused_mirror_left_out(mode);
    }
}
