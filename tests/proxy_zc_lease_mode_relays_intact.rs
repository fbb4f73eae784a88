//! Lease mode with `--zc` (`SEND_ZC` from the registered buffer ring, each send completing
//! at the kernel's notification): 256 MiB through `examples/proxy` to the upstream and two
//! mirrors arrive intact at all three, and the upstream's echo reaches the client intact.

mod proxy_common;

use std::net::Shutdown;

use proxy_common::{Behaviour, LOSSLESS, Proxy, Server, read_pattern, send_pattern};

const TOTAL: u64 = 256 << 20;
const SEED: u64 = 0x2c0_4ead;

#[test]
fn zero_copy_sends_relay_intact() {
    let upstream = Server::start(Behaviour::Echo { seed: SEED, xor: 0 });
    let mirrors = [
        Server::start(Behaviour::Verify { seed: SEED }),
        Server::start(Behaviour::Verify { seed: SEED }),
    ];
    let proxy = Proxy::with(
        "lease",
        upstream.addr,
        &[mirrors[0].addr, mirrors[1].addr],
        &["--zc", LOSSLESS[0], LOSSLESS[1]],
    );
    let client = proxy.connect();
    let mut reader = client.try_clone().unwrap();
    let replies = std::thread::spawn(move || read_pattern(&mut reader, SEED, 0));
    let mut writer = client.try_clone().unwrap();
    send_pattern(&mut writer, SEED, TOTAL, None).expect("the client sends");
    client.shutdown(Shutdown::Write).unwrap();
    let back = replies.join().unwrap();
    for server in [&upstream, &mirrors[0], &mirrors[1]] {
        let seen = server.next_seen();
        assert_eq!((seen.bytes, seen.intact, seen.eof), (TOTAL, true, true));
    }
    assert_eq!((back.bytes, back.intact, back.eof), (TOTAL, true, true));
}
