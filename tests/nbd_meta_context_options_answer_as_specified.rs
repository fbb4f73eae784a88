//! `NBD_OPT_LIST_META_CONTEXT` and `NBD_OPT_SET_META_CONTEXT` from a raw client (issue 13
//! item 4): `base:allocation` is listed for no query or `base:`, selected by its name once
//! structured replies are on, unknown contexts are simply not returned, errors are the
//! protocol's, and the last SET is the one that counts in transmission.

mod nbd_common;

use nbd_common::*;

const OPT_LIST_META_CONTEXT: u32 = 9;
const OPT_SET_META_CONTEXT: u32 = 10;
const OPT_EXTENDED_HEADERS: u32 = 11;
const REP_META_CONTEXT: u32 = 4;
const CMD_BLOCK_STATUS: u16 = 7;
const REPLY_TYPE_BLOCK_STATUS: u16 = 5;
const REPLY_TYPE_ERROR: u16 = (1 << 15) + 1;
const BASE_ALLOCATION: &[u8] = b"base:allocation";

fn server() -> (Server, TempPath) {
    let image = sparse_file("meta", 16 << 20);
    let s = Server::start(&["--image", image.path().to_str().unwrap()]);
    (s, image)
}

fn queries(export: &[u8], qs: &[&[u8]]) -> Vec<u8> {
    let mut d = (export.len() as u32).to_be_bytes().to_vec();
    d.extend_from_slice(export);
    d.extend_from_slice(&(qs.len() as u32).to_be_bytes());
    for q in qs {
        d.extend_from_slice(&(q.len() as u32).to_be_bytes());
        d.extend_from_slice(q);
    }
    d
}

/// Send a metadata context option; return the contexts it answered (id, name) and the final
/// reply type.
fn contexts(c: &mut Raw, opt: u32, data: &[u8]) -> (Vec<(u32, Vec<u8>)>, u32) {
    c.option(opt, data);
    let mut found = Vec::new();
    loop {
        let (echo, kind, payload) = c.option_reply();
        assert_eq!(echo, opt);
        if kind != REP_META_CONTEXT {
            return (found, kind);
        }
        found.push((be32(&payload[0..4]), payload[4..].to_vec()));
    }
}

fn base_allocation(id: u32) -> Vec<(u32, Vec<u8>)> {
    vec![(id, BASE_ALLOCATION.to_vec())]
}

#[test]
fn list_finds_base_allocation_and_ignores_unknown_contexts() {
    let (s, _img) = server();
    let mut c = Raw::greet(s.addr);
    // No query: every context. A LIST's context id is reserved and 0. Structured replies are
    // not needed for a LIST.
    let listed = contexts(&mut c, OPT_LIST_META_CONTEXT, &queries(b"", &[]));
    assert_eq!(listed, (base_allocation(0), REP_ACK));
    // The namespace as a wildcard, and the name itself (listed once).
    let q: [&[u8]; 2] = [b"base:", BASE_ALLOCATION];
    let listed = contexts(&mut c, OPT_LIST_META_CONTEXT, &queries(b"", &q));
    assert_eq!(listed, (base_allocation(0), REP_ACK));
    // Unknown namespaces and leaf names find nothing, which is no error.
    let q: [&[u8]; 4] = [
        b"qemu:dirty-bitmap:b",
        b"x-foo:bar",
        b"base:nope",
        b"nocolon",
    ];
    let listed = contexts(&mut c, OPT_LIST_META_CONTEXT, &queries(b"", &q));
    assert_eq!(listed, (vec![], REP_ACK));
    // Another export, malformed data.
    let q: [&[u8]; 1] = [BASE_ALLOCATION];
    let listed = contexts(&mut c, OPT_LIST_META_CONTEXT, &queries(b"other", &q));
    assert_eq!(listed, (vec![], REP_ERR_UNKNOWN));
    let mut short = queries(b"", &q);
    short.pop();
    let listed = contexts(&mut c, OPT_LIST_META_CONTEXT, &short);
    assert_eq!(listed, (vec![], REP_ERR_INVALID));
    // EXTENDED_HEADERS takes no data: refused, nothing negotiated, and still in step
    // (tests/nbd_extended_headers.rs covers the option itself).
    c.option(OPT_EXTENDED_HEADERS, &[0; 4]);
    assert_eq!(c.option_reply().1, REP_ERR_INVALID);
    c.go();
    c.disconnect();
}

#[test]
fn set_needs_structured_replies_and_selects_base_allocation() {
    let (s, _img) = server();
    let mut c = Raw::greet(s.addr);
    let q: [&[u8]; 1] = [BASE_ALLOCATION];
    let set = queries(b"", &q);
    assert_eq!(
        contexts(&mut c, OPT_SET_META_CONTEXT, &set),
        (vec![], REP_ERR_INVALID),
        "SET before structured replies"
    );
    c.option(OPT_STRUCTURED_REPLY, &[]);
    assert_eq!(c.option_reply().1, REP_ACK);
    let (found, last) = contexts(&mut c, OPT_SET_META_CONTEXT, &set);
    assert_eq!(last, REP_ACK);
    assert_eq!(found.len(), 1);
    assert_ne!(found[0].0, 0, "a SET gives the context an id");
    assert_eq!(found[0].1, BASE_ALLOCATION);
    // Errors: another export, a count with no query behind it.
    let other = contexts(&mut c, OPT_SET_META_CONTEXT, &queries(b"x", &q));
    assert_eq!(other, (vec![], REP_ERR_UNKNOWN));
    let mut miscounted = queries(b"", &q);
    miscounted[7] = 2;
    let bad = contexts(&mut c, OPT_SET_META_CONTEXT, &miscounted);
    assert_eq!(bad, (vec![], REP_ERR_INVALID));
    // The selection is the last SET's: select again, then GO, and block status answers.
    let again = contexts(&mut c, OPT_SET_META_CONTEXT, &set);
    assert_eq!(again, (found.clone(), REP_ACK));
    c.go();
    c.request(0, CMD_BLOCK_STATUS, 1, 0, 4096);
    match c.reply() {
        Reply::Chunk { kind, payload, .. } => {
            assert_eq!(kind, REPLY_TYPE_BLOCK_STATUS);
            assert_eq!(be32(&payload[0..4]), found[0].0, "the id the SET gave");
        }
        r => panic!("expected a block status chunk, got {r:?}"),
    }
    c.disconnect();
}

#[test]
fn a_later_set_that_selects_nothing_replaces_the_selection() {
    let (s, _img) = server();
    let mut c = Raw::greet(s.addr);
    c.option(OPT_STRUCTURED_REPLY, &[]);
    assert_eq!(c.option_reply().1, REP_ACK);
    let q: [&[u8]; 1] = [BASE_ALLOCATION];
    let (found, _) = contexts(&mut c, OPT_SET_META_CONTEXT, &queries(b"", &q));
    assert_eq!(found.len(), 1);
    // `base:` is a wildcard for LIST only; in a SET it selects nothing.
    let q: [&[u8]; 1] = [b"base:"];
    let nothing = contexts(&mut c, OPT_SET_META_CONTEXT, &queries(b"", &q));
    assert_eq!(nothing, (vec![], REP_ACK));
    c.go();
    // No context selected: block status is refused with EINVAL, and the connection goes on.
    c.request(0, CMD_BLOCK_STATUS, 1, 0, 4096);
    match c.reply() {
        Reply::Chunk { kind, payload, .. } => {
            assert_eq!(kind, REPLY_TYPE_ERROR);
            assert_eq!(be32(&payload[0..4]), EINVAL);
        }
        r => panic!("expected an error chunk, got {r:?}"),
    }
    c.request(0, CMD_READ, 2, 0, 512);
    assert!(matches!(c.reply(), Reply::Chunk { handle: 2, .. }));
    c.disconnect();
}
