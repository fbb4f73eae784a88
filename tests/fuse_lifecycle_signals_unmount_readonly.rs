//! The server's life cycle: SIGTERM and SIGINT unmount and exit 0; an unmount from
//! outside ends the server (exit 0); `--readonly` refuses changes with `EROFS` while
//! reads work; `--help` and bad flags answer without mounting.

mod fuse_common;

use std::process::Command;

use fuse_common::*;

fn stops_on(sig: i32) {
    if !can_mount() {
        return;
    }
    let mut m = Mount::start("sig", &[]);
    std::fs::write(m.at("kept"), b"kept").unwrap();
    // SAFETY: kill only sends a signal, to our child.
    assert_eq!(unsafe { libc::kill(m.pid(), sig) }, 0);
    let st = m
        .wait_exit(DEADLINE)
        .expect("the server exits after the signal");
    assert_eq!(st.code(), Some(0), "exit status after signal {sig}");
    assert!(!is_mounted(&m.mnt), "the server unmounted before exiting");
    assert_eq!(std::fs::read(m.backing("kept")).unwrap(), b"kept");
}

#[test]
fn sigterm_unmounts_and_exits_0() {
    stops_on(libc::SIGTERM);
}

#[test]
fn sigint_unmounts_and_exits_0() {
    stops_on(libc::SIGINT);
}

#[test]
fn unmount_from_outside_ends_the_server() {
    if !can_mount() {
        return;
    }
    // One core (no /dev/fuse clone), given as `--flag=value`.
    let mut m = Mount::start("outside", &["--cores=1"]);
    std::fs::write(m.at("f"), b"x").unwrap();
    run_ok(Command::new("umount").arg(&m.mnt));
    let st = m
        .wait_exit(DEADLINE)
        .expect("the server exits once unmounted");
    assert_eq!(st.code(), Some(0));
}

#[test]
fn a_busy_mount_is_detached_at_the_stop() {
    if !can_mount() {
        return;
    }
    let mut m = Mount::start("busy", &[]);
    std::fs::write(m.at("f"), b"x").unwrap();
    // An open file keeps the mount busy: umount(2) says EBUSY, the server detaches it.
    let open = std::fs::File::open(m.at("f")).unwrap();
    // SAFETY: kill only sends a signal, to our child.
    assert_eq!(unsafe { libc::kill(m.pid(), libc::SIGTERM) }, 0);
    let st = m.wait_exit(DEADLINE).expect("the server exits");
    assert_eq!(st.code(), Some(0));
    assert!(!is_mounted(&m.mnt));
    let mut buf = [0u8; 1];
    let e = std::os::unix::fs::FileExt::read_at(&open, &mut buf, 0).unwrap_err();
    assert_eq!(
        e.raw_os_error(),
        Some(libc::ENOTCONN),
        "the open file's connection is gone"
    );
}

#[test]
fn readonly_refuses_changes() {
    if !can_mount() {
        return;
    }
    let m = Mount::start("ro", &["--readonly"]);
    std::fs::write(m.backing("f"), b"data").unwrap();
    assert_eq!(std::fs::read(m.at("f")).unwrap(), b"data");
    let erofs = |r: std::io::Result<()>| r.unwrap_err().raw_os_error();
    assert_eq!(erofs(std::fs::write(m.at("g"), b"")), Some(libc::EROFS));
    assert_eq!(erofs(std::fs::write(m.at("f"), b"new")), Some(libc::EROFS));
    assert_eq!(erofs(std::fs::create_dir(m.at("d"))), Some(libc::EROFS));
    assert_eq!(erofs(std::fs::remove_file(m.at("f"))), Some(libc::EROFS));
    assert_eq!(std::fs::read(m.backing("f")).unwrap(), b"data");
}

#[test]
fn help_and_bad_flags() {
    let out = run(Command::new(server_bin()).arg("--help"));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--source DIR"));
    let out = run(Command::new(server_bin()).args(["--cores", "0"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cores"));
    let out = run(Command::new(server_bin()).args(["--source", "/"]));
    assert_eq!(out.status.code(), Some(2), "--mount is required");
}
