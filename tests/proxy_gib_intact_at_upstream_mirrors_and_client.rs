//! 1 GiB through `examples/proxy` in each mode (lease, splice, copy), with two mirrors: the
//! upstream and both mirrors receive every byte, in order, then end of stream; the upstream
//! echoes everything and the client gets exactly that echo back (bidirectional), then end of
//! stream.
//!
//! The second mirror talks back (it echoes every byte, inverted): the proxy must read and
//! drop that, or the mirror would stop reading once its send buffer filled and stall the
//! client; and none of it may reach the client, whose stream would then not match.
//!
//! The bytes are a seeded pseudo-random stream (`Pattern`), compared byte for byte at every
//! receiver.

mod proxy_common;

use std::net::Shutdown;
use std::time::Instant;

use proxy_common::{Behaviour, LOSSLESS, MODES, Proxy, Server, read_pattern, send_pattern};

const TOTAL: u64 = 1 << 30;
const SEED: u64 = 0x5eed_0001;

fn gib_through(mode: &str) {
    let upstream = Server::start(Behaviour::Echo { seed: SEED, xor: 0 });
    let quiet = Server::start(Behaviour::Verify { seed: SEED });
    let chatty = Server::start(Behaviour::Echo {
        seed: SEED,
        xor: 0xff,
    });
    let proxy = Proxy::with(mode, upstream.addr, &[quiet.addr, chatty.addr], &LOSSLESS);
    let client = proxy.connect();
    let mut reader = client.try_clone().unwrap();
    let replies = std::thread::spawn(move || read_pattern(&mut reader, SEED, 0));
    let start = Instant::now();
    let mut writer = client.try_clone().unwrap();
    send_pattern(&mut writer, SEED, TOTAL, None).expect("the client sends 1 GiB");
    client.shutdown(Shutdown::Write).unwrap();
    let back = replies.join().unwrap();
    let secs = start.elapsed().as_secs_f64();
    // Information only: tests never assert timings.
    eprintln!(
        "{mode}: 1 GiB to upstream + 2 mirrors and back in {secs:.2} s ({:.0} MB/s each way)",
        TOTAL as f64 / secs / 1e6
    );

    for (who, server) in [
        ("upstream", &upstream),
        ("quiet mirror", &quiet),
        ("chatty mirror", &chatty),
    ] {
        let seen = server.next_seen();
        assert_eq!(seen.bytes, TOTAL, "{mode}: the {who} got every byte");
        assert!(
            seen.intact,
            "{mode}: the {who}'s bytes are the client's, in order"
        );
        assert!(seen.eof, "{mode}: the {who} saw the client's end of stream");
    }
    assert_eq!(
        back.bytes, TOTAL,
        "{mode}: the client got the whole echo, nothing more"
    );
    assert!(
        back.intact,
        "{mode}: the echo is the upstream's, unmixed with the mirror's"
    );
    assert!(
        back.eof,
        "{mode}: the client saw the upstream's end of stream"
    );
}

#[test]
fn lease_mode_relays_a_gib_intact() {
    gib_through(MODES[0]);
}

#[test]
fn splice_mode_relays_a_gib_intact() {
    gib_through(MODES[1]);
}

#[test]
fn copy_mode_relays_a_gib_intact() {
    gib_through(MODES[2]);
}
