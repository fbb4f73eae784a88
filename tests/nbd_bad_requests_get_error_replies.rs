//! Bad requests in the transmission phase, from a raw client: each gets the protocol's
//! error (ENOSPC for writes past the end, EINVAL for reads past the end, zero lengths,
//! requests over 32 MiB, unknown commands and flags, EPERM on a read-only export), a refused
//! WRITE's payload is consumed so the connection stays in step, and only a broken framing
//! (wrong magic, a payload cut short) closes that one connection. Nothing is written beyond
//! what was acknowledged.

mod nbd_common;

use nbd_common::*;

const SIZE: u64 = 16 << 20;

fn server(extra: &[&str]) -> (Server, TempPath) {
    let image = sparse_file("bad-req", SIZE);
    let mut args = vec!["--image", image.path().to_str().unwrap()];
    args.extend_from_slice(extra);
    let s = Server::start(&args);
    (s, image)
}

/// The connection still works: a write and a read-back.
fn in_step(c: &mut Raw, handle: u64) {
    let data = pseudo_random(1000, handle);
    assert_eq!(c.write(handle, 4096 * handle, &data, 0), 0);
    assert_eq!(c.read(handle + 1, 4096 * handle, 1000).unwrap(), data);
}

#[test]
fn out_of_range_requests_get_einval_or_enospc() {
    let (s, _img) = server(&[]);
    let (mut c, size, _) = Raw::ready(s.addr, false);
    assert_eq!(size, SIZE);
    // READ past the end, straddling the end, and with an offset that overflows.
    assert_eq!(c.read(1, SIZE, 1), Err(EINVAL));
    assert_eq!(c.read(2, SIZE - 10, 11), Err(EINVAL));
    assert_eq!(c.read(3, u64::MAX - 5, 512), Err(EINVAL));
    // WRITE past the end: ENOSPC, payload consumed.
    assert_eq!(c.write(4, SIZE - 100, &[0xee; 200], 0), ENOSPC);
    assert_eq!(c.write(5, u64::MAX, &[0xee; 10], 0), ENOSPC);
    // TRIM past the end: EINVAL; WRITE_ZEROES past the end: ENOSPC.
    c.request(0, CMD_TRIM, 6, SIZE - 1, 2);
    assert_eq!(c.simple(), (EINVAL, 6));
    c.request(0, CMD_WRITE_ZEROES, 7, SIZE, 4096);
    assert_eq!(c.simple(), (ENOSPC, 7));
    in_step(&mut c, 8);
    // The last byte itself is fine.
    assert_eq!(c.write(10, SIZE - 1, &[0x77], CMD_FLAG_FUA), 0);
    assert_eq!(c.read(11, SIZE - 1, 1).unwrap(), vec![0x77]);
    c.disconnect();
}

#[test]
fn zero_length_and_oversized_requests_get_einval() {
    let (s, img) = server(&[]);
    let (mut c, _, _) = Raw::ready(s.addr, false);
    assert_eq!(c.read(1, 0, 0), Err(EINVAL));
    assert_eq!(c.write(2, 0, &[], 0), EINVAL);
    c.request(0, CMD_TRIM, 3, 0, 0);
    assert_eq!(c.simple(), (EINVAL, 3));
    c.request(0, CMD_WRITE_ZEROES, 4, 0, 0);
    assert_eq!(c.simple(), (EINVAL, 4));
    // Over 32 MiB: a READ is refused; a WRITE is refused and its 33 MiB payload consumed.
    assert_eq!(c.read(5, 0, (32 << 20) + 1), Err(EINVAL));
    let big = vec![0xab; (33 << 20) as usize];
    assert_eq!(c.write(6, 0, &big, 0), EINVAL);
    in_step(&mut c, 7);
    // Exactly 32 MiB is allowed (here: beyond the 16 MiB export, so ENOSPC, consumed).
    assert_eq!(c.write(9, 0, &big[..32 << 20], 0), ENOSPC);
    in_step(&mut c, 10);
    c.disconnect();
    s.stop();
    // Nothing of the refused writes reached the image: only the two in-step writes did.
    let mut file = std::fs::read(img.path()).unwrap();
    for h in [7usize, 10] {
        file[4096 * h..4096 * h + 1000].fill(0);
    }
    assert!(
        file.iter().all(|&b| b == 0),
        "a refused write reached the image"
    );
}

#[test]
fn unknown_commands_and_flags_get_einval() {
    let (s, _img) = server(&[]);
    let (mut c, _, _) = Raw::ready(s.addr, false);
    for (i, kind) in [5u16, 7, 8, 99, 0xffff].into_iter().enumerate() {
        c.request(0, kind, 100 + i as u64, 0, 4096);
        assert_eq!(c.simple(), (EINVAL, 100 + i as u64), "command {kind}");
    }
    // An unknown flag on READ; DF without structured replies; FLUSH with a length.
    c.request(1 << 9, CMD_READ, 1, 0, 512);
    assert_eq!(c.simple(), (EINVAL, 1));
    c.request(1 << 2, CMD_READ, 2, 0, 512);
    assert_eq!(c.simple(), (EINVAL, 2));
    c.request(0, CMD_FLUSH, 3, 0, 512);
    assert_eq!(c.simple(), (EINVAL, 3));
    // FUA is accepted on every command, FLUSH included.
    c.request(CMD_FLAG_FUA, CMD_FLUSH, 4, 0, 0);
    assert_eq!(c.simple(), (0, 4));
    in_step(&mut c, 5);
    c.disconnect();
}

#[test]
fn structured_read_errors_are_error_chunks() {
    let (s, _img) = server(&[]);
    let (mut c, _, flags) = Raw::ready(s.addr, true);
    assert_ne!(flags & (1 << 7), 0, "SEND_DF with structured replies");
    c.request(0, CMD_READ, 77, SIZE, 4096);
    match c.reply() {
        Reply::Chunk {
            flags,
            kind,
            handle,
            payload,
        } => {
            assert_eq!((flags, kind, handle), (1, 0x8001, 77), "final ERROR chunk");
            assert_eq!(be32(&payload[0..4]), EINVAL);
            let msg_len = be16(&payload[4..6]) as usize;
            assert_eq!(payload.len(), 6 + msg_len);
        }
        r => panic!("expected an error chunk, got {r:?}"),
    }
    // A good read is one final OFFSET_DATA chunk.
    c.request(0, CMD_READ, 78, 4096, 1000);
    match c.reply() {
        Reply::Chunk {
            flags,
            kind,
            handle,
            payload,
        } => {
            assert_eq!((flags, kind, handle), (1, 1, 78));
            assert_eq!(be64(&payload[0..8]), 4096);
            assert_eq!(&payload[8..], &[0; 1000][..]);
        }
        r => panic!("expected a data chunk, got {r:?}"),
    }
    c.disconnect();
}

#[test]
fn readonly_export_refuses_writes_with_eperm() {
    let (s, img) = server(&["--readonly"]);
    let (mut c, _, flags) = Raw::ready(s.addr, false);
    assert_ne!(flags & 2, 0, "READ_ONLY flag");
    assert_eq!(c.write(1, 0, &[0xab; 4096], 0), EPERM);
    c.request(0, CMD_TRIM, 2, 0, 4096);
    assert_eq!(c.simple(), (EPERM, 2));
    c.request(0, CMD_WRITE_ZEROES, 3, 0, 4096);
    assert_eq!(c.simple(), (EPERM, 3));
    assert_eq!(c.read(4, 0, 4096).unwrap(), vec![0; 4096]);
    c.disconnect();
    s.stop();
    assert!(!std::fs::read(img.path()).unwrap().contains(&0xab));
}

#[test]
fn wrong_request_magic_closes_only_that_connection() {
    let (s, _img) = server(&[]);
    let (mut bad, _, _) = Raw::ready(s.addr, false);
    let (mut good, _, _) = Raw::ready(s.addr, true);
    bad.send(&[0x55; 28]);
    bad.expect_closed();
    in_step_structured(&mut good);
    good.disconnect();
    still_serves(s.addr, 0);
}

fn in_step_structured(c: &mut Raw) {
    assert_eq!(c.write(1, 0, b"still here", 0), 0);
    c.request(0, CMD_READ, 2, 0, 10);
    match c.reply() {
        Reply::Chunk { payload, .. } => assert_eq!(&payload[8..], b"still here"),
        r => panic!("unexpected reply {r:?}"),
    }
}

#[test]
fn disconnect_inside_a_write_payload_writes_nothing() {
    let (s, img) = server(&[]);
    // An acknowledged write, then one whose payload is cut short (small and large).
    for (i, len) in [3000u32, 4 << 20].into_iter().enumerate() {
        let (mut c, _, _) = Raw::ready(s.addr, false);
        let base = (i as u64 + 1) * (4 << 20);
        assert_eq!(c.write(1, base, &[0x11; 512], 0), 0);
        c.request(0, CMD_WRITE, 2, base + 4096, len);
        c.send(&vec![0xcd; len as usize / 2]);
        drop(c);
    }
    still_serves(s.addr, 0);
    s.stop();
    let file = std::fs::read(img.path()).unwrap();
    for (i, len) in [3000usize, 4 << 20].into_iter().enumerate() {
        let base = (i + 1) * (4 << 20);
        assert!(
            file[base..base + 512].iter().all(|&b| b == 0x11),
            "acknowledged write"
        );
        let cut = &file[base + 512..(base + 4096 + len).min(file.len())];
        assert!(
            cut.iter().all(|&b| b == 0),
            "bytes of a cut-short payload reached the image"
        );
    }
}
