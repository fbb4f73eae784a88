//! 1,000 short connections through `examples/proxy` in each mode, on two cores (four clients at a time,
//! each: connect, send 1 KiB, shut down, read the echo to its end), with one mirror: every
//! exchange is byte-exact, and afterwards the proxy's fd count (`/proc/<pid>/fd`) is back
//! to what it was before the first one, and its stats count no open connection and no held
//! byte.

mod proxy_common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::Duration;

use proxy_common::{Behaviour, MODES, Proxy, Server, wait_until};

const CONNECTIONS: usize = 1000;
const CLIENTS: usize = 4;

fn short_connections(mode: &str) {
    let upstream = Server::start(Behaviour::PlainEcho);
    let mirror = Server::start(Behaviour::PlainEcho);
    let proxy = Arc::new(Proxy::with(
        mode,
        upstream.addr,
        &[mirror.addr],
        &["--cores", "2"],
    ));
    let baseline = proxy.fd_count();

    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let proxy = Arc::clone(&proxy);
            std::thread::spawn(move || {
                for i in 0..CONNECTIONS / CLIENTS {
                    let msg: Vec<u8> = (0..1024).map(|j| (c * 31 + i * 7 + j) as u8).collect();
                    let mut s = proxy.connect();
                    s.write_all(&msg).unwrap();
                    s.shutdown(Shutdown::Write).unwrap();
                    let mut back = Vec::new();
                    s.read_to_end(&mut back).unwrap();
                    assert!(back == msg, "connection {c}/{i}: the echo is the request");
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("a client thread");
    }

    proxy.wait_fds_back_to(baseline, Duration::from_secs(30));
    wait_until(
        Duration::from_secs(30),
        "no open connection in the stats",
        || {
            let s = proxy.fresh_stats();
            s.conns == 0 && s.held_bytes == 0
        },
    );
    let s = proxy.fresh_stats();
    assert_eq!(
        s.accepted, CONNECTIONS as u64,
        "{mode}: every connection was served"
    );
}

#[test]
fn lease_mode_leaks_no_fds() {
    short_connections(MODES[0]);
}

#[test]
fn splice_mode_leaks_no_fds() {
    short_connections(MODES[1]);
}

#[test]
fn copy_mode_leaks_no_fds() {
    short_connections(MODES[2]);
}
