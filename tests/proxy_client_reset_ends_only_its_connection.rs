//! A client that resets in the middle of a transfer ends only its own connection through
//! `examples/proxy`, in each mode: another client's transfer, running at the same time on the
//! same core, completes intact; the proxy keeps running and, once the reset connection is
//! gone, holds none of its fds.

mod proxy_common;

use std::net::Shutdown;
use std::time::Duration;

use proxy_common::{Behaviour, LOSSLESS, MODES, Proxy, Server, read_pattern, reset, send_pattern};

const TOTAL: u64 = 64 << 20;

fn reset_mid_transfer(mode: &str) {
    // The upstream and the mirror verify the good client's stream; the resetting client's
    // connection is reported as not intact (different bytes) or cut short, and is ignored.
    let upstream = Server::start(Behaviour::Echo { seed: 11, xor: 0 });
    let mirror = Server::start(Behaviour::Verify { seed: 11 });
    let mut proxy = Proxy::with(mode, upstream.addr, &[mirror.addr], &LOSSLESS);
    let baseline = proxy.fd_count();

    let mut bad = proxy.connect();
    send_pattern(&mut bad, 99, 4 << 20, None).unwrap();
    let good = proxy.connect();
    let mut reader = good.try_clone().unwrap();
    let replies = std::thread::spawn(move || read_pattern(&mut reader, 11, 0));
    let mut writer = good.try_clone().unwrap();
    let sender = std::thread::spawn(move || send_pattern(&mut writer, 11, TOTAL, None));
    reset(bad);
    sender
        .join()
        .unwrap()
        .expect("the good client sends everything");
    good.shutdown(Shutdown::Write).unwrap();
    let back = replies.join().unwrap();
    assert_eq!(
        (back.bytes, back.intact, back.eof),
        (TOTAL, true, true),
        "{mode}: the other client's echo is complete"
    );
    // Two upstream and two mirror connections finished: one of each is the good client's.
    for (who, server) in [("upstream", &upstream), ("mirror", &mirror)] {
        let seen = [server.next_seen(), server.next_seen()];
        assert!(
            seen.iter()
                .any(|s| (s.bytes, s.intact, s.eof) == (TOTAL, true, true)),
            "{mode}: the {who} got the good client's stream whole: {seen:?}"
        );
    }
    assert!(proxy.alive(), "{mode}: the proxy still runs");
    drop(good);
    proxy.wait_fds_back_to(baseline, Duration::from_secs(20));
}

#[test]
fn lease_mode_reset_ends_only_its_connection() {
    reset_mid_transfer(MODES[0]);
}

#[test]
fn splice_mode_reset_ends_only_its_connection() {
    reset_mid_transfer(MODES[1]);
}

#[test]
fn copy_mode_reset_ends_only_its_connection() {
    reset_mid_transfer(MODES[2]);
}
