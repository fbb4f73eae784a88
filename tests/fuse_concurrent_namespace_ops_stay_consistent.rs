//! Four clients at once (served by both cores) create, write, rename over each other's
//! names, hard-link, stat, list and unlink in one shared directory. Afterwards the mount
//! and the backing directory list the same names with the same contents and inode
//! numbers, no operation failed except as the races allow (`ENOENT` for a name another
//! client just took away), and once everything is removed the server holds no more fds
//! than before: the inode table's lookup counts stayed exact under concurrent LOOKUP,
//! FORGET, RENAME and UNLINK.

mod fuse_common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use fuse_common::*;

const CLIENTS: usize = 4;
const ROUNDS: usize = 300;
const SHARED_NAMES: usize = 16;

fn tolerate_enoent<T>(r: std::io::Result<T>, what: &str) {
    if let Err(e) = r {
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{what}: {e}");
    }
}

fn listing(dir: &Path) -> BTreeMap<String, (u64, Vec<u8>)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let ino = e.metadata().unwrap().ino();
            (name, (ino, std::fs::read(e.path()).unwrap()))
        })
        .collect()
}

#[test]
fn concurrent_clients_leave_mount_and_backing_in_agreement() {
    if !can_mount() {
        return;
    }
    let m = Mount::start("concurrent", &[]);
    std::fs::create_dir(m.at("shared")).unwrap();
    let fds = |pid: i32| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    let base = fds(m.pid());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let dir = m.at("shared");
            std::thread::spawn(move || {
                for i in 0..ROUNDS {
                    let mine = dir.join(format!("c{t}-{i}"));
                    let body = format!("client {t} round {i}\n").repeat(1 + i % 7);
                    std::fs::write(&mine, &body).unwrap();
                    assert_eq!(std::fs::read(&mine).unwrap(), body.as_bytes());
                    let shared = dir.join(format!("s{}", (i * 7 + t) % SHARED_NAMES));
                    match i % 4 {
                        // Rename over a name other clients also use.
                        0 | 1 => std::fs::rename(&mine, &shared).unwrap(),
                        // A second name, then the first one goes.
                        2 => {
                            let link = dir.join(format!("l{t}-{i}"));
                            std::fs::hard_link(&mine, &link).unwrap();
                            assert_eq!(std::fs::metadata(&link).unwrap().nlink(), 2);
                            std::fs::remove_file(&mine).unwrap();
                        }
                        _ => {
                            tolerate_enoent(std::fs::remove_file(&shared), "unlink a shared name");
                            std::fs::remove_file(&mine).unwrap();
                        }
                    }
                    tolerate_enoent(std::fs::metadata(&shared), "stat a shared name");
                    if i % 25 == 0 {
                        for e in std::fs::read_dir(&dir).unwrap() {
                            let e = e.unwrap();
                            tolerate_enoent(e.metadata(), "stat a listed name");
                        }
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("a client failed");
    }
    let on_mount = listing(&m.at("shared"));
    assert_eq!(on_mount, listing(&m.backing("shared")));
    // Every link name l* survives (its first name was removed): one per client per 4 rounds.
    let links = on_mount.keys().filter(|k| k.starts_with('l')).count();
    assert_eq!(links, CLIENTS * ROUNDS / 4);

    std::fs::remove_dir_all(m.at("shared")).unwrap();
    assert!(!m.backing("shared").exists());
    let start = Instant::now();
    while fds(m.pid()) > base && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        fds(m.pid()) <= base,
        "the server keeps fds of removed files: {base} before, {} after",
        fds(m.pid())
    );
}
