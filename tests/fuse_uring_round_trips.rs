//! `examples/fuse_passthrough` over FUSE's io_uring transport (enable_uring set to Y and
//! restored): a file written and read back through the mount, `cp -a` of a tree onto the
//! mount and back with `diff -r` clean, and fio `--verify=crc32c` at 4 KiB, 128 KiB and
//! 1 MiB blocks (READ and WRITE go through the group data path: READ_FIXED/WRITE_FIXED on
//! the slot's payload lease). Each test also checks that the server exited cleanly and
//! served its requests over the ring, not /dev/fuse.

mod fuse_common;
mod fuse_uring_support;

use std::process::Command;

use fuse_common::{have, make_tree, pseudo_random, run_ok, server_bin};
use fuse_uring_support::{UringEnabled, UringServer};

fn enabled() -> Option<UringEnabled> {
    match UringEnabled::acquire() {
        Ok(g) => Some(g),
        Err(why) => {
            eprintln!("SKIP: {why}");
            None
        }
    }
}

#[test]
fn file_round_trip() {
    let Some(_on) = enabled() else { return };
    let s = UringServer::start(&server_bin(), "file");
    // Sizes around the stripe (256 KiB) and payload (1 MiB) boundaries.
    for (i, len) in [0usize, 1, 4095, 4096, 300_000, 1 << 20, (3 << 20) + 17]
        .into_iter()
        .enumerate()
    {
        let data = pseudo_random(len, i as u64 + 1);
        let name = format!("f{i}");
        std::fs::write(s.at(&name), &data).unwrap();
        assert_eq!(
            std::fs::read(s.backing(&name)).unwrap(),
            data,
            "{name}: backing file"
        );
        assert_eq!(
            std::fs::read(s.at(&name)).unwrap(),
            data,
            "{name}: read back"
        );
    }
    // A read past the end, and an overwrite in the middle.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(s.at("f4"))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"middle", 100_000).unwrap();
    let mut buf = vec![0u8; 10];
    let n = std::os::unix::fs::FileExt::read_at(&f, &mut buf, 299_995).unwrap();
    assert_eq!(n, 5, "a read across the end of the file is short");
    drop(f);
    let back = std::fs::read(s.backing("f4")).unwrap();
    assert_eq!(&back[100_000..100_006], b"middle");
    s.stop();
}

#[test]
fn cp_a_tree_and_back_diff_clean() {
    let Some(_on) = enabled() else { return };
    let scratch =
        std::env::temp_dir().join(format!("rl-fuse-uring-scratch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let tree = scratch.join("tree");
    make_tree(&tree, 300);
    let s = UringServer::start(&server_bin(), "tree");
    run_ok(Command::new("cp").arg("-a").arg(&tree).arg(s.at("tree")));
    run_ok(
        Command::new("diff")
            .arg("-r")
            .arg("--no-dereference")
            .arg(&tree)
            .arg(s.at("tree")),
    );
    run_ok(
        Command::new("diff")
            .arg("-r")
            .arg("--no-dereference")
            .arg(&tree)
            .arg(s.backing("tree")),
    );
    let back = scratch.join("back");
    run_ok(Command::new("cp").arg("-a").arg(s.at("tree")).arg(&back));
    run_ok(
        Command::new("diff")
            .arg("-r")
            .arg("--no-dereference")
            .arg(&tree)
            .arg(&back),
    );
    s.stop();
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn fio_verify_crc32c_at_three_block_sizes() {
    if !have("fio") {
        return;
    }
    let Some(_on) = enabled() else { return };
    let s = UringServer::start(&server_bin(), "fio");
    for (bs, direct) in [("4k", "0"), ("128k", "1"), ("1m", "0")] {
        let name = format!("fio-{bs}.dat");
        run_ok(
            Command::new("fio")
                .arg(format!("--name={name}"))
                .arg(format!("--filename={}", s.at(&name).display()))
                .args([
                    "--size=16m",
                    &format!("--bs={bs}"),
                    &format!("--direct={direct}"),
                    "--rw=randrw",
                    "--ioengine=psync",
                    "--verify=crc32c",
                    "--verify_state_save=0",
                    "--verify_fatal=1",
                    "--do_verify=1",
                    "--randrepeat=0",
                    "--output-format=terse",
                ]),
        );
        assert_eq!(
            std::fs::read(s.at(&name)).unwrap(),
            std::fs::read(s.backing(&name)).unwrap(),
            "{bs}: the mount and the backing file differ"
        );
    }
    s.stop();
}
