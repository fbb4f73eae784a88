//! `stat` through the mount reports the backing file's fields (inode number, type and
//! mode, links, owner, size, blocks, block size, device numbers of special files, the
//! three times to the nanosecond), for every file type, and after changes made through
//! the mount (chmod, chown, truncate, utimensat, writes) the two still agree.

mod fuse_common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use fuse_common::*;

fn lstat(p: &Path) -> libc::stat {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: zeroed is a valid `stat`; lstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string, writable `st`.
    let r = unsafe { libc::lstat(c.as_ptr(), &mut st) };
    assert_eq!(
        r,
        0,
        "lstat {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
    st
}

fn assert_same(m: &Mount, rel: &str) {
    let (a, b) = (lstat(&m.at(rel)), lstat(&m.backing(rel)));
    let fields = |s: &libc::stat| {
        [
            ("ino", s.st_ino as i64),
            ("mode", s.st_mode as i64),
            ("nlink", s.st_nlink as i64),
            ("uid", s.st_uid as i64),
            ("gid", s.st_gid as i64),
            ("rdev", s.st_rdev as i64),
            ("size", s.st_size),
            ("blocks", s.st_blocks),
            ("blksize", s.st_blksize),
            ("atime", s.st_atime),
            ("atime_nsec", s.st_atime_nsec),
            ("mtime", s.st_mtime),
            ("mtime_nsec", s.st_mtime_nsec),
            ("ctime", s.st_ctime),
            ("ctime_nsec", s.st_ctime_nsec),
        ]
    };
    for ((name, x), (_, y)) in fields(&a).into_iter().zip(fields(&b)) {
        assert_eq!(
            x, y,
            "{rel}: st_{name} on the mount differs from the backing file's"
        );
    }
}

fn path_c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

#[test]
fn stat_fields_equal_the_backing_files() {
    if !can_mount() {
        return;
    }
    let m = Mount::start("stat", &[]);
    // Made in the backing directory before the mount sees them...
    std::fs::write(m.backing("plain"), pseudo_random(12345, 1)).unwrap();
    std::fs::create_dir(m.backing("dir")).unwrap();
    std::os::unix::fs::symlink("plain", m.backing("sym")).unwrap();
    std::fs::hard_link(m.backing("plain"), m.backing("hard")).unwrap();
    let (fifo, dev) = (path_c(&m.backing("fifo")), path_c(&m.backing("chardev")));
    // SAFETY: valid C strings.
    unsafe {
        assert_eq!(libc::mkfifo(fifo.as_ptr(), 0o600), 0);
        assert_eq!(
            libc::mknod(dev.as_ptr(), libc::S_IFCHR | 0o640, libc::makedev(1, 3)),
            0
        );
    }
    // ...and through it.
    std::fs::write(m.at("made"), pseudo_random(300_000, 2)).unwrap();
    std::fs::create_dir(m.at("madedir")).unwrap();
    let sparse = std::fs::File::create(m.at("sparse")).unwrap();
    sparse.set_len(10 << 20).unwrap();
    drop(sparse);
    let cdev = path_c(&m.at("madedev"));
    // SAFETY: a valid C string.
    let made_dev =
        unsafe { libc::mknod(cdev.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 5)) };
    assert_eq!(made_dev, 0);
    for rel in [
        "", "plain", "dir", "sym", "hard", "fifo", "chardev", "made", "madedir", "sparse",
        "madedev",
    ] {
        assert_same(&m, rel);
    }
    assert_eq!(lstat(&m.at("chardev")).st_rdev, libc::makedev(1, 3));
    assert_eq!(lstat(&m.at("plain")).st_nlink, 2);

    // Changes through the mount land on the backing file, and stat agrees after each.
    let made = path_c(&m.at("made"));
    // SAFETY: valid C strings and plain arguments.
    unsafe {
        // chown first: a chown clears the set-user-ID bit (on the backing file as anywhere).
        assert_eq!(libc::chown(made.as_ptr(), 1234, 5678), 0);
        assert_eq!(libc::chmod(made.as_ptr(), 0o4751), 0);
        assert_eq!(libc::truncate(made.as_ptr(), 4097), 0);
        let times = [
            libc::timespec {
                tv_sec: 1_000_000_000,
                tv_nsec: 123_456_789,
            },
            libc::timespec {
                tv_sec: 1_500_000_000,
                tv_nsec: 987_654_321,
            },
        ];
        assert_eq!(
            libc::utimensat(libc::AT_FDCWD, made.as_ptr(), times.as_ptr(), 0),
            0
        );
    }
    let st = lstat(&m.backing("made"));
    assert_eq!(
        (
            st.st_mode & 0o7777,
            st.st_uid,
            st.st_gid,
            st.st_size,
            st.st_atime,
            st.st_atime_nsec,
            st.st_mtime,
            st.st_mtime_nsec
        ),
        (
            0o4751,
            1234,
            5678,
            4097,
            1_000_000_000,
            123_456_789,
            1_500_000_000,
            987_654_321
        )
    );
    assert_same(&m, "made");
    // UTIME_NOW on mtime only, then a write that grows the file.
    // SAFETY: as above.
    unsafe {
        let times = [
            libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_OMIT,
            },
            libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_NOW,
            },
        ];
        assert_eq!(
            libc::utimensat(libc::AT_FDCWD, made.as_ptr(), times.as_ptr(), 0),
            0
        );
    }
    assert_eq!(
        lstat(&m.backing("made")).st_atime,
        1_000_000_000,
        "UTIME_OMIT kept atime"
    );
    assert!(
        lstat(&m.backing("made")).st_mtime > 1_500_000_000,
        "UTIME_NOW set mtime"
    );
    std::fs::OpenOptions::new()
        .append(true)
        .open(m.at("made"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"tail"))
        .unwrap();
    assert_eq!(lstat(&m.backing("made")).st_size, 4101);
    assert_same(&m, "made");
    // statfs reports the backing file system.
    let (a, b) = (nix_statvfs(&m.mnt), nix_statvfs(&m.source));
    assert_eq!(
        (a.f_bsize, a.f_blocks, a.f_files),
        (b.f_bsize, b.f_blocks, b.f_files)
    );
}

fn nix_statvfs(p: &Path) -> libc::statvfs {
    let c = path_c(p);
    // SAFETY: zeroed is a valid `statvfs`; statvfs fills it.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and writable `s`.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut s) }, 0);
    s
}

/// A file, directory, symlink or FIFO an unprivileged caller makes through the mount
/// belongs to that caller on the backing file system too (the server, root, makes it and
/// hands it over), and the kernel's permission checks (`default_permissions`) refuse what
/// the backing modes refuse.
#[test]
fn what_other_users_create_belongs_to_them() {
    if !can_mount() || !have("setpriv") {
        return;
    }
    let m = Mount::start("owner", &[]);
    std::fs::create_dir(m.at("pub")).unwrap();
    std::fs::create_dir(m.at("private")).unwrap();
    let (p, q) = (path_c(&m.at("pub")), path_c(&m.at("private")));
    // SAFETY: valid C strings.
    unsafe {
        assert_eq!(libc::chmod(p.as_ptr(), 0o1777), 0);
        assert_eq!(libc::chmod(q.as_ptr(), 0o700), 0);
    }
    let as_nobody = |script: &str| {
        run(std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "sh",
                "-c",
            ])
            .arg(script))
    };
    let pub_dir = m.at("pub");
    let out = as_nobody(&format!(
        "cd {} && echo hi > f && mkdir d && ln -s f s && mkfifo p",
        pub_dir.display()
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for rel in ["pub/f", "pub/d", "pub/s", "pub/p"] {
        let st = lstat(&m.backing(rel));
        assert_eq!(
            (st.st_uid, st.st_gid),
            (65534, 65534),
            "{rel} on the backing side"
        );
        assert_same(&m, rel);
    }
    let out = as_nobody(&format!("touch {}/x", m.at("private").display()));
    assert!(
        !out.status.success(),
        "a 0700 root directory refuses nobody"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"));
    assert!(!m.backing("private/x").exists());
}
