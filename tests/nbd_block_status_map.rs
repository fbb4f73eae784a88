//! Block status (`base:allocation`): the server reports the image's holes and data extents,
//! so `nbdinfo --map`, `qemu-img map` and sparse-aware copies see the image as it is.
//!
//! The image is 64 MiB, sparse, with data at exactly three places; every client must see
//! those three data extents and holes everywhere else. Before block status existed,
//! `nbdinfo --map` failed (no `base:allocation` context) and `qemu-img map` reported the whole
//! export as data. The raw-client test checks the protocol's edges: no block status without
//! the negotiated context, `REQ_ONE`, a range past the end, unknown flags; every refusal is
//! an error reply and the connection stays in step.

mod nbd_common;

use std::os::unix::fs::{FileExt, MetadataExt};
use std::process::Command;

use nbd_common::*;

const MIB: u64 = 1 << 20;
const SIZE: u64 = 64 * MIB;
/// The data extents of the test image: (offset, length); the rest is holes.
const DATA: [(u64, u64); 3] = [(MIB, 2 * MIB), (10 * MIB, 64 << 10), (63 * MIB, MIB)];

const OPT_SET_META_CONTEXT: u32 = 10;
const REP_META_CONTEXT: u32 = 4;
const CMD_BLOCK_STATUS: u16 = 7;
const CMD_FLAG_REQ_ONE: u16 = 1 << 3;
const REPLY_TYPE_BLOCK_STATUS: u16 = 5;
const REPLY_TYPE_ERROR: u16 = (1 << 15) + 1;
const HOLE_ZERO: u32 = 3;

/// The sparse test image with pseudo-random data in [`DATA`].
fn image() -> TempPath {
    let t = sparse_file("status", SIZE);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(t.path())
        .unwrap();
    for (i, &(off, len)) in DATA.iter().enumerate() {
        f.write_all_at(&pseudo_random(len as usize, i as u64 + 1), off)
            .unwrap();
    }
    f.sync_all().unwrap();
    t
}

/// The map a correct server gives: (offset, length, is data), holes between the data.
fn expected_map() -> Vec<(u64, u64, bool)> {
    let mut v = Vec::new();
    let mut at = 0;
    for &(off, len) in &DATA {
        if off > at {
            v.push((at, off - at, false));
        }
        v.push((off, len, true));
        at = off + len;
    }
    if at < SIZE {
        v.push((at, SIZE - at, false));
    }
    v
}

/// The integer after `"key":` in a one-line JSON object.
fn field(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(&format!("\"{key}\":"))? + key.len() + 3..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The boolean after `"key":`.
fn flag(line: &str, key: &str) -> Option<bool> {
    let rest = &line[line.find(&format!("\"{key}\":"))? + key.len() + 3..];
    Some(rest.trim_start().starts_with("true"))
}

/// Merge neighbours of the same kind (clients may split extents; the map is the same).
fn merged(v: Vec<(u64, u64, bool)>) -> Vec<(u64, u64, bool)> {
    let mut out: Vec<(u64, u64, bool)> = Vec::new();
    for e in v {
        match out.last_mut() {
            Some(last) if last.2 == e.2 && last.0 + last.1 == e.0 => last.1 += e.1,
            _ => out.push(e),
        }
    }
    out
}

#[test]
fn nbdinfo_map_shows_holes_and_data() {
    if !have("nbdinfo") {
        return;
    }
    let img = image();
    let server = Server::start(&["--image", img.path().to_str().unwrap()]);
    let out = run_ok(Command::new("nbdinfo").args(["--map", "--json", &server.uri()]));
    let text = String::from_utf8_lossy(&out.stdout);
    let map: Vec<(u64, u64, bool)> = text
        .lines()
        .filter(|l| l.contains("\"offset\""))
        .map(|l| {
            let kind = field(l, "type").expect("type");
            let data = match kind {
                0 => true,
                3 => false,
                k => panic!("base:allocation type {k} in {l:?}"),
            };
            (
                field(l, "offset").unwrap(),
                field(l, "length").unwrap(),
                data,
            )
        })
        .collect();
    assert_eq!(
        merged(map),
        expected_map(),
        "nbdinfo --map printed:\n{text}"
    );
    server.stop();
}

#[test]
fn qemu_img_map_shows_holes_and_data() {
    if !have("qemu-img") {
        return;
    }
    let img = image();
    let server = Server::start(&["--image", img.path().to_str().unwrap()]);
    let out =
        run_ok(Command::new("qemu-img").args(["map", "-f", "raw", "--output=json", &server.uri()]));
    let text = String::from_utf8_lossy(&out.stdout);
    let map: Vec<(u64, u64, bool)> = text
        .lines()
        .filter(|l| l.contains("\"start\""))
        .map(|l| {
            let data = flag(l, "data").expect("data");
            assert_eq!(flag(l, "zero"), Some(!data), "a hole reads as zeroes: {l}");
            (
                field(l, "start").unwrap(),
                field(l, "length").unwrap(),
                data,
            )
        })
        .collect();
    assert_eq!(merged(map), expected_map(), "qemu-img map printed:\n{text}");
    server.stop();
}

/// `qemu-img convert` and `nbdcopy` out of the server: byte-exact, and the copy is as sparse
/// as the image (the holes were skipped, not copied as zeroes).
#[test]
fn sparse_aware_copies_skip_the_holes() {
    if !have("qemu-img") || !have("nbdcopy") {
        return;
    }
    let img = image();
    let server = Server::start(&["--image", img.path().to_str().unwrap()]);
    let want = std::fs::read(img.path()).unwrap();
    let data_bytes: u64 = DATA.iter().map(|d| d.1).sum();
    let converted = TempPath::new("status-convert");
    let copied = TempPath::new("status-nbdcopy");
    let dst = |t: &TempPath| t.path().to_str().unwrap().to_owned();
    run_ok(Command::new("qemu-img").args([
        "convert",
        "-f",
        "raw",
        "-O",
        "raw",
        &server.uri(),
        &dst(&converted),
    ]));
    run_ok(Command::new("nbdcopy").args([&server.uri(), &dst(&copied)]));
    for (what, t) in [("qemu-img convert", &converted), ("nbdcopy", &copied)] {
        let got = std::fs::read(t.path()).unwrap();
        assert!(got == want, "{what}: the copy differs from the image");
        let allocated = std::fs::metadata(t.path()).unwrap().blocks() * 512;
        assert!(
            allocated <= data_bytes + 2 * MIB,
            "{what}: the copy allocates {allocated} bytes for {data_bytes} bytes of data: \
             the holes were copied as data"
        );
    }
    server.stop();
}

/// Greet, structured replies, select `base:allocation`, GO.
fn ready_with_status(server: &Server) -> Raw {
    let mut r = Raw::greet(server.addr);
    r.option(OPT_STRUCTURED_REPLY, &[]);
    assert_eq!(r.option_reply().1, REP_ACK);
    let name = b"base:allocation";
    let mut q = Vec::new();
    q.extend_from_slice(&0u32.to_be_bytes()); // export name ""
    q.extend_from_slice(&1u32.to_be_bytes()); // one query
    q.extend_from_slice(&(name.len() as u32).to_be_bytes());
    q.extend_from_slice(name);
    r.option(OPT_SET_META_CONTEXT, &q);
    let (opt, kind, data) = r.option_reply();
    assert_eq!((opt, kind), (OPT_SET_META_CONTEXT, REP_META_CONTEXT));
    assert_eq!(&data[4..], name);
    assert_eq!(r.option_reply().1, REP_ACK);
    r.go();
    r
}

/// A block status reply's descriptors (length, flags).
fn descriptors(r: &mut Raw, handle: u64) -> Vec<(u32, u32)> {
    match r.reply() {
        Reply::Chunk {
            flags,
            kind: REPLY_TYPE_BLOCK_STATUS,
            handle: h,
            payload,
        } => {
            assert_eq!(h, handle);
            assert_eq!(flags & 1, 1, "one final chunk");
            assert_eq!((payload.len() - 4) % 8, 0);
            assert_ne!(be32(&payload[0..4]), 0, "a context id");
            payload[4..]
                .chunks(8)
                .map(|d| (be32(&d[0..4]), be32(&d[4..8])))
                .collect()
        }
        other => panic!("expected a block status chunk, got {other:?}"),
    }
}

/// The error of a structured error chunk (the reply to a refused request).
fn error_of(r: &mut Raw, handle: u64) -> u32 {
    match r.reply() {
        Reply::Chunk {
            kind: REPLY_TYPE_ERROR,
            handle: h,
            payload,
            ..
        } => {
            assert_eq!(h, handle);
            be32(&payload[0..4])
        }
        other => panic!("expected an error chunk, got {other:?}"),
    }
}

#[test]
fn raw_block_status_edges_stay_in_step() {
    let img = image();
    let server = Server::start(&["--image", img.path().to_str().unwrap()]);

    // Without the context: EINVAL, and the connection goes on.
    let (mut r, _, _) = Raw::ready(server.addr, true);
    r.request(0, CMD_BLOCK_STATUS, 1, 0, MIB as u32);
    assert_eq!(error_of(&mut r, 1), EINVAL);
    r.request(0, CMD_READ, 2, MIB, 512);
    assert!(matches!(r.reply(), Reply::Chunk { handle: 2, .. }));
    r.disconnect();

    let mut r = ready_with_status(&server);
    // 0.5 MiB..10.5 MiB: hole, the 2 MiB of data, hole, the 64 KiB of data, hole.
    let from = MIB / 2;
    r.request(0, CMD_BLOCK_STATUS, 3, from, (10 * MIB) as u32);
    let got = descriptors(&mut r, 3);
    let want = [
        ((MIB / 2) as u32, HOLE_ZERO),
        ((2 * MIB) as u32, 0),
        ((7 * MIB) as u32, HOLE_ZERO),
        (64 << 10, 0),
        (448 << 10, HOLE_ZERO),
    ];
    assert_eq!(got, want);
    // REQ_ONE: one descriptor, from the offset.
    r.request(
        CMD_FLAG_REQ_ONE,
        CMD_BLOCK_STATUS,
        4,
        from,
        (10 * MIB) as u32,
    );
    assert_eq!(descriptors(&mut r, 4), [want[0]]);
    // Past the end, zero length, unknown flags: EINVAL each, in step.
    r.request(0, CMD_BLOCK_STATUS, 5, SIZE - 512, 1024);
    assert_eq!(error_of(&mut r, 5), EINVAL);
    r.request(0, CMD_BLOCK_STATUS, 6, 0, 0);
    assert_eq!(error_of(&mut r, 6), EINVAL);
    r.request(1 << 2, CMD_BLOCK_STATUS, 7, 0, 4096);
    assert_eq!(error_of(&mut r, 7), EINVAL);
    // The whole export: the sum of the lengths never exceeds the request.
    r.request(0, CMD_BLOCK_STATUS, 8, 0, SIZE as u32);
    let all = descriptors(&mut r, 8);
    let sum: u64 = all.iter().map(|d| u64::from(d.0)).sum();
    assert_eq!(sum, SIZE);
    assert_eq!(all.len(), expected_map().len());
    // Writing into a hole makes it data.
    let (mut w, _, _) = Raw::ready(server.addr, false);
    assert_eq!(w.write(9, 5 * MIB, &pseudo_random(4096, 9), 0), 0);
    w.disconnect();
    r.request(CMD_FLAG_REQ_ONE, CMD_BLOCK_STATUS, 10, 5 * MIB, 4096);
    assert_eq!(descriptors(&mut r, 10), [(4096, 0)]);
    r.disconnect();
    server.stop();
}
