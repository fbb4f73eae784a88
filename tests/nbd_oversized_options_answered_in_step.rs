//! Options with a lot of data (issue 14 defect 8): the protocol lets a GO carry 65,535
//! information requests (131 KiB), and a client may send an option far longer than any the
//! server understands. Legal ones are answered normally; an over-long one is read off and
//! answered `ERR_TOO_BIG`, and the next option on the same connection works. Only a
//! handshake past its 16 MiB budget is closed, after the `ERR_TOO_BIG`.

mod nbd_common;

use std::io::Write;

use nbd_common::*;

const INFO_NAME: u16 = 1;
const INFO_DESCRIPTION: u16 = 2;
const INFO_BLOCK_SIZE: u16 = 3;
const MIB: usize = 1 << 20;

fn server() -> (Server, TempPath) {
    let image = sparse_file("big-opt", 16 << 20);
    let s = Server::start(&["--image", image.path().to_str().unwrap()]);
    (s, image)
}

/// Send an option whole; a server that closes before taking all of it fails the test here.
fn send_option(c: &mut Raw, opt: u32, data: &[u8]) {
    c.option_header(opt, data.len() as u32);
    if let Err(e) = c.s.write_all(data) {
        panic!(
            "the server closed the connection while option {opt} with {} bytes of data was \
             being sent: {e}",
            data.len()
        );
    }
}

/// The next option reply; a reset or end of stream fails the test with what was expected.
fn reply_to(c: &mut Raw, what: &str) -> (u32, u32, Vec<u8>) {
    let mut h = [0u8; 20];
    if let Err(e) = std::io::Read::read_exact(&mut c.s, &mut h) {
        panic!("no reply to {what}: {e}");
    }
    assert_eq!(be64(&h[0..8]), OPT_REPLY_MAGIC);
    let len = be32(&h[16..20]) as usize;
    (be32(&h[8..12]), be32(&h[12..16]), c.read_n(len))
}

fn go_data(name: &[u8], requests: &[u16]) -> Vec<u8> {
    let mut d = (name.len() as u32).to_be_bytes().to_vec();
    d.extend_from_slice(name);
    d.extend_from_slice(&(requests.len() as u16).to_be_bytes());
    for r in requests {
        d.extend_from_slice(&r.to_be_bytes());
    }
    d
}

/// LIST answers (the connection is in step).
fn list_works(c: &mut Raw) {
    c.option(OPT_LIST, &[]);
    assert_eq!(reply_to(c, "LIST").1, REP_SERVER);
    assert_eq!(reply_to(c, "LIST").1, REP_ACK);
}

#[test]
fn go_with_65000_information_requests_is_answered() {
    let (s, _img) = server();
    let mut c = Raw::greet(s.addr);
    // Known and unknown requests; a real client would not repeat them, the count is the point.
    let kinds = [INFO_NAME, INFO_DESCRIPTION, INFO_BLOCK_SIZE, 0x7777];
    let requests: Vec<u16> = (0..65_000).map(|i| kinds[i % kinds.len()]).collect();
    send_option(&mut c, OPT_GO, &go_data(b"", &requests));
    let mut infos = Vec::new();
    loop {
        let (opt, kind, data) = reply_to(&mut c, "a GO with 65,000 information requests");
        assert_eq!(opt, OPT_GO);
        match kind {
            REP_INFO => infos.push(be16(&data)),
            REP_ACK => break,
            other => panic!("GO answered {other:#x}: {}", String::from_utf8_lossy(&data)),
        }
    }
    infos.sort_unstable();
    assert_eq!(infos, [0, INFO_NAME, INFO_DESCRIPTION, INFO_BLOCK_SIZE]);
    // Transmission works.
    assert_eq!(c.read(1, 0, 512).unwrap(), vec![0; 512]);
    c.disconnect();
}

#[test]
fn the_largest_legal_info_is_answered_and_negotiation_goes_on() {
    let (s, _img) = server();
    let mut c = Raw::greet(s.addr);
    // A 4096-byte name and 65,535 requests: 135,178 bytes, all legal.
    let requests = vec![INFO_BLOCK_SIZE; 65_535];
    send_option(&mut c, OPT_INFO, &go_data(&[b'n'; 4096], &requests));
    let (opt, kind, _) = reply_to(&mut c, "the largest legal INFO");
    assert_eq!(
        (opt, kind),
        (OPT_INFO, REP_ERR_UNKNOWN),
        "the export is named \"\""
    );
    list_works(&mut c);
    c.go();
    c.disconnect();
}

#[test]
fn a_one_mib_option_gets_too_big_and_the_next_option_works() {
    let (s, _img) = server();
    let mut c = Raw::greet(s.addr);
    for opt in [OPT_LIST, 0x4242, OPT_GO] {
        send_option(&mut c, opt, &vec![0x5a; MIB]);
        let (echo, kind, msg) = reply_to(&mut c, "a 1 MiB option");
        assert_eq!(
            (echo, kind),
            (opt, REP_ERR_TOO_BIG),
            "{}",
            String::from_utf8_lossy(&msg)
        );
        list_works(&mut c);
    }
    let (size, _) = c.go();
    assert_eq!(size, 16 << 20);
    assert_eq!(c.write(1, 4096, &[7; 4096], 0), 0);
    c.disconnect();
    still_serves(s.addr, 8192);
}

#[test]
fn a_handshake_past_16_mib_is_closed_after_too_big() {
    let (s, _img) = server();
    let mut c = Raw::greet(s.addr);
    // 15 options of 1 MiB fit in the budget; each is answered.
    for i in 0..15 {
        send_option(&mut c, 0x4242, &vec![0; MIB]);
        let (_, kind, _) = reply_to(&mut c, &format!("1 MiB option {i}"));
        assert_eq!(kind, REP_ERR_TOO_BIG);
    }
    // The 16th would take the handshake past 16 MiB: answered at its header, then closed.
    c.option_header(0x4242, MIB as u32);
    let (opt, kind, _) = reply_to(&mut c, "the option past the budget");
    assert_eq!((opt, kind), (0x4242, REP_ERR_TOO_BIG));
    c.expect_closed();
    still_serves(s.addr, 0);
}
