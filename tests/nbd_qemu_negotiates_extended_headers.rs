//! Real clients and extended headers (issue 13 item 4): qemu's NBD client (qemu 8.2 and
//! later) asks for `NBD_OPT_EXTENDED_HEADERS`, and its own traces (`--trace nbd_*`) show
//! the server acknowledging it and every reply arriving as an extended chunk (`NONE` for
//! writes, trims and flushes, `OFFSET_DATA` for reads, no simple reply at all). Writes,
//! FUA writes, zeroes and discards, some past 4 GiB, read back in a new connection and in
//! the image file; `qemu-img map` asks for block status with 64-bit lengths, gets
//! `BLOCK_STATUS_EXT` chunks and prints the true map of an 8 GiB sparse image, whose
//! middle hole is over 4 GiB long. libnbd 1.14's `nbdinfo` (no extended headers) still
//! negotiates structured replies on the same server and prints the same map.
//!
//! qemu's block layer caps write-zeroes and discards at 2 GiB per request, so lengths past
//! 4 GiB for those come only from the raw client (`tests/nbd_extended_headers.rs`).

mod nbd_common;

use std::os::unix::fs::FileExt;
use std::process::Command;

use nbd_common::*;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const SIZE: u64 = 8 * GIB;

/// (offset, length, byte) written and left in place; the rest of the image is holes.
const DATA: [(u64, u64, u8); 3] = [
    (0, 4096, 0x11),
    (100 * MIB, MIB, 0x22),
    (5 * GIB, 64 << 10, 0x33),
];
/// Written, then zeroed with unmap (write-zeroes) or discarded: holes again.
const GONE: [(u64, u64); 2] = [(200 * MIB, MIB), (300 * MIB, 2 * MIB)];

/// The traces that show the framing: options, requests, reply chunks, and simple replies
/// (which must not appear).
const TRACES: [&str; 5] = [
    "nbd_send_option_request",
    "nbd_receive_option_reply",
    "nbd_send_request",
    "nbd_receive_reply_chunk_header",
    "nbd_receive_simple_reply",
];

/// Run a qemu tool with the traces on; returns (stdout, stderr with the traces).
fn traced(tool: &str, args: &[String]) -> (String, String) {
    let mut cmd = Command::new(tool);
    for t in TRACES {
        cmd.args(["--trace", t]);
    }
    cmd.args(args);
    let out = run_ok(&mut cmd);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// qemu negotiated extended headers and got only extended replies.
fn assert_extended(trace: &str) {
    assert!(
        trace.contains("Sending option request 11 (extended headers)"),
        "qemu did not ask for extended headers:\n{trace}"
    );
    assert!(
        trace.contains("Received option reply 11 (extended headers), type 1 (ack)"),
        "extended headers not acknowledged:\n{trace}"
    );
    assert!(
        !trace.contains("nbd_receive_simple_reply"),
        "a simple reply in extended mode:\n{trace}"
    );
}

/// `qemu-img --version` is at least 8.2 (the first qemu whose client asks for extended
/// headers).
fn qemu_has_extended_headers() -> bool {
    let out = run_ok(Command::new("qemu-img").arg("--version"));
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().nth(2).unwrap_or("0.0");
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (8, 2)
}

#[test]
fn qemu_uses_extended_headers_writes_read_back_and_maps_past_4_gib() {
    if !need("qemu-io") || !need("qemu-img") {
        return;
    }
    if !qemu_has_extended_headers() {
        eprintln!("SKIP: this qemu is older than 8.2 and does not ask for extended headers");
        return;
    }
    let image = sparse_file("qemu-ext", SIZE);
    let server = Server::start(&["--image", image.path().to_str().unwrap()]);
    let uri = server.uri();

    let mut cmds = Vec::new();
    for (i, &(off, len, p)) in DATA.iter().enumerate() {
        let fua = if i == 1 { "-f " } else { "" };
        cmds.push(format!("write {fua}-P {p} {off} {len}"));
    }
    for &(off, len) in &GONE {
        cmds.push(format!("write -P 0x44 {off} {len}"));
    }
    cmds.push(format!("write -z -u {} {}", GONE[0].0, GONE[0].1));
    cmds.push(format!("discard {} {}", GONE[1].0, GONE[1].1));
    for &(off, len, p) in &DATA {
        cmds.push(format!("read -P {p} {off} {len}"));
    }
    for &(off, len) in &GONE {
        cmds.push(format!("read -P 0 {off} {len}"));
    }
    cmds.push("flush".into());
    let mut args = vec!["-f".to_string(), "raw".into()];
    for c in &cmds {
        args.extend(["-c".to_string(), c.clone()]);
    }
    args.push(uri.clone());
    let (out, trace) = traced("qemu-io", &args);
    assert!(
        !out.contains("failed") && !out.contains("error"),
        "qemu-io reported a failure:\n{out}"
    );
    assert_extended(&trace);
    // Successes without data are NONE chunks, reads OFFSET_DATA chunks: extended replies.
    assert!(trace.contains("type = 0 (none)"), "{trace}");
    assert!(trace.contains("type = 1 (data)"), "{trace}");
    assert!(trace.contains("type = 6 (write zeroes)"), "{trace}");
    assert!(trace.contains("type = 4 (trim)"), "{trace}");

    // A new connection reads the same bytes.
    let mut args = vec!["-f".to_string(), "raw".into()];
    for &(off, len, p) in &DATA {
        args.extend(["-c".to_string(), format!("read -P {p} {off} {len}")]);
    }
    args.push(uri.clone());
    let (out, trace) = traced("qemu-io", &args);
    assert!(!out.contains("failed"), "{out}");
    assert_extended(&trace);

    // qemu-img map: block status over 64-bit lengths, answered with 64-bit descriptors.
    let args: Vec<String> = ["map", "-f", "raw", "--output=json", &uri]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut cmd_args = Vec::new();
    for t in TRACES {
        cmd_args.extend(["--trace".to_string(), t.to_string()]);
    }
    cmd_args.extend(args);
    let out = run_ok(Command::new("qemu-img").args(&cmd_args));
    let (map_json, trace) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_extended(&trace);
    assert!(
        trace.contains("type = 6 (block status (64-bit))"),
        "no BLOCK_STATUS_EXT chunk:\n{trace}"
    );
    let longest = trace
        .lines()
        .filter(|l| l.contains("type = 7 (block status)"))
        .filter_map(|l| field(l, ".len = "))
        .max()
        .expect("block status requests");
    assert!(
        longest > u64::from(u32::MAX),
        "longest block status asked: {longest}"
    );
    let map: Vec<(u64, u64, bool)> = map_json
        .lines()
        .filter(|l| l.contains("\"start\""))
        .map(|l| {
            let data = l.contains("\"data\": true");
            (
                field(l, "\"start\": ").unwrap(),
                field(l, "\"length\": ").unwrap(),
                data,
            )
        })
        .collect();
    assert_eq!(
        merged(map),
        expected_map(),
        "qemu-img map printed:\n{map_json}"
    );

    // libnbd 1.14 does not know extended headers: compact headers, the same map.
    if need("nbdinfo") {
        let out = run_ok(
            Command::new("nbdinfo")
                .env("LIBNBD_DEBUG", "1")
                .args(["--map", &uri]),
        );
        let debug = String::from_utf8_lossy(&out.stderr);
        assert!(
            debug.contains("negotiated structured replies"),
            "nbdinfo's negotiation:\n{debug}"
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let map: Vec<(u64, u64, bool)> = text
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2] == "0")
            })
            .collect();
        assert_eq!(
            merged(map),
            expected_map(),
            "nbdinfo --map printed:\n{text}"
        );
    }
    server.stop();

    let f = std::fs::File::open(image.path()).unwrap();
    for &(off, len, p) in &DATA {
        let mut buf = vec![0; len as usize];
        f.read_exact_at(&mut buf, off).unwrap();
        assert!(buf.iter().all(|&b| b == p), "image at {off}");
    }
    for &(off, len) in &GONE {
        let mut buf = vec![0xff; len as usize];
        f.read_exact_at(&mut buf, off).unwrap();
        assert!(buf.iter().all(|&b| b == 0), "image at {off}");
    }
}

/// The map the image has: (offset, length, is data), holes between the data.
fn expected_map() -> Vec<(u64, u64, bool)> {
    let mut v = Vec::new();
    let mut at = 0;
    for &(off, len, _) in &DATA {
        if off > at {
            v.push((at, off - at, false));
        }
        v.push((off, len, true));
        at = off + len;
    }
    v.push((at, SIZE - at, false));
    v
}

/// The integer after `key` in `line`.
fn field(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    rest.chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

/// Neighbours of the same kind merged (clients may split extents; the map is the same).
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
