//! The server killed with SIGKILL while a client writes: the writer fails (its write in
//! flight with the connection's abort, `EIO`/`ECONNABORTED`, or `ENOTCONN`) instead of
//! hanging, the mount answers `ENOTCONN` to everyone afterwards, and
//! it can be unmounted (plain `umount`, or `umount -l` if the kernel still calls it busy).

mod fuse_common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fuse_common::*;

#[test]
fn sigkill_mid_write_leaves_an_enotconn_mount_that_unmounts() {
    if !can_mount() {
        return;
    }
    let mut m = Mount::start("kill", &[]);
    // A writer that would run for a long time: 8 GiB in 1 MiB writes.
    let mut writer = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", m.at("big").display()))
        .args(["bs=1M", "count=8192", "status=none"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dd");
    // Wait until the write is well under way (data reaching the backing file).
    let start = Instant::now();
    while std::fs::metadata(m.backing("big")).map_or(0, |md| md.len()) < 8 << 20 {
        assert!(start.elapsed() < DEADLINE, "dd never got going");
        assert!(writer.try_wait().unwrap().is_none(), "dd ended early");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: kill only sends a signal, to our child.
    assert_eq!(unsafe { libc::kill(m.pid(), libc::SIGKILL) }, 0);
    let status = m
        .wait_exit(Duration::from_secs(30))
        .expect("the killed server is reaped");
    assert!(!status.success());

    // The writer ends, with an error, without help.
    let start = Instant::now();
    let st = loop {
        if let Some(st) = writer.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > DEADLINE {
            let _ = writer.kill();
            panic!("dd hung on the mount of a dead server");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut writer.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!st.success(), "dd cannot have written 8 GiB");
    // The write in flight when the server died fails as the kernel ends it: aborted with
    // the connection (EIO, then ECONNABORTED at close) or, once it is gone, ENOTCONN
    // (which one depends on where the write was; seen both here).
    assert!(
        [
            "Transport endpoint is not connected",
            "Input/output error",
            "connection abort"
        ]
        .iter()
        .any(|e| err.contains(e)),
        "dd's error: {err:?}"
    );

    // Every later access: ENOTCONN, from a separate process that must not hang.
    let e = std::fs::metadata(m.at("big")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOTCONN));
    let e = std::fs::read_dir(&m.mnt).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOTCONN));
    let out = run(Command::new("ls").arg(&m.mnt));
    assert!(!out.status.success());

    // And it unmounts.
    if umount(&m.mnt, 0).is_err() {
        umount(&m.mnt, libc::MNT_DETACH).expect("umount -l of a dead server's mount");
    }
    assert!(!is_mounted(&m.mnt));
    // What was written before the kill is in the backing file.
    assert!(std::fs::metadata(m.backing("big")).unwrap().len() >= 8 << 20);
}
