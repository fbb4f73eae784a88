//! Half-close through `examples/proxy`, in each mode: the client sends a request and shuts
//! down its write side; the upstream (and each mirror) then reads the whole request and its
//! end of stream — which it only sees if the proxy passed the client's FIN on; only *then*
//! does the upstream reply. The client, whose write side is already shut, still gets the
//! whole reply, then end of stream. Afterwards the proxy has closed every socket of the
//! connection: its fd count is back where it started.

mod proxy_common;

use std::net::Shutdown;
use std::time::Duration;

use proxy_common::{Behaviour, LOSSLESS, MODES, Proxy, Server, read_pattern, send_pattern};

const REQUEST: u64 = 300 << 10;
const REPLY: u64 = 700 << 10;

fn half_close(mode: &str) {
    let upstream = Server::start(Behaviour::ReplyAfterEof {
        seed: 1,
        reply_seed: 2,
        reply: REPLY,
    });
    let mirror = Server::start(Behaviour::Verify { seed: 1 });
    let proxy = Proxy::with(mode, upstream.addr, &[mirror.addr], &LOSSLESS);
    let baseline = proxy.fd_count();

    let mut client = proxy.connect();
    send_pattern(&mut client, 1, REQUEST, None).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let reply = read_pattern(&mut client, 2, 0);

    let up = upstream.next_seen();
    assert_eq!(
        (up.bytes, up.intact, up.eof),
        (REQUEST, true, true),
        "{mode}: the upstream got the request, then end of stream"
    );
    let m = mirror.next_seen();
    assert_eq!(
        (m.bytes, m.intact, m.eof),
        (REQUEST, true, true),
        "{mode}: the mirror got the request, then end of stream"
    );
    assert_eq!(
        (reply.bytes, reply.intact, reply.eof),
        (REPLY, true, true),
        "{mode}: after its own shutdown the client got the reply sent after the upstream's \
         EOF, then end of stream"
    );
    drop(client);
    proxy.wait_fds_back_to(baseline, Duration::from_secs(20));
}

#[test]
fn lease_mode_propagates_half_close() {
    half_close(MODES[0]);
}

#[test]
fn splice_mode_propagates_half_close() {
    half_close(MODES[1]);
}

#[test]
fn copy_mode_propagates_half_close() {
    half_close(MODES[2]);
}
