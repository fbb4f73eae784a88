//! Extended headers (`NBD_OPT_EXTENDED_HEADERS`, issue 13 item 4) from a raw client: the
//! option is acknowledged (without structured replies first, and again), refused with data,
//! outranks `NBD_OPT_STRUCTURED_REPLY` (`ERR_EXT_HEADER_REQD`) and excludes
//! `NBD_OPT_EXPORT_NAME`; then every request is a 32-byte header with a 64-bit length and
//! every reply a 32-byte extended chunk repeating the request's offset, checked byte by
//! byte here: `NONE` for successes without data, `OFFSET_DATA` for reads, `ERROR` chunks,
//! `BLOCK_STATUS_EXT` with 16-byte descriptors. On a 16 GiB sparse image, WRITE_ZEROES,
//! TRIM and BLOCK_STATUS cover more than 4 GiB in one request, and one extent is longer
//! than 4 GiB; READ and WRITE stay within the advertised 32 MiB (EINVAL, EOVERFLOW with
//! "don't fragment", a hard disconnect for an announced payload over it) and every refusal
//! but that last leaves the connection in step.

mod nbd_common;

use std::os::unix::fs::{FileExt, MetadataExt};

use nbd_common::*;

const OPT_SET_META_CONTEXT: u32 = 10;
const OPT_EXTENDED_HEADERS: u32 = 11;
const REP_META_CONTEXT: u32 = 4;
const REP_ERR_EXT_HEADER_REQD: u32 = (1 << 31) + 10;
const EXTENDED_REQUEST_MAGIC: u32 = 0x21e4_1c71;
const EXTENDED_REPLY_MAGIC: u32 = 0x6e8a_278c;
const CMD_BLOCK_STATUS: u16 = 7;
const CMD_FLAG_NO_HOLE: u16 = 1 << 1;
const CMD_FLAG_DF: u16 = 1 << 2;
const CMD_FLAG_REQ_ONE: u16 = 1 << 3;
const CMD_FLAG_PAYLOAD_LEN: u16 = 1 << 5;
const FLAG_SEND_DF: u16 = 1 << 7;
const TYPE_NONE: u16 = 0;
const TYPE_OFFSET_DATA: u16 = 1;
const TYPE_BLOCK_STATUS_EXT: u16 = 6;
const TYPE_ERROR: u16 = (1 << 15) + 1;
const EOVERFLOW: u32 = 75;
/// `base:allocation` flags of a hole.
const HOLE: u64 = 3;
const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn server(size: u64) -> (Server, TempPath) {
    let image = sparse_file("ext-hdr", size);
    let s = Server::start(&["--image", image.path().to_str().unwrap()]);
    (s, image)
}

/// `NBD_OPT_SET_META_CONTEXT` data selecting `base:allocation` on the default export.
fn base_allocation() -> Vec<u8> {
    let q = b"base:allocation";
    let mut d = 0u32.to_be_bytes().to_vec();
    d.extend_from_slice(&1u32.to_be_bytes());
    d.extend_from_slice(&(q.len() as u32).to_be_bytes());
    d.extend_from_slice(q);
    d
}

/// Extended headers and `base:allocation` (no structured replies asked for), then GO:
/// returns the transmission flags.
fn extended(c: &mut Raw) -> u16 {
    c.option(OPT_EXTENDED_HEADERS, &[]);
    assert_eq!(c.option_reply(), (OPT_EXTENDED_HEADERS, REP_ACK, vec![]));
    c.option(OPT_SET_META_CONTEXT, &base_allocation());
    let (_, kind, data) = c.option_reply();
    assert_eq!(kind, REP_META_CONTEXT);
    assert_eq!(be32(&data[0..4]), 1, "context id");
    assert_eq!(c.option_reply().1, REP_ACK);
    let (_, flags) = c.go();
    assert_ne!(
        flags & FLAG_SEND_DF,
        0,
        "DF is offered with extended headers"
    );
    flags
}

fn connect(addr: std::net::SocketAddr) -> Raw {
    let mut c = Raw::greet(addr);
    extended(&mut c);
    c
}

/// An extended request header.
fn request(c: &mut Raw, flags: u16, kind: u16, handle: u64, offset: u64, len: u64) {
    let mut b = Vec::with_capacity(32);
    b.extend_from_slice(&EXTENDED_REQUEST_MAGIC.to_be_bytes());
    b.extend_from_slice(&flags.to_be_bytes());
    b.extend_from_slice(&kind.to_be_bytes());
    b.extend_from_slice(&handle.to_be_bytes());
    b.extend_from_slice(&offset.to_be_bytes());
    b.extend_from_slice(&len.to_be_bytes());
    c.send(&b);
}

/// The exact 32 bytes of a final extended reply chunk.
fn header(kind: u16, handle: u64, offset: u64, len: u64) -> Vec<u8> {
    let mut b = EXTENDED_REPLY_MAGIC.to_be_bytes().to_vec();
    b.extend_from_slice(&1u16.to_be_bytes()); // NBD_REPLY_FLAG_DONE
    b.extend_from_slice(&kind.to_be_bytes());
    b.extend_from_slice(&handle.to_be_bytes());
    b.extend_from_slice(&offset.to_be_bytes());
    b.extend_from_slice(&len.to_be_bytes());
    b
}

/// The next reply is exactly a `NONE` chunk for (handle, offset).
fn expect_done(c: &mut Raw, handle: u64, offset: u64) {
    assert_eq!(c.read_n(32), header(TYPE_NONE, handle, offset, 0));
}

/// The next reply is an `ERROR` chunk for (handle, offset) carrying `error`: the header
/// and fields byte by byte, the message as long as announced. Returns the message.
fn expect_error(c: &mut Raw, handle: u64, offset: u64, error: u32) -> String {
    let h = c.read_n(32);
    let len = be64(&h[24..32]);
    assert_eq!(h, header(TYPE_ERROR, handle, offset, len));
    let payload = c.read_n(len as usize);
    assert_eq!(be32(&payload[0..4]), error, "error of handle {handle}");
    assert_eq!(usize::from(be16(&payload[4..6])), payload.len() - 6);
    let msg = String::from_utf8(payload[6..].to_vec()).expect("a UTF-8 message");
    assert!(!msg.is_empty());
    msg
}

/// `WRITE` with `CMD_FLAG_PAYLOAD_LEN` (as the protocol asks) and its payload; it succeeds.
fn write(c: &mut Raw, handle: u64, offset: u64, data: &[u8]) {
    let len = data.len() as u64;
    request(c, CMD_FLAG_PAYLOAD_LEN, CMD_WRITE, handle, offset, len);
    c.send(data);
    expect_done(c, handle, offset);
}

/// `READ` that succeeds: one `OFFSET_DATA` chunk, its header and offset byte by byte.
fn read(c: &mut Raw, handle: u64, offset: u64, len: u64) -> Vec<u8> {
    request(c, 0, CMD_READ, handle, offset, len);
    assert_eq!(
        c.read_n(32),
        header(TYPE_OFFSET_DATA, handle, offset, 8 + len)
    );
    assert_eq!(c.read_n(8), offset.to_be_bytes(), "the data's offset");
    c.read_n(len as usize)
}

/// `BLOCK_STATUS`: one `BLOCK_STATUS_EXT` chunk for context 1 (header, context, descriptor
/// count checked); returns the descriptors as (length, flags).
fn block_status(c: &mut Raw, handle: u64, flags: u16, offset: u64, len: u64) -> Vec<(u64, u64)> {
    request(c, flags, CMD_BLOCK_STATUS, handle, offset, len);
    let h = c.read_n(32);
    let plen = be64(&h[24..32]);
    assert_eq!(h, header(TYPE_BLOCK_STATUS_EXT, handle, offset, plen));
    assert_eq!((plen - 8) % 16, 0, "8 + 16 bytes per descriptor");
    let p = c.read_n(plen as usize);
    assert_eq!(be32(&p[0..4]), 1, "base:allocation's id");
    let count = be32(&p[4..8]) as usize;
    assert_eq!(8 + 16 * count, p.len(), "the count matches the length");
    p[8..]
        .chunks(16)
        .map(|d| (be64(&d[0..8]), be64(&d[8..16])))
        .collect()
}

/// `NBD_CMD_DISC` in extended form; the server closes.
fn disconnect(mut c: Raw) {
    request(&mut c, 0, CMD_DISC, 0, 0, 0);
    c.expect_closed();
}

#[test]
fn the_option_is_acknowledged_outranks_structured_replies_and_changes_the_framing() {
    let (s, _img) = server(16 * MIB);
    let mut c = Raw::greet(s.addr);
    c.option(OPT_EXTENDED_HEADERS, &[0]);
    assert_eq!(
        c.option_reply().1,
        REP_ERR_INVALID,
        "the option takes no data"
    );
    c.option(OPT_STRUCTURED_REPLY, &[]);
    assert_eq!(c.option_reply().1, REP_ACK);
    // After structured replies, and a second time: ACK, exactly 20 bytes.
    for _ in 0..2 {
        c.option(OPT_EXTENDED_HEADERS, &[]);
        let mut want = OPT_REPLY_MAGIC.to_be_bytes().to_vec();
        want.extend_from_slice(&OPT_EXTENDED_HEADERS.to_be_bytes());
        want.extend_from_slice(&REP_ACK.to_be_bytes());
        want.extend_from_slice(&0u32.to_be_bytes());
        assert_eq!(c.read_n(20), want);
    }
    c.option(OPT_STRUCTURED_REPLY, &[]);
    assert_eq!(c.option_reply().1, REP_ERR_EXT_HEADER_REQD, "no downgrade");
    let (size, flags) = c.go();
    assert_eq!(size, 16 * MIB);
    assert_ne!(flags & FLAG_SEND_DF, 0);
    // FLUSH: no simple reply any more, a NONE chunk.
    request(&mut c, 0, CMD_FLUSH, 7, 0, 0);
    expect_done(&mut c, 7, 0);
    // A compact request header (and 4 more bytes, to fill an extended header) is out of
    // step in this mode: the server closes.
    c.request(0, CMD_FLUSH, 8, 0, 0);
    c.send(&[0; 4]);
    c.expect_closed();

    // And an extended header on a compact connection.
    let (mut c, _, _) = Raw::ready(s.addr, true);
    request(&mut c, 0, CMD_FLUSH, 9, 0, 0);
    c.expect_closed();

    // NBD_OPT_EXPORT_NAME after extended headers cannot be refused: the server closes.
    let mut c = Raw::greet(s.addr);
    c.option(OPT_EXTENDED_HEADERS, &[]);
    assert_eq!(c.option_reply().1, REP_ACK);
    c.option(OPT_EXPORT_NAME, &[]);
    c.expect_closed();
    still_serves(s.addr, 0);
}

#[test]
fn every_command_gets_extended_replies_byte_by_byte() {
    const SIZE: u64 = 64 * MIB;
    let (s, img) = server(SIZE);
    let mut c = connect(s.addr);
    let a = pseudo_random(4096, 1);
    let b = pseudo_random(64 * KIB as usize, 2);
    write(&mut c, 0x1111, MIB, &a);
    write(&mut c, 0x2222, 2 * MIB, &b);
    // A WRITE without CMD_FLAG_PAYLOAD_LEN still carries its data (the server is lenient).
    request(&mut c, CMD_FLAG_FUA, CMD_WRITE, 3, 40 * MIB + 5, 1000);
    c.send(&[0x5a; 1000]);
    expect_done(&mut c, 3, 40 * MIB + 5);
    // A small READ (the batching writer's path) and a 2 MiB one (sent by the ring).
    assert_eq!(read(&mut c, 4, MIB, 4096), a);
    let mut want = vec![0; 2 * MIB as usize + b.len()];
    want[MIB as usize..MIB as usize + 4096].copy_from_slice(&a);
    want[2 * MIB as usize..].copy_from_slice(&b);
    assert_eq!(read(&mut c, 5, 0, want.len() as u64), want);
    // "Don't fragment" is met: one chunk.
    request(&mut c, CMD_FLAG_DF, CMD_READ, 6, 40 * MIB + 5, 1000);
    assert_eq!(
        c.read_n(32),
        header(TYPE_OFFSET_DATA, 6, 40 * MIB + 5, 1008)
    );
    assert_eq!(c.read_n(8), (40 * MIB + 5).to_be_bytes());
    assert_eq!(c.read_n(1000), vec![0x5a; 1000]);
    request(&mut c, 0, CMD_FLUSH, 7, 0, 0);
    expect_done(&mut c, 7, 0);
    // TRIM and WRITE_ZEROES (punching and keeping allocation) read back as zeroes.
    request(&mut c, 0, CMD_TRIM, 8, MIB, 4096);
    expect_done(&mut c, 8, MIB);
    assert_eq!(read(&mut c, 9, MIB, 4096), vec![0; 4096]);
    write(&mut c, 10, 48 * MIB, &a);
    request(&mut c, CMD_FLAG_FUA, CMD_WRITE_ZEROES, 11, 48 * MIB, 4096);
    expect_done(&mut c, 11, 48 * MIB);
    assert_eq!(read(&mut c, 12, 48 * MIB, 4096), vec![0; 4096]);
    write(&mut c, 13, 50 * MIB, &a);
    request(
        &mut c,
        CMD_FLAG_NO_HOLE,
        CMD_WRITE_ZEROES,
        14,
        50 * MIB + 1,
        100,
    );
    expect_done(&mut c, 14, 50 * MIB + 1);
    let mut zeroed = a.clone();
    zeroed[1..101].fill(0);
    assert_eq!(read(&mut c, 15, 50 * MIB, 4096), zeroed);
    // Block status: holes and data as 16-byte descriptors (only the 64 KiB at 2 MiB, the
    // block at 40 MiB and the one at 50 MiB hold data now).
    let map = block_status(&mut c, 16, 0, 0, 48 * MIB);
    let data_40 = (40 * MIB, 4 * KIB);
    assert_eq!(
        map,
        [
            (2 * MIB, HOLE),
            (64 * KIB, 0),
            (data_40.0 - 2 * MIB - 64 * KIB, HOLE),
            (data_40.1, 0),
            (48 * MIB - data_40.0 - data_40.1, HOLE),
        ]
    );
    assert_eq!(
        block_status(&mut c, 17, CMD_FLAG_REQ_ONE, 0, SIZE),
        [(2 * MIB, HOLE)]
    );
    assert_eq!(
        block_status(&mut c, 18, 0, 2 * MIB + 4096, 4096),
        [(4096, 0)]
    );
    // Errors are ERROR chunks that repeat the offset.
    request(&mut c, 0, CMD_READ, 19, SIZE, 1);
    expect_error(&mut c, 19, SIZE, EINVAL);
    request(&mut c, 0, CMD_WRITE_ZEROES, 20, SIZE - 1, 2);
    expect_error(&mut c, 20, SIZE - 1, ENOSPC);
    request(&mut c, 0, 42, 21, 5, 6);
    let msg = expect_error(&mut c, 21, 5, EINVAL);
    assert!(msg.contains("unknown command"), "{msg}");
    assert_eq!(read(&mut c, 22, 2 * MIB, 64 * KIB), b);
    disconnect(c);
    s.stop();
    let file = std::fs::read(img.path()).unwrap();
    assert_eq!(&file[2 * MIB as usize..][..b.len()], &b[..]);
    assert_eq!(&file[50 * MIB as usize..][..4096], &zeroed[..]);
}

#[test]
fn oversized_reads_are_refused_in_step_an_oversized_payload_closes() {
    let (s, _img) = server(128 * MIB);
    let mut c = connect(s.addr);
    let max = 32 * MIB;
    request(&mut c, 0, CMD_READ, 1, 0, max + 1);
    expect_error(&mut c, 1, 0, EINVAL);
    request(&mut c, 0, CMD_READ, 2, 4096, 5 * GIB);
    expect_error(&mut c, 2, 4096, EINVAL);
    // With "don't fragment", the protocol's EOVERFLOW.
    request(&mut c, CMD_FLAG_DF, CMD_READ, 3, 0, 64 * MIB);
    expect_error(&mut c, 3, 0, EOVERFLOW);
    // The maximum itself is fine, and the connection is in step.
    assert_eq!(read(&mut c, 4, 0, max), vec![0; max as usize]);
    // A payload on a command that takes none is read and dropped: EINVAL, in step.
    request(&mut c, CMD_FLAG_PAYLOAD_LEN, CMD_TRIM, 5, 0, 100);
    c.send(&[0xff; 100]);
    let msg = expect_error(&mut c, 5, 0, EINVAL);
    assert!(msg.contains("flags"), "{msg}");
    write(&mut c, 6, 4096, b"still in step");
    assert_eq!(read(&mut c, 7, 4096, 13), b"still in step");
    // A WRITE whose payload would pass the maximum: EINVAL, then the server hangs up
    // rather than read it (the protocol's SHOULD).
    request(&mut c, CMD_FLAG_PAYLOAD_LEN, CMD_WRITE, 8, 0, max + 1);
    expect_error(&mut c, 8, 0, EINVAL);
    c.expect_closed();
    still_serves(s.addr, 8192);
}

#[test]
fn lengths_past_4_gib_zero_trim_and_map_a_large_sparse_image() {
    const SIZE: u64 = 16 * GIB;
    let (s, img) = server(SIZE);
    let mut c = connect(s.addr);
    let data = pseudo_random(4096, 3);
    for at in [GIB, 6 * GIB, 9 * GIB, 15 * GIB] {
        write(&mut c, at >> 30, at, &data);
    }
    // One reply maps all 16 GiB; two holes are longer than 4 GiB.
    let block = 4 * KIB;
    let map = block_status(&mut c, 20, 0, 0, SIZE);
    assert_eq!(
        map,
        [
            (GIB, HOLE),
            (block, 0),
            (5 * GIB - block, HOLE),
            (block, 0),
            (3 * GIB - block, HOLE),
            (block, 0),
            (6 * GIB - block, HOLE),
            (block, 0),
            (GIB - block, HOLE),
        ]
    );
    // WRITE_ZEROES over 6 GiB (two of the blocks), TRIM over 8 GiB (the other two).
    request(&mut c, 0, CMD_WRITE_ZEROES, 21, GIB, 6 * GIB);
    expect_done(&mut c, 21, GIB);
    request(&mut c, CMD_FLAG_FUA, CMD_TRIM, 22, 8 * GIB, 8 * GIB);
    expect_done(&mut c, 22, 8 * GIB);
    for (i, at) in [GIB, 6 * GIB, 9 * GIB, 15 * GIB].into_iter().enumerate() {
        assert_eq!(
            read(&mut c, 30 + i as u64, at, 4096),
            vec![0; 4096],
            "at {at}"
        );
    }
    // All one hole now; REQ_ONE stays within the (64-bit) length asked for.
    assert_eq!(block_status(&mut c, 40, 0, 0, SIZE), [(SIZE, HOLE)]);
    let one = block_status(&mut c, 41, CMD_FLAG_REQ_ONE, 1, 5 * GIB);
    assert_eq!(one, [(5 * GIB, HOLE)]);
    disconnect(c);
    let meta = std::fs::metadata(img.path()).unwrap();
    assert_eq!(meta.len(), SIZE);
    assert!(
        meta.blocks() * 512 < MIB,
        "{} blocks allocated",
        meta.blocks()
    );

    // A compact client on the same image asks at most 4 GiB - 1 at a time: its 32-bit
    // descriptor of the 5 GiB hole is cut to the range asked for, as before.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(img.path())
        .unwrap();
    f.write_all_at(&data, 5 * GIB).unwrap();
    let mut c = Raw::greet(s.addr);
    c.option(OPT_STRUCTURED_REPLY, &[]);
    assert_eq!(c.option_reply().1, REP_ACK);
    c.option(OPT_SET_META_CONTEXT, &base_allocation());
    assert_eq!(c.option_reply().1, REP_META_CONTEXT);
    assert_eq!(c.option_reply().1, REP_ACK);
    c.go();
    let most = u32::MAX - 4095;
    c.request(0, CMD_BLOCK_STATUS, 1, 0, most);
    let mut want = 1u32.to_be_bytes().to_vec();
    want.extend_from_slice(&most.to_be_bytes());
    want.extend_from_slice(&3u32.to_be_bytes());
    let reply = c.reply();
    assert_eq!(
        reply,
        Reply::Chunk {
            flags: 1,
            kind: 5,
            handle: 1,
            payload: want
        }
    );
    c.disconnect();
    s.stop();
}
