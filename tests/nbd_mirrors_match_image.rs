//! Every `--mirror` ends byte-identical to the image after a write workload through real
//! clients (qemu-io patterns with and without FUA, write-zeroes both ways, discards, flushes,
//! a `qemu-img convert`), including mirrors that started with other contents and an image
//! that started with data.

mod nbd_common;

use std::process::Command;

use nbd_common::*;

const SIZE: u64 = 32 << 20;

#[test]
fn mirrors_are_byte_identical_to_the_image_after_writes() {
    mirrored(&[]);
}

/// The same with every write as one io_uring group per request: a bare-lease leader and a
/// `WRITE_FIXED` member per file.
#[test]
fn mirrors_match_with_ring_writes() {
    mirrored(&["--ring-writes"]);
}

fn mirrored(extra: &[&str]) {
    if !have("qemu-io") || !have("qemu-img") {
        return;
    }
    // The image starts with data; one mirror with garbage, one does not exist yet.
    let image = TempPath::new("mirror-img");
    std::fs::write(image.path(), pseudo_random(SIZE as usize, 7)).unwrap();
    let m1 = TempPath::new("mirror-1");
    std::fs::write(m1.path(), pseudo_random(1 << 20, 8)).unwrap();
    let m2 = TempPath::new("mirror-2");
    let source = TempPath::new("mirror-src");
    std::fs::write(source.path(), pseudo_random(4 << 20, 9)).unwrap();

    let mut args = vec![
        "--image",
        image.path().to_str().unwrap(),
        "--mirror",
        m1.path().to_str().unwrap(),
        "--mirror",
        m2.path().to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    let uri = server.uri();
    let mut cmds = Vec::new();
    for i in 0..40u64 {
        let off = (i * 797_003) % (SIZE - 70_000);
        let len = 1 + (i * 7919) % 65_536;
        let fua = if i % 4 == 0 { "-f " } else { "" };
        cmds.push(format!("write {fua}-P {} {off} {len}", i + 1));
    }
    cmds.push(format!("write -z {} 65536", 3 << 20));
    cmds.push(format!("write -z -u {} 131072", 5 << 20));
    cmds.push(format!("discard {} 1048576", 9 << 20));
    cmds.push("flush".into());
    qemu_io(&uri, &cmds);
    run_ok(Command::new("qemu-img").args([
        "convert",
        "-n",
        "-f",
        "raw",
        "-O",
        "raw",
        source.path().to_str().unwrap(),
        &uri,
    ]));
    server.stop();

    let img = std::fs::read(image.path()).unwrap();
    assert_eq!(img.len() as u64, SIZE);
    assert_eq!(&img[..4 << 20], &std::fs::read(source.path()).unwrap()[..]);
    for m in [&m1, &m2] {
        let mirror = std::fs::read(m.path()).unwrap();
        assert_eq!(
            mirror.len(),
            img.len(),
            "{} has the image's size",
            m.0.display()
        );
        if let Some(i) = (0..img.len()).find(|&i| img[i] != mirror[i]) {
            panic!("{} differs from the image at byte {i}", m.0.display());
        }
    }
}
