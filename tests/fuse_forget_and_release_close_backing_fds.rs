//! The server's fds follow the kernel's references: each node the kernel looked up holds
//! one `O_PATH` fd until the kernel forgets it (FORGET/BATCH_FORGET), and each open file
//! one fd until RELEASE. Counted in the server's /proc/PID/fd: creating 600 files adds
//! about 600 fds, opening and closing them adds none for good, and removing them (the
//! kernel evicts unlinked inodes and forgets them) gives every one back.

mod fuse_common;

use std::time::{Duration, Instant};

use fuse_common::*;

fn fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Wait until the server holds at most `limit` fds; the count at the end.
fn settle_at_most(pid: i32, limit: usize) -> usize {
    let start = Instant::now();
    loop {
        let n = fds(pid);
        if n <= limit || start.elapsed() > Duration::from_secs(30) {
            return n;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn nodes_and_handles_give_their_fds_back() {
    if !can_mount() {
        return;
    }
    let m = Mount::start("forget", &[]);
    let pid = m.pid();
    std::fs::create_dir(m.at("d")).unwrap();
    let base = fds(pid);
    for i in 0..600 {
        std::fs::write(m.at(&format!("d/f{i}")), b"x").unwrap();
    }
    let with_nodes = fds(pid);
    assert!(
        with_nodes >= base + 600,
        "600 looked-up nodes hold 600 O_PATH fds ({base} -> {with_nodes})"
    );
    // Open and close every file several times: no handle outlives its RELEASE.
    for _ in 0..3 {
        for i in 0..600 {
            let _ = std::fs::read(m.at(&format!("d/f{i}"))).unwrap();
        }
    }
    let after_opens = settle_at_most(pid, with_nodes);
    assert!(
        after_opens <= with_nodes,
        "handles leaked: {with_nodes} -> {after_opens}"
    );
    // Unlinked and unused, the inodes are evicted and forgotten.
    for i in 0..600 {
        std::fs::remove_file(m.at(&format!("d/f{i}"))).unwrap();
    }
    let end = settle_at_most(pid, base);
    assert!(
        end <= base,
        "forgotten nodes keep their fds: {base} before, {end} after removal"
    );
}
