//! qemu-io writes byte patterns through `examples/nbd_server` at many offsets and sizes —
//! unaligned, single bytes, the device's last byte, larger than a pool slot, with FUA, as
//! write-zeroes and as discards — and reads every one back with verification, in the same
//! connection and in a new one; the image file then holds exactly the expected bytes. Both
//! write paths (inline `pwrite` where the file system blocks buffered writes, io_uring lease
//! groups with `--ring-writes`) and `O_DIRECT` are covered.

mod nbd_common;

use nbd_common::*;

const SIZE: u64 = 64 << 20;

/// (offset, length, pattern byte); regions do not overlap.
fn regions() -> Vec<(u64, u64, u8)> {
    vec![
        (0, 1, 0x11),                         // first byte
        (1, 511, 0x12),                       // unaligned start, ends on a sector
        (4095, 2, 0x13),                      // straddles a page
        (10_000, 1, 0x14),                    // lone byte
        (65_537, 4097, 0x15),                 // unaligned everything
        (1 << 20, 4096, 0x16),                // aligned page
        ((2 << 20) + 3, 65_536, 0x17),        // a 64 KiB request off alignment
        ((3 << 20) + 1, (1 << 20) + 5, 0x18), // above the largest pool slot (heap block)
        (8 << 20, 3 << 20, 0x19),             // multi-MiB
        (SIZE - 4097, 4096, 0x1a),            // up to the byte before the last
        (SIZE - 1, 1, 0x1b),                  // the device's last byte
    ]
}

fn check_file(path: &std::path::Path, expect: &[(u64, u64, u8)]) {
    let data = std::fs::read(path).expect("read image");
    assert_eq!(data.len() as u64, SIZE);
    let mut model = vec![0u8; SIZE as usize];
    for &(off, len, p) in expect {
        model[off as usize..(off + len) as usize].fill(p);
    }
    if let Some(i) = (0..data.len()).find(|&i| data[i] != model[i]) {
        panic!(
            "image differs at byte {i}: {:#x}, expected {:#x}",
            data[i], model[i]
        );
    }
}

#[test]
fn patterns_at_many_offsets_and_sizes_read_back() {
    patterns(&[]);
}

/// The same with every write through io_uring (lease groups), not inline `pwrite`.
#[test]
fn patterns_read_back_with_ring_writes() {
    patterns(&["--ring-writes"]);
}

/// Every READ (1 byte to over 1 MiB) as a group sent by the ring in the connection's lane.
#[test]
fn patterns_read_back_with_group_reads() {
    patterns(&["--read-path", "group"]);
}

/// Every READ (1 byte to over 1 MiB) spliced from the page cache; above 1 MiB, groups.
#[test]
fn patterns_read_back_with_spliced_reads() {
    patterns(&["--read-path", "splice"]);
}

fn patterns(extra: &[&str]) {
    if !have("qemu-io") {
        return;
    }
    let image = sparse_file("patterns", SIZE);
    let mut args = vec!["--image", image.path().to_str().unwrap()];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    let uri = server.uri();

    let mut cmds = Vec::new();
    for (i, &(off, len, p)) in regions().iter().enumerate() {
        // Every third write with FUA (`-f`).
        let fua = if i % 3 == 0 { "-f " } else { "" };
        cmds.push(format!("write {fua}-P {p} {off} {len}"));
    }
    for &(off, len, p) in &regions() {
        cmds.push(format!("read -P {p} {off} {len}"));
    }
    // Gaps between regions still read as zeroes.
    cmds.push("read -P 0 512 3583".into());
    cmds.push(format!("read -P 0 {} 4096", 5 << 20));
    qemu_io(&uri, &cmds);

    // A new connection (possibly on the other core) sees the same bytes.
    let reads: Vec<String> = regions()
        .iter()
        .map(|&(off, len, p)| format!("read -P {p} {off} {len}"))
        .collect();
    qemu_io(&uri, &reads);

    // Zeroing and discarding: write-zeroes (punch), write-zeroes keeping allocation, trim.
    let zero_cmds = vec![
        format!("write -z {} 4096", 1 << 20),
        format!("write -z -u {} 65536", (2 << 20) + 3),
        format!("discard {} {}", 8 << 20, 3 << 20),
        format!("read -P 0 {} 4096", 1 << 20),
        format!("read -P 0 {} 65536", (2 << 20) + 3),
        format!("read -P 0 {} {}", 8 << 20, 3 << 20),
        format!("read -P {} {} 1", 0x1b, SIZE - 1),
        "flush".into(),
    ];
    qemu_io(&uri, &zero_cmds);
    server.stop();

    let expect: Vec<_> = regions()
        .into_iter()
        .filter(|&(off, _, _)| off != 1 << 20 && off != (2 << 20) + 3 && off != 8 << 20)
        .collect();
    check_file(image.path(), &expect);
}

#[test]
fn direct_io_patterns_read_back() {
    if !have("qemu-io") {
        return;
    }
    let image = sparse_file("direct", SIZE);
    // Skip only if this file system has no O_DIRECT at all (tmpfs before Linux 6.6).
    {
        use std::os::unix::fs::OpenOptionsExt;
        if let Err(e) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(image.path())
        {
            eprintln!("SKIP: the temp dir's file system refuses O_DIRECT ({e})");
            return;
        }
    }
    let server = Server::start(&["--image", image.path().to_str().unwrap(), "--direct"]);
    let uri = server.uri();
    // qemu honours the advertised minimum block size: its unaligned requests become aligned
    // read-modify-write cycles, so the unaligned regions work too.
    let mut cmds = Vec::new();
    for &(off, len, p) in &regions() {
        cmds.push(format!("write -P {p} {off} {len}"));
    }
    for &(off, len, p) in &regions() {
        cmds.push(format!("read -P {p} {off} {len}"));
    }
    qemu_io(&uri, &cmds);
    server.stop();
    check_file(image.path(), &regions());
}
