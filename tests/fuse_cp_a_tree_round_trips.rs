//! `cp -a` of a 2,000-file tree (nested directories, symlinks, a hard link, modes, times)
//! onto the mount and back off it: `diff -r` finds no difference either way, the backing
//! directory holds the same tree, and the metadata `cp -a` preserves (modes, mtimes,
//! symlink targets, the hard link) survives the round trip.

mod fuse_common;

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use fuse_common::*;

#[test]
fn cp_a_onto_the_mount_and_back_is_identical() {
    if !can_mount() {
        return;
    }
    let scratch = TempDir::new("cp-tree");
    let tree = scratch.path().join("tree");
    make_tree(&tree, 2000);
    let m = Mount::start("cp", &[]);

    run_ok(Command::new("cp").arg("-a").arg(&tree).arg(m.at("tree")));
    run_ok(
        Command::new("diff")
            .arg("-r")
            .arg("--no-dereference")
            .arg(&tree)
            .arg(m.at("tree")),
    );
    // The data is in the backing directory, not only in the kernel's caches.
    run_ok(
        Command::new("diff")
            .arg("-r")
            .arg("--no-dereference")
            .arg(&tree)
            .arg(m.backing("tree")),
    );

    let back = scratch.path().join("back");
    run_ok(Command::new("cp").arg("-a").arg(m.at("tree")).arg(&back));
    run_ok(
        Command::new("diff")
            .arg("-r")
            .arg("--no-dereference")
            .arg(&tree)
            .arg(&back),
    );

    // What diff does not compare: modes, mtimes, symlinks, hard links.
    for rel in [
        "d0/g0/f0",
        "d0/sub0/g20/f21",
        "d0/sub0/sub1/g40/f49",
        "d3/sub0/g260/f266",
        "d0/g0/link0",
    ] {
        let a = std::fs::symlink_metadata(tree.join(rel)).unwrap();
        let b = std::fs::symlink_metadata(back.join(rel)).unwrap();
        let c = std::fs::symlink_metadata(m.at("tree").join(rel)).unwrap();
        for other in [&b, &c] {
            assert_eq!(a.mode(), other.mode(), "{rel}: mode");
            assert_eq!(a.mtime(), other.mtime(), "{rel}: mtime");
            assert_eq!(a.mtime_nsec(), other.mtime_nsec(), "{rel}: mtime nsec");
            assert_eq!(a.size(), other.size(), "{rel}: size");
        }
    }
    assert_eq!(
        std::fs::read_link(back.join("d0/g0/link0")).unwrap(),
        std::path::Path::new("f0")
    );
    let f0 = std::fs::metadata(m.at("tree/d0/g0/f0")).unwrap();
    let hl = std::fs::metadata(m.at("tree/d0/g0/hardlink")).unwrap();
    assert_eq!(
        (f0.ino(), f0.nlink()),
        (hl.ino(), 2),
        "cp -a keeps the hard link on the mount"
    );
    let f0b = std::fs::metadata(back.join("d0/g0/f0")).unwrap();
    let hlb = std::fs::metadata(back.join("d0/g0/hardlink")).unwrap();
    assert_eq!((f0b.ino(), f0b.nlink()), (hlb.ino(), 2), "and off it");

    // Removing the tree through the mount empties the backing directory.
    run_ok(Command::new("rm").arg("-rf").arg(m.at("tree")));
    assert!(!m.backing("tree").exists());
}
