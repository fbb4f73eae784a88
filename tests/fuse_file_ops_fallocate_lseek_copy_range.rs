//! File operations beyond read and write, through the mount and checked on the backing
//! file: `fallocate` (allocate, punch a hole), `lseek` with `SEEK_DATA`/`SEEK_HOLE`,
//! `copy_file_range` between two files of the mount, `fsync`/`fdatasync`, `O_APPEND`,
//! `O_TRUNC`, `O_EXCL`, and readdir of a directory too large for one reply.

mod fuse_common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};

use fuse_common::*;

#[test]
fn fallocate_punch_hole_and_seek_data_hole() {
    if !can_mount() {
        return;
    }
    let m = Mount::start("falloc", &[]);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.at("f"))
        .unwrap();
    let mib = 1 << 20;
    // SAFETY: `f` is an open fd; plain integer arguments.
    assert_eq!(unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, 4 * mib) }, 0);
    assert_eq!(std::fs::metadata(m.backing("f")).unwrap().len(), 4 << 20);
    assert!(std::fs::metadata(m.backing("f")).unwrap().blocks() >= 8 * 1024);
    f.write_all_at(&vec![7u8; 4 << 20], 0).unwrap();
    let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    // SAFETY: as above.
    assert_eq!(unsafe { libc::fallocate(f.as_raw_fd(), mode, mib, mib) }, 0);
    let mut buf = vec![1u8; 1 << 20];
    f.read_exact_at(&mut buf, mib as u64).unwrap();
    assert!(buf.iter().all(|&b| b == 0), "a punched hole reads as zeros");
    let back = std::fs::read(m.backing("f")).unwrap();
    assert!(back[1 << 20..2 << 20].iter().all(|&b| b == 0));
    assert!(back[2 << 20..].iter().all(|&b| b == 7));
    // SAFETY: as above.
    let hole = unsafe { libc::lseek(f.as_raw_fd(), 0, libc::SEEK_HOLE) };
    assert_eq!(hole, mib, "SEEK_HOLE finds the punched hole");
    // SAFETY: as above.
    let data = unsafe { libc::lseek(f.as_raw_fd(), mib, libc::SEEK_DATA) };
    assert_eq!(data, 2 * mib, "SEEK_DATA skips it");
    // SAFETY: as above.
    let past = unsafe { libc::lseek(f.as_raw_fd(), 5 * mib, libc::SEEK_DATA) };
    assert_eq!(
        (past, std::io::Error::last_os_error().raw_os_error()),
        (-1, Some(libc::ENXIO)),
        "SEEK_DATA past the end: the backing ENXIO"
    );
    f.sync_all().unwrap();
    f.sync_data().unwrap();
    // FSYNCDIR: an fsync of a directory of the mount.
    std::fs::File::open(&m.mnt).unwrap().sync_all().unwrap();
}

#[test]
fn copy_file_range_between_files_of_the_mount() {
    if !can_mount() {
        return;
    }
    let m = Mount::start("cfr", &[]);
    let data = pseudo_random(3 << 20, 9);
    std::fs::write(m.at("a"), &data).unwrap();
    let a = std::fs::File::open(m.at("a")).unwrap();
    let b = std::fs::File::create(m.at("b")).unwrap();
    let (mut off_in, mut off_out) = (4096i64, 0i64);
    let mut left = 2 << 20;
    while left > 0 {
        // SAFETY: both fds are open; the offsets are writable locals.
        let n = unsafe {
            libc::copy_file_range(
                a.as_raw_fd(),
                &mut off_in,
                b.as_raw_fd(),
                &mut off_out,
                left,
                0,
            )
        };
        assert!(
            n > 0,
            "copy_file_range: {}",
            std::io::Error::last_os_error()
        );
        left -= n as usize;
    }
    drop(b);
    assert_eq!(
        std::fs::read(m.at("b")).unwrap(),
        &data[4096..4096 + (2 << 20)]
    );
    assert_eq!(
        std::fs::read(m.backing("b")).unwrap(),
        &data[4096..4096 + (2 << 20)]
    );
}

#[test]
fn append_trunc_excl_and_big_directories() {
    if !can_mount() {
        return;
    }
    let m = Mount::start("flags", &[]);
    std::fs::write(m.at("f"), b"head-").unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(m.at("f"))
        .unwrap();
    f.write_all(b"tail").unwrap();
    drop(f);
    assert_eq!(std::fs::read(m.backing("f")).unwrap(), b"head-tail");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .truncate(true)
        .open(m.at("f"))
        .unwrap();
    assert_eq!(std::fs::metadata(m.backing("f")).unwrap().len(), 0);
    f.write_all(b"xyz").unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "xyz");
    let e = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(m.at("f"))
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(m.at("new"))
        .unwrap();
    drop(created);
    assert_eq!(
        std::fs::metadata(m.backing("new")).unwrap().mode() & 0o777,
        0o640 & !umask()
    );

    // 3,000 entries with long names: many READDIR(PLUS) replies, each resumed at the
    // backing directory's offset; every name is listed exactly once.
    std::fs::create_dir(m.at("big")).unwrap();
    for i in 0..3000 {
        std::fs::write(m.at(&format!("big/{i:0>120}")), b"").unwrap();
    }
    let mut names: Vec<String> = std::fs::read_dir(m.at("big"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let want: Vec<String> = (0..3000).map(|i| format!("{i:0>120}")).collect();
    assert_eq!(names, want);
}

fn umask() -> u32 {
    // SAFETY: umask cannot fail; the old mask is put back at once.
    unsafe {
        let old = libc::umask(0o022);
        libc::umask(old);
        old
    }
}
