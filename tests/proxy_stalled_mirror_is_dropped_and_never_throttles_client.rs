//! A mirror that stops reading, in each mode of `examples/proxy` (`--max-buffered 1M`):
//!
//! - the proxy never holds more than the bound for the connection (`max_held_bytes` of its
//!   `--stats` lines), and its resident memory stays small;
//! - the client is throttled: while the mirror reads nothing, the client cannot get further
//!   than the bound plus what the kernel's socket buffers on the way can hold, far short of
//!   the 256 MiB it wants to send (a proxy that buffered without bound would take it all);
//! - once the mirror reads again, every byte reaches it and the upstream, intact.
//!
//! How far the client gets is measured by its own byte counter, once that counter has stopped
//! moving. No timing is asserted: waits only have deadlines, so a hang fails.

mod proxy_common;

use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use proxy_common::{
    Behaviour, MODES, Proxy, Server, send_pattern, set_buf, tcp_mem_max, wait_until,
};

const BOUND: u64 = 1 << 20;
/// `SO_SNDBUF` of the client and `SO_RCVBUF` of the mirror: the test's own sockets buffer
/// little, so what the client gets through is mostly what the proxy's side holds.
const TEST_SOCK_BUF: u64 = 128 << 10;
/// Generous: an unbounded proxy would exceed it by far.
const RSS_LIMIT_KIB: u64 = 96 << 10;
const SEED: u64 = 0xdead_beef;

fn stalled_mirror(mode: &str) {
    // The proxy's two sockets on the stalled path grow their buffers by themselves: its
    // receive buffer from the client, its send buffer to the mirror. The kernel doubles the
    // test's own buffer sizes.
    let kernel_slack = tcp_mem_max("tcp_rmem") + tcp_mem_max("tcp_wmem") + 4 * TEST_SOCK_BUF;
    let reachable = BOUND + kernel_slack;
    let total = (256u64 << 20).max(4 * reachable);

    let (release, gate) = mpsc::channel();
    let upstream = Server::start(Behaviour::Verify { seed: SEED });
    let mirror = Server::start_gated(
        Behaviour::Verify { seed: SEED },
        Some(gate),
        Some(TEST_SOCK_BUF as usize),
    );
    let proxy = Proxy::with(
        mode,
        upstream.addr,
        &[mirror.addr],
        &["--max-buffered", "1M", "--buf-size", "64K"],
    );
    let mut client = proxy.connect();
    set_buf(&client, libc::SO_SNDBUF, TEST_SOCK_BUF as usize);
    let sent = Arc::new(AtomicU64::new(0));
    let progress = Arc::clone(&sent);
    let writer = std::thread::spawn(move || {
        send_pattern(&mut client, SEED, total, Some(&progress)).expect("the client sends");
        client.shutdown(Shutdown::Write).unwrap();
    });

    // Wait until the client stops making progress (the watchdog fails a test that never
    // stalls: it would have sent everything first).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = u64::MAX;
    let mut still = 0;
    while still < 10 {
        assert!(
            Instant::now() < deadline,
            "{mode}: the client never stalled"
        );
        std::thread::sleep(Duration::from_millis(50));
        let now = sent.load(Ordering::Relaxed);
        still = if now == last { still + 1 } else { 0 };
        last = now;
        assert!(
            now < total,
            "{mode}: the client sent everything while the mirror slept"
        );
    }
    let stalled_at = sent.load(Ordering::Relaxed);
    let during = proxy.fresh_stats();
    let rss = proxy.rss_kib();
    eprintln!(
        "{mode}: client stalled after {} KiB (bound {} KiB + kernel buffers up to {} KiB); \
         proxy held at most {} bytes; RSS {rss} KiB",
        stalled_at >> 10,
        BOUND >> 10,
        kernel_slack >> 10,
        during.max_held_bytes
    );
    assert!(
        stalled_at <= reachable,
        "{mode}: the client got {stalled_at} bytes through a stalled mirror, more than the \
         bound plus the kernel's buffers ({reachable})"
    );
    assert_eq!(
        during.bound, BOUND,
        "{mode}: the stats report the configured bound"
    );
    assert!(
        during.max_held_bytes <= BOUND,
        "{mode}: the proxy held {} bytes for the connection, over its bound {BOUND}",
        during.max_held_bytes
    );
    assert!(
        during.held_bytes > 0,
        "{mode}: the stalled connection holds its buffers"
    );
    assert!(rss < RSS_LIMIT_KIB, "{mode}: the proxy's RSS is {rss} KiB");

    // The mirror reads again: everything arrives.
    release.send(()).unwrap();
    writer.join().expect("the client thread");
    for (who, server) in [("upstream", &upstream), ("mirror", &mirror)] {
        let seen = server.next_seen();
        assert_eq!(seen.bytes, total, "{mode}: the {who} got every byte");
        assert!(
            seen.intact && seen.eof,
            "{mode}: the {who}'s bytes are intact: {seen:?}"
        );
    }
    wait_until(Duration::from_secs(20), "the connection to end", || {
        proxy.fresh_stats().conns == 0
    });
    let after = proxy.fresh_stats();
    assert!(
        after.max_held_bytes <= BOUND,
        "{mode}: bound kept to the end: {after:?}"
    );
    assert!(
        proxy.rss_kib() < RSS_LIMIT_KIB,
        "{mode}: RSS stayed bounded"
    );
}

#[test]
fn lease_mode_bounds_a_stalled_mirror() {
    stalled_mirror(MODES[0]);
}

#[test]
fn splice_mode_bounds_a_stalled_mirror() {
    stalled_mirror(MODES[1]);
}

#[test]
fn copy_mode_bounds_a_stalled_mirror() {
    stalled_mirror(MODES[2]);
}
