//! A burst of short connections through `examples/proxy`, in each mode, with its default
//! sizes: 200 clients connected at once, each sending 4 KiB and reading them back from an
//! echoing upstream, then all of them held open (idle) while the proxy is looked at:
//!
//! - every client gets its 4 KiB back, intact;
//! - the proxy stays small: its RSS is far below what a buffer ring per connection direction
//!   would take (`2 x --max-buffered` = 8 MiB a connection, 1.6 GB for the burst), and in
//!   lease mode it maps no buffer ring at all (`rings=0`): a connection gets one only once it
//!   carries a stream;
//! - idle connections park no io-wq worker thread: the proxy's `iou-wrk-*` threads stay
//!   within the runtime's default cap (64 per ring), where splice mode used to block two
//!   workers per idle connection (a splice waiting for data in each direction);
//! - once the clients close, every socket of theirs is closed (fd count back to baseline).
//!
//! On b3d7f92: lease mode's RSS during the burst was about 1.6 GB, and splice mode had about
//! 400 io-wq workers. No timing is asserted.

mod proxy_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use proxy_common::{Behaviour, MODES, Proxy, Server, wait_until};

const CLIENTS: usize = 200;
const MSG: usize = 4096;
/// A few MiB per connection would show far above this.
const RSS_LIMIT_KIB: u64 = 160 << 10;
/// The runtime's default cap on unbounded io-wq workers per ring (`Builder::iowq_max_workers`).
const IOWQ_CAP: usize = 64;

fn burst(mode: &str) {
    let upstream = Server::start(Behaviour::PlainEcho);
    let proxy = Proxy::with(mode, upstream.addr, &[], &[]);
    let baseline = proxy.fd_count();
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| proxy.connect()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        let msg: Vec<u8> = (0..MSG).map(|j| (i * 13 + j) as u8).collect();
        c.write_all(&msg).expect("the client sends its request");
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let mut back = vec![0u8; MSG];
        c.read_exact(&mut back).expect("the client reads its echo");
        assert!(
            back.iter()
                .enumerate()
                .all(|(j, &b)| b == (i * 13 + j) as u8),
            "{mode}: client {i} got its own bytes back"
        );
    }
    // Every connection is open and idle now.
    let stats = proxy.fresh_stats();
    let rss = proxy.rss_kib();
    let (threads, iowq) = proxy.threads();
    eprintln!(
        "{mode}: {CLIENTS} idle connections: RSS {rss} KiB, {threads} threads ({iowq} io-wq \
         workers), {stats:?}"
    );
    assert_eq!(
        stats.conns, CLIENTS as u64,
        "{mode}: every connection is open"
    );
    assert!(
        rss < RSS_LIMIT_KIB,
        "{mode}: RSS {rss} KiB with {CLIENTS} short connections open"
    );
    if mode == "lease" {
        assert_eq!(
            stats.rings, 0,
            "{mode}: no buffer ring for connections that carry no stream"
        );
    }
    assert!(
        iowq <= IOWQ_CAP,
        "{mode}: {iowq} io-wq workers for {CLIENTS} idle connections"
    );
    drop(clients);
    wait_until(Duration::from_secs(20), "every connection to end", || {
        proxy.fresh_stats().conns == 0
    });
    proxy.wait_fds_back_to(baseline, Duration::from_secs(10));
}

#[test]
fn lease_mode_burst_stays_small() {
    burst(MODES[0]);
}

#[test]
fn splice_mode_burst_stays_small() {
    burst(MODES[1]);
}

#[test]
fn copy_mode_burst_stays_small() {
    burst(MODES[2]);
}
