//! `examples/fuse_passthrough --mirror DIR`: after `cp -a` of a tree, fio random writes,
//! dd overwrites, truncates (shrink and grow), fallocate and a punched hole, renames of a
//! file and a directory, hard and symbolic links, removals, mkdir/rmdir and a chmod made
//! through the mount, `diff -r` finds the source and the mirror identical, and the chmod'd
//! file has the same mode in both. Over the classic transport and over io_uring (where a
//! WRITE is one group with a `WRITE_FIXED` member per copy). A mirror that does not exist
//! keeps the server from starting.

mod fuse_common;
mod fuse_uring_support;

use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use fuse_common::{Mount, TempDir, can_mount, have, make_tree, run, run_ok, server_bin};
use fuse_uring_support::UringEnabled;

/// Changes of every mirrored kind, made through the mount at `mnt`.
fn exercise(mnt: &Path, scratch: &Path) {
    let tree = scratch.join("tree");
    make_tree(&tree, 200);
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(&tree)
            .arg(mnt.join("tree")),
    );
    run_ok(
        Command::new("fio")
            .arg("--name=mirror")
            .arg(format!("--filename={}", mnt.join("fio").display()))
            .args([
                "--size=16m",
                "--rw=randwrite",
                "--bsrange=4k-1m",
                "--verify=crc32c",
                "--verify_state_save=0",
                "--verify_fatal=1",
                "--do_verify=1",
                "--randrepeat=0",
                "--output-format=terse",
            ]),
    );
    run_ok(
        Command::new("dd")
            .arg("if=/dev/urandom")
            .arg(format!("of={}", mnt.join("fio").display()))
            .args([
                "bs=4096",
                "seek=7",
                "count=3",
                "conv=notrunc",
                "status=none",
            ]),
    );
    let f = mnt.join("tree/d0/g0/f1");
    run_ok(Command::new("truncate").args(["-s", "12345"]).arg(&f));
    run_ok(Command::new("truncate").args(["-s", "3M"]).arg(&f));
    run_ok(
        Command::new("fallocate")
            .args(["-l", "1M"])
            .arg(mnt.join("prealloc")),
    );
    run_ok(
        Command::new("fallocate")
            .args(["--punch-hole", "-o", "4096", "-l", "8192"])
            .arg(mnt.join("fio")),
    );
    std::fs::rename(mnt.join("tree/d0/g0/f2"), mnt.join("renamed")).unwrap();
    std::fs::rename(mnt.join("tree/d1"), mnt.join("tree/d1-moved")).unwrap();
    std::fs::hard_link(mnt.join("renamed"), mnt.join("renamed-link")).unwrap();
    std::os::unix::fs::symlink("renamed", mnt.join("renamed-sym")).unwrap();
    std::fs::remove_file(mnt.join("tree/d0/g0/f3")).unwrap();
    std::fs::create_dir(mnt.join("gone")).unwrap();
    std::fs::create_dir(mnt.join("kept")).unwrap();
    std::fs::remove_dir(mnt.join("gone")).unwrap();
    std::fs::write(mnt.join("kept/new"), b"written after the rename").unwrap();
    std::fs::set_permissions(mnt.join("renamed"), std::fs::Permissions::from_mode(0o640)).unwrap();
}

/// `diff -r` of `source` and `mirror`, the chmod'd file's mode, and that the mirror is not
/// trivially equal (empty).
fn check(source: &Path, mirror: &Path) {
    run_ok(
        Command::new("diff")
            .args(["-r", "--no-dereference"])
            .arg(source)
            .arg(mirror),
    );
    let mode = |p: &Path| {
        std::fs::metadata(p.join("renamed"))
            .unwrap()
            .permissions()
            .mode()
    };
    assert_eq!(mode(source) & 0o7777, 0o640);
    assert_eq!(mode(mirror) & 0o7777, 0o640, "the chmod reached the mirror");
    let files = walk(mirror);
    assert!(files > 200, "the mirror holds {files} entries");
    assert!(!mirror.join("tree/d0/g0/f3").exists());
    assert!(mirror.join("tree/d1-moved").is_dir() && !mirror.join("tree/d1").exists());
}

fn walk(p: &Path) -> usize {
    std::fs::read_dir(p)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            1 + if e.file_type().unwrap().is_dir() {
                walk(&e.path())
            } else {
                0
            }
        })
        .sum()
}

#[test]
fn classic_mirror_matches_source() {
    if !can_mount() || !have("fio") || !have("fallocate") {
        return;
    }
    let mirror = TempDir::new("mirror");
    let scratch = TempDir::new("mirror-scratch");
    let m = Mount::start("mirror-src", &["--mirror", mirror.path().to_str().unwrap()]);
    exercise(&m.mnt, scratch.path());
    check(&m.source, mirror.path());
}

#[test]
fn uring_mirror_matches_source() {
    if !can_mount() || !have("fio") || !have("fallocate") {
        return;
    }
    let _on = match UringEnabled::acquire() {
        Ok(g) => g,
        Err(why) => {
            eprintln!("SKIP: {why}");
            return;
        }
    };
    let dir = TempDir::new("mirror-uring");
    let (source, mnt, mirror) = (dir.0.join("src"), dir.0.join("mnt"), dir.0.join("mirror"));
    for d in [&source, &mnt, &mirror] {
        std::fs::create_dir(d).unwrap();
    }
    let mut child = Command::new(server_bin())
        .arg("--source")
        .arg(&source)
        .arg("--mount")
        .arg(&mnt)
        .arg("--mirror")
        .arg(&mirror)
        .args(["--cores", "2"])
        .env("FUSE_PASSTHROUGH_TRANSPORT", "uring")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fuse_passthrough");
    let mut line = String::new();
    let _ = std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
    // Stops the server and detaches the mount whatever happens below.
    struct Stop(std::process::Child, std::path::PathBuf);
    impl Drop for Stop {
        fn drop(&mut self) {
            // SAFETY: kill only sends a signal, to our own child.
            unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
            std::thread::sleep(std::time::Duration::from_millis(200));
            if self.0.try_wait().ok().flatten().is_none() {
                fuse_uring_support::abort(&self.1);
                let _ = self.0.kill();
            }
            let _ = self.0.wait();
            let _ = fuse_uring_support::umount(&self.1, libc::MNT_DETACH);
        }
    }
    let stop = Stop(child, mnt.clone());
    assert!(
        line.contains("io_uring"),
        "the server does not serve over io_uring: {line:?}"
    );
    let scratch = TempDir::new("mirror-uring-scratch");
    exercise(&mnt, scratch.path());
    check(&source, &mirror);
    drop(stop);
}

#[test]
fn a_missing_mirror_keeps_the_server_from_starting() {
    if !can_mount() {
        return;
    }
    let dir = TempDir::new("mirror-missing");
    let (source, mnt) = (dir.0.join("src"), dir.0.join("mnt"));
    std::fs::create_dir(&source).unwrap();
    std::fs::create_dir(&mnt).unwrap();
    let out = run(Command::new(server_bin())
        .env("FUSE_PASSTHROUGH_TRANSPORT", "classic")
        .arg("--source")
        .arg(&source)
        .arg("--mount")
        .arg(&mnt)
        .arg("--mirror")
        .arg(dir.0.join("no-such-dir")));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with a missing mirror");
    assert!(
        err.contains("--mirror"),
        "the error names the mirror: {err}"
    );
    assert!(!fuse_common::is_mounted(&mnt));
}
