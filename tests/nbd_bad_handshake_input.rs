//! Bad input during the handshake, from a raw client: each gets the protocol's error reply
//! (and negotiation continues) or a clean close of that connection only; the server keeps
//! serving other clients afterwards.

mod nbd_common;

use nbd_common::*;

fn server() -> (Server, TempPath) {
    let image = sparse_file("bad-hs", 16 << 20);
    let s = Server::start(&["--image", image.path().to_str().unwrap()]);
    (s, image)
}

#[test]
fn unknown_option_gets_unsup_and_negotiation_continues() {
    let (s, _img) = server();
    let mut c = Raw::greet(s.addr);
    // An unknown option with data: the data is consumed, the reply is ERR_UNSUP.
    c.option(0x4242, &[7u8; 300]);
    let (opt, kind, _) = c.option_reply();
    assert_eq!((opt, kind), (0x4242, REP_ERR_UNSUP));
    // STARTTLS is not offered either.
    c.option(5, &[]);
    assert_eq!(c.option_reply().1, REP_ERR_UNSUP);
    // EXTENDED_HEADERS with data is malformed: refused, and transmission stays compact.
    c.option(11, &[1, 2, 3]);
    assert_eq!(c.option_reply().1, REP_ERR_INVALID);
    // Still in step: LIST, INFO and GO work on this connection.
    c.option(OPT_LIST, &[]);
    let (_, kind, data) = c.option_reply();
    assert_eq!(kind, REP_SERVER);
    assert_eq!(be32(&data[0..4]), 0, "the default export is named \"\"");
    assert_eq!(c.option_reply().1, REP_ACK);
    let (size, flags) = c.go();
    assert_eq!(size, 16 << 20);
    assert_eq!(flags & 1, 1, "HAS_FLAGS");
    assert_eq!(c.read(1, 0, 512).unwrap(), vec![0; 512]);
    c.disconnect();
    still_serves(s.addr, 0);
}

#[test]
fn malformed_options_get_invalid_and_unknown_export_gets_unknown() {
    let (s, _img) = server();
    let mut c = Raw::greet(s.addr);
    c.option(OPT_LIST, b"junk");
    assert_eq!(c.option_reply().1, REP_ERR_INVALID);
    c.option(OPT_STRUCTURED_REPLY, b"x");
    assert_eq!(c.option_reply().1, REP_ERR_INVALID);
    // INFO whose name length runs past the data.
    c.option(OPT_INFO, &[0, 0, 1, 0, 0, 0]);
    assert_eq!(c.option_reply().1, REP_ERR_INVALID);
    // GO for an export that does not exist.
    let mut go = 3u32.to_be_bytes().to_vec();
    go.extend_from_slice(b"foo");
    go.extend_from_slice(&0u16.to_be_bytes());
    c.option(OPT_GO, &go);
    assert_eq!(c.option_reply().1, REP_ERR_UNKNOWN);
    // Then the real one.
    c.go();
    c.disconnect();
}

#[test]
fn oversized_option_length_gets_too_big_then_close() {
    let (s, _img) = server();
    let mut c = Raw::greet(s.addr);
    c.option_header(OPT_INFO, u32::MAX);
    let (opt, kind, _) = c.option_reply();
    assert_eq!((opt, kind), (OPT_INFO, REP_ERR_TOO_BIG));
    c.expect_closed();
    still_serves(s.addr, 4096);
}

#[test]
fn wrong_option_magic_closes_only_that_connection() {
    let (s, _img) = server();
    let mut c = Raw::greet(s.addr);
    let mut other = Raw::ready(s.addr, true).0;
    c.send(&[0xde; 16]);
    c.expect_closed();
    // The other connection, opened before, is unaffected.
    assert_eq!(other.write(1, 0, &[1, 2, 3], 0), 0);
    other.disconnect();
    still_serves(s.addr, 8192);
}

#[test]
fn unknown_client_flags_close_the_connection() {
    let (s, _img) = server();
    let mut c = Raw::connect(s.addr);
    c.read_n(18);
    c.send(&0x8000_0001u32.to_be_bytes());
    c.expect_closed();
    still_serves(s.addr, 0);
}

#[test]
fn export_name_for_unknown_export_closes_and_abort_is_acked() {
    let (s, _img) = server();
    let mut c = Raw::greet(s.addr);
    c.option(OPT_EXPORT_NAME, b"nope");
    c.expect_closed();

    let mut c = Raw::greet(s.addr);
    c.option(OPT_ABORT, &[]);
    assert_eq!(c.option_reply().1, REP_ACK);
    c.expect_closed();

    // EXPORT_NAME for the default export, without zeroes (NO_ZEROES negotiated).
    let mut c = Raw::greet(s.addr);
    c.option(OPT_EXPORT_NAME, &[]);
    let info = c.read_n(10);
    assert_eq!(be64(&info[0..8]), 16 << 20);
    assert_eq!(c.read(1, 100, 10).unwrap(), vec![0; 10]);
    c.disconnect();
}
