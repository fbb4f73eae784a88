//! Tools that lean on a file system's corners, run on the mount: git (`init`, `add`,
//! `commit`, `status`, `log`, `fsck`: lock files renamed over, many small writes, readdir,
//! mmap reads) and tar (create from the mount, extract onto it), each on the 2,000-file
//! tree, checked against the original.

mod fuse_common;

use std::process::Command;

use fuse_common::*;

fn git(dir: &std::path::Path) -> Command {
    let mut c = Command::new("git");
    c.arg("-C")
        .arg(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"]);
    c
}

#[test]
fn git_init_add_commit_status_log() {
    if !can_mount() || !have("git") {
        return;
    }
    let m = Mount::start("git", &[]);
    let repo = m.at("repo");
    make_tree(&repo, 2000);
    run_ok(git(&repo).args(["init", "-q"]));
    run_ok(git(&repo).args(["add", "-A"]));
    run_ok(git(&repo).args(["commit", "-q", "-m", "the tree"]));
    let status = run_ok(git(&repo).args(["status", "--porcelain"]));
    assert!(
        status.stdout.is_empty(),
        "a fresh commit leaves a clean tree: {:?}",
        String::from_utf8_lossy(&status.stdout)
    );
    let files = run_ok(git(&repo).args(["ls-files"]));
    // 2,000 files, 100 symlinks, one hard link (git stores it as a file).
    assert_eq!(
        files
            .stdout
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count(),
        2101
    );
    // A change shows up, is committed, and the history has both commits.
    std::fs::write(repo.join("d0/g0/f1"), b"changed\n").unwrap();
    let status = run_ok(git(&repo).args(["status", "--porcelain"]));
    assert_eq!(String::from_utf8_lossy(&status.stdout).trim(), "M d0/g0/f1");
    run_ok(git(&repo).args(["commit", "-q", "-am", "change"]));
    let log = run_ok(git(&repo).args(["log", "--format=%s"]));
    assert_eq!(String::from_utf8_lossy(&log.stdout), "change\nthe tree\n");
    run_ok(git(&repo).args(["fsck", "--strict"]));
    // The same repository read from the backing directory agrees.
    let log = run_ok(git(&m.backing("repo")).args(["log", "--format=%s"]));
    assert_eq!(String::from_utf8_lossy(&log.stdout), "change\nthe tree\n");
}

#[test]
fn tar_create_from_and_extract_onto_the_mount() {
    if !can_mount() || !have("tar") {
        return;
    }
    let scratch = TempDir::new("tar");
    let tree = scratch.path().join("tree");
    make_tree(&tree, 2000);
    let m = Mount::start("tar", &[]);
    // Extract onto the mount, compare.
    let archive = scratch.path().join("a.tar");
    run_ok(
        Command::new("tar")
            .arg("-cf")
            .arg(&archive)
            .arg("-C")
            .arg(&tree)
            .arg("."),
    );
    std::fs::create_dir(m.at("x")).unwrap();
    run_ok(
        Command::new("tar")
            .arg("-xpf")
            .arg(&archive)
            .arg("-C")
            .arg(m.at("x")),
    );
    run_ok(
        Command::new("diff")
            .arg("-r")
            .arg("--no-dereference")
            .arg(&tree)
            .arg(m.at("x")),
    );
    // Create from the mount (the archive itself written to the mount), extract off it.
    run_ok(
        Command::new("tar")
            .arg("-cf")
            .arg(m.at("b.tar"))
            .arg("-C")
            .arg(m.at("x"))
            .arg("."),
    );
    let out = scratch.path().join("out");
    std::fs::create_dir(&out).unwrap();
    run_ok(
        Command::new("tar")
            .arg("-xpf")
            .arg(m.at("b.tar"))
            .arg("-C")
            .arg(&out),
    );
    run_ok(
        Command::new("diff")
            .arg("-r")
            .arg("--no-dereference")
            .arg(&tree)
            .arg(&out),
    );
    // Both archives list the same members.
    let list = |p: &std::path::Path| {
        let o = run_ok(Command::new("tar").arg("-tf").arg(p));
        let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    };
    assert_eq!(list(&archive), list(&m.at("b.tar")));
}
