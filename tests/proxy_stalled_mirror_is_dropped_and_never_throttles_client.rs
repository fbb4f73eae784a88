//! A mirror that accepts and never reads, in each mode of `examples/proxy`
//! (`--max-buffered 1M`, so the default `--mirror-budget` is 512K):
//!
//! - the client is **not throttled**: it sends 256 MiB and gets all of it back from the
//!   echoing upstream while the mirror has read nothing at all — far more than the bound plus
//!   every kernel buffer on the way to the mirror could hold, so nothing waited for the
//!   mirror;
//! - the mirror is **dropped** once it is more than its budget behind the upstream: one
//!   stderr line naming `--mirror-budget`, `mirrors_dropped=1` in the stats, and its TCP
//!   connection reset (when it finally reads, it gets an error, never a clean end of stream);
//! - **memory stays bounded**: the proxy never holds more than the bound for the connection
//!   (`max_held_bytes`) and its RSS stays small;
//! - once the client leaves, **every socket of the connection closes**: the proxy's fd count
//!   returns to what it was before the client came.
//!
//! With `--mirror-budget off --mirror-timeout 1s` the mirror slows the client instead, until
//! it has taken nothing for the timeout: then it is dropped (the line names
//! `--mirror-timeout`) and the client finishes.
//!
//! On b3d7f92 (before mirrors had a budget) the client of the first case stopped after
//! about the bound plus the kernel's buffers and never finished. No timing is asserted: waits
//! only have deadlines, so a hang fails.

mod proxy_common;

use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use proxy_common::{
    Behaviour, MODES, Proxy, Seen, Server, read_pattern, send_pattern, set_buf, tcp_mem_max,
    wait_until,
};

const BOUND: u64 = 1 << 20;
/// `SO_SNDBUF` of the client and `SO_RCVBUF` of the mirror: the test's own sockets buffer
/// little.
const TEST_SOCK_BUF: u64 = 128 << 10;
/// Generous: a proxy that buffered for the mirror without bound would exceed it by far.
const RSS_LIMIT_KIB: u64 = 96 << 10;
const SEED: u64 = 0xdead_beef;
/// How long the client may take to send and get back everything (it takes well under a
/// second when nothing throttles it).
const DEADLINE: Duration = Duration::from_secs(20);

/// Run a client that sends `total` bytes through `proxy` and reads the echo back, waiting
/// at most `DEADLINE` for it to finish; returns (bytes sent, what came back).
fn client_transfer(mode: &str, proxy: &Proxy, total: u64) -> (u64, Seen) {
    let client = proxy.connect();
    set_buf(&client, libc::SO_SNDBUF, TEST_SOCK_BUF as usize);
    let sent = Arc::new(AtomicU64::new(0));
    let progress = Arc::clone(&sent);
    let mut writer = client.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let _ = send_pattern(&mut writer, SEED, total, Some(&progress));
        let _ = writer.shutdown(Shutdown::Write);
    });
    let mut reader = client.try_clone().unwrap();
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(read_pattern(&mut reader, SEED, 0));
    });
    let back = match done.recv_timeout(DEADLINE) {
        Ok(seen) => seen,
        Err(_) => {
            let n = sent.load(Ordering::Relaxed);
            // Unblock the client's threads before failing.
            let _ = client.shutdown(Shutdown::Both);
            panic!(
                "{mode}: the client did not get its echo back within {DEADLINE:?}: it sent \
                 {n} of {total} bytes (throttled by the stalled mirror?)"
            );
        }
    };
    sender.join().unwrap();
    drop(client);
    (sent.load(Ordering::Relaxed), back)
}

/// A mirror that reads nothing until `release` is sent.
fn stalled_mirror() -> (Server, mpsc::Sender<()>) {
    let (release, gate) = mpsc::channel();
    let mirror = Server::start_gated(
        Behaviour::Verify { seed: SEED },
        Some(gate),
        Some(TEST_SOCK_BUF as usize),
    );
    (mirror, release)
}

fn dropped_lines(proxy: &Proxy) -> Vec<String> {
    proxy
        .stderr_lines()
        .into_iter()
        .filter(|l| l.starts_with("proxy: mirror") && l.contains("dropped"))
        .collect()
}

/// After the client left: every socket of its connection closes, and the mirror, once it
/// reads, finds its connection reset.
fn all_closed(
    mode: &str,
    proxy: &Proxy,
    baseline: usize,
    mirror: &Server,
    release: &mpsc::Sender<()>,
) {
    wait_until(Duration::from_secs(10), "the connection to end", || {
        proxy.fresh_stats().conns == 0
    });
    proxy.wait_fds_back_to(baseline, Duration::from_secs(10));
    release.send(()).unwrap();
    let seen = mirror.next_seen();
    assert!(
        !seen.eof,
        "{mode}: the dropped mirror sees a reset, not a clean end of stream: {seen:?}"
    );
}

fn over_budget(mode: &str) {
    // How far a throttled client could get: the bound plus the kernel's buffers on the way
    // (the proxy's receive buffer from the client, its send buffer to the mirror, and the
    // test's own sockets, which the kernel doubles).
    let kernel_slack = tcp_mem_max("tcp_rmem") + tcp_mem_max("tcp_wmem") + 4 * TEST_SOCK_BUF;
    let reachable = BOUND + kernel_slack;
    let total = (256u64 << 20).max(4 * reachable);

    let upstream = Server::start(Behaviour::Echo { seed: SEED, xor: 0 });
    let (mirror, release) = stalled_mirror();
    let proxy = Proxy::with(
        mode,
        upstream.addr,
        &[mirror.addr],
        &["--max-buffered", "1M", "--buf-size", "64K"],
    );
    let baseline = proxy.fd_count();
    let started = Instant::now();
    let (sent, back) = client_transfer(mode, &proxy, total);
    let stats = proxy.fresh_stats();
    let rss = proxy.rss_kib();
    eprintln!(
        "{mode}: the client sent {} MiB and got {} MiB back in {:?} while the mirror read \
         nothing (a throttled client stops near {} KiB); stats {stats:?}; RSS {rss} KiB",
        sent >> 20,
        back.bytes >> 20,
        started.elapsed(),
        reachable >> 10
    );
    assert_eq!(sent, total, "{mode}: the client sent everything");
    assert_eq!(
        (back.bytes, back.intact, back.eof),
        (total, true, true),
        "{mode}: the client got its whole echo back while the mirror was stalled"
    );
    assert!(
        total > reachable,
        "the transfer is larger than what a throttled client could send"
    );
    let up = upstream.next_seen();
    assert_eq!(
        (up.bytes, up.intact, up.eof),
        (total, true, true),
        "{mode}: the upstream got every byte"
    );
    assert_eq!(stats.bound, BOUND, "{mode}: the stats report the bound");
    assert!(
        stats.max_held_bytes <= BOUND,
        "{mode}: the proxy held {} bytes for the connection, over its bound {BOUND}",
        stats.max_held_bytes
    );
    assert!(rss < RSS_LIMIT_KIB, "{mode}: the proxy's RSS is {rss} KiB");
    assert_eq!(
        stats.mirrors_dropped, 1,
        "{mode}: the mirror was dropped once"
    );
    let lines = dropped_lines(&proxy);
    assert_eq!(lines.len(), 1, "{mode}: one line for the drop: {lines:?}");
    assert!(
        lines[0].contains("--mirror-budget"),
        "{mode}: the line says why: {}",
        lines[0]
    );
    all_closed(mode, &proxy, baseline, &mirror, &release);
}

fn stalled_past_timeout(mode: &str) {
    let total = 32u64 << 20;
    let upstream = Server::start(Behaviour::Echo { seed: SEED, xor: 0 });
    let (mirror, release) = stalled_mirror();
    let proxy = Proxy::with(
        mode,
        upstream.addr,
        &[mirror.addr],
        &[
            "--max-buffered",
            "1M",
            "--mirror-budget",
            "off",
            "--mirror-timeout",
            "1s",
        ],
    );
    let baseline = proxy.fd_count();
    let (sent, back) = client_transfer(mode, &proxy, total);
    assert_eq!(sent, total, "{mode}: the client sent everything");
    assert_eq!(
        (back.bytes, back.intact, back.eof),
        (total, true, true),
        "{mode}: the client got its whole echo back once the mirror was dropped"
    );
    let stats = proxy.fresh_stats();
    assert_eq!(
        stats.mirrors_dropped, 1,
        "{mode}: the mirror was dropped once"
    );
    assert!(
        stats.max_held_bytes <= BOUND,
        "{mode}: bound kept: {stats:?}"
    );
    let lines = dropped_lines(&proxy);
    assert_eq!(lines.len(), 1, "{mode}: one line for the drop: {lines:?}");
    assert!(
        lines[0].contains("--mirror-timeout"),
        "{mode}: the line says why: {}",
        lines[0]
    );
    all_closed(mode, &proxy, baseline, &mirror, &release);
}

#[test]
fn lease_mode_drops_a_stalled_mirror_and_never_throttles_the_client() {
    over_budget(MODES[0]);
}

#[test]
fn splice_mode_drops_a_stalled_mirror_and_never_throttles_the_client() {
    over_budget(MODES[1]);
}

#[test]
fn copy_mode_drops_a_stalled_mirror_and_never_throttles_the_client() {
    over_budget(MODES[2]);
}

#[test]
fn lease_mode_without_budget_drops_a_mirror_stalled_past_its_timeout() {
    stalled_past_timeout(MODES[0]);
}

#[test]
fn splice_mode_without_budget_drops_a_mirror_stalled_past_its_timeout() {
    stalled_past_timeout(MODES[1]);
}

#[test]
fn copy_mode_without_budget_drops_a_mirror_stalled_past_its_timeout() {
    stalled_past_timeout(MODES[2]);
}
