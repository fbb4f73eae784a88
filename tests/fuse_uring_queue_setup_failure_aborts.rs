//! `examples/fuse_passthrough` over FUSE's io_uring transport when one core cannot set up
//! its queue after the other core has registered its slots (forced with the example's test
//! hook `FUSE_PASSTHROUGH_FAIL_QUEUE_SETUP=1`). The kernel cannot unregister the slots
//! already registered, and its ring never becomes ready without an entry in every queue,
//! so the server must end the connection itself (fusectl `abort`): the process exits with
//! an error that names the failed queue, the mount is gone, and a client that touches the
//! mount point meanwhile gets an answer instead of hanging.

mod fuse_common;
mod fuse_uring_support;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fuse_common::{is_mounted, server_bin};
use fuse_uring_support::{UringEnabled, abort};

/// A bound on waits that only a hang exceeds (not a timing assertion).
const HANG: Duration = Duration::from_secs(60);

#[test]
fn a_core_failing_queue_setup_aborts_the_connection_and_exits() {
    let _on = match UringEnabled::acquire() {
        Ok(g) => g,
        Err(why) => {
            eprintln!("SKIP: {why}");
            return;
        }
    };
    let dir = std::env::temp_dir().join(format!("rl-fuse-uring-setupfail-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (source, mnt) = (dir.join("src"), dir.join("mnt"));
    std::fs::create_dir_all(&source).unwrap();
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::write(source.join("f"), b"data").unwrap();
    let stderr = dir.join("stderr");
    let mut child = Command::new(server_bin())
        .arg("--source")
        .arg(&source)
        .arg("--mount")
        .arg(&mnt)
        .args(["--cores", "2"])
        .env("FUSE_PASSTHROUGH_TRANSPORT", "uring")
        .env("FUSE_PASSTHROUGH_FAIL_QUEUE_SETUP", "1")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("spawn fuse_passthrough");
    let mut line = String::new();
    let _ = std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);

    // A client on the mount, as a user would be: it must get an answer (data, or an error
    // once the connection is aborted), never block for good.
    let (tx, rx) = mpsc::channel();
    let target = mnt.join("f");
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::read(&target).map_err(|e| e.to_string()));
    });

    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if start.elapsed() > HANG {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let err = std::fs::read_to_string(&stderr).unwrap_or_default();
    if status.is_none() {
        // Leave no hung mount behind for the next test.
        abort(&mnt);
        let _ = child.kill();
        let _ = child.wait();
    }
    let client = rx.recv_timeout(HANG);
    let _ = fuse_uring_support::umount(&mnt, libc::MNT_DETACH);
    let mounted = is_mounted(&mnt);
    let _ = std::fs::remove_dir_all(&dir);

    let status = status.unwrap_or_else(|| panic!("the server still runs; stderr: {err}"));
    assert!(
        !status.success(),
        "a failed queue setup must fail the server: {status:?}; stderr: {err}"
    );
    assert!(
        err.contains("core 1: setting up FUSE ring queue")
            && err.contains("aborted the connection"),
        "the error names the failed queue: {err}"
    );
    assert!(!mounted, "the mount is left behind");
    assert!(
        client.is_ok(),
        "a client of the mount hangs after the server exited; stderr: {err}"
    );
}
