//! Namespace and xattr operations through the mount, each checked on the mount and in the
//! backing directory: rename (plain, over an existing file, `RENAME_NOREPLACE`,
//! `RENAME_EXCHANGE`, across directories), hard links (same inode, link count), symlinks
//! (`readlink`, a dangling one), mknod (a FIFO), xattrs (set, get, list, replace, remove),
//! and errors that keep the backing file system's errno.

mod fuse_common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use fuse_common::*;

fn c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn errno_of(r: i32) -> i32 {
    if r == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap()
    }
}

fn renameat2(from: &Path, to: &Path, flags: u32) -> i32 {
    let (f, t) = (c(from), c(to));
    // SAFETY: valid C strings.
    errno_of(unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            flags,
        )
    })
}

fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error().expect("an OS error")
}

#[test]
fn rename_in_all_its_forms() {
    if !can_mount() {
        return;
    }
    let m = Mount::start("rename", &[]);
    std::fs::write(m.at("a"), b"A").unwrap();
    std::fs::write(m.at("b"), b"B").unwrap();
    std::fs::create_dir(m.at("dir")).unwrap();

    std::fs::rename(m.at("a"), m.at("a2")).unwrap();
    assert!(!m.backing("a").exists());
    assert_eq!(std::fs::read(m.backing("a2")).unwrap(), b"A");

    assert_eq!(
        renameat2(&m.at("a2"), &m.at("b"), libc::RENAME_NOREPLACE),
        libc::EEXIST
    );
    assert_eq!(renameat2(&m.at("a2"), &m.at("b"), libc::RENAME_EXCHANGE), 0);
    assert_eq!(std::fs::read(m.at("b")).unwrap(), b"A");
    assert_eq!(std::fs::read(m.at("a2")).unwrap(), b"B");
    assert_eq!(std::fs::read(m.backing("b")).unwrap(), b"A");

    // Over an existing file, into another directory.
    std::fs::rename(m.at("a2"), m.at("dir/b")).unwrap();
    std::fs::rename(m.at("b"), m.at("dir/b")).unwrap();
    assert_eq!(std::fs::read(m.at("dir/b")).unwrap(), b"A");
    assert_eq!(std::fs::read(m.backing("dir/b")).unwrap(), b"A");
    assert!(!m.at("b").exists() && !m.backing("b").exists());
    // A directory renamed keeps its contents reachable.
    std::fs::rename(m.at("dir"), m.at("dir2")).unwrap();
    assert_eq!(std::fs::read(m.at("dir2/b")).unwrap(), b"A");

    // The backing errno comes through.
    assert_eq!(
        errno(std::fs::rename(m.at("missing"), m.at("x")).unwrap_err()),
        libc::ENOENT
    );
    std::fs::create_dir(m.at("full")).unwrap();
    std::fs::write(m.at("full/f"), b"").unwrap();
    std::fs::create_dir(m.at("empty")).unwrap();
    assert_eq!(
        errno(std::fs::rename(m.at("empty"), m.at("full")).unwrap_err()),
        libc::ENOTEMPTY
    );
    assert_eq!(
        errno(std::fs::remove_dir(m.at("full")).unwrap_err()),
        libc::ENOTEMPTY
    );
    assert_eq!(
        errno(std::fs::create_dir(m.at("full")).unwrap_err()),
        libc::EEXIST
    );
    assert_eq!(
        errno(std::fs::remove_file(m.at("full")).unwrap_err()),
        libc::EISDIR
    );
    assert_eq!(
        errno(std::fs::read_dir(m.at("full/f")).unwrap_err()),
        libc::ENOTDIR
    );
}

#[test]
fn hard_links_symlinks_and_fifos() {
    if !can_mount() {
        return;
    }
    let m = Mount::start("links", &[]);
    std::fs::write(m.at("f"), b"data").unwrap();
    std::fs::hard_link(m.at("f"), m.at("g")).unwrap();
    let (f, g) = (
        std::fs::metadata(m.at("f")).unwrap(),
        std::fs::metadata(m.at("g")).unwrap(),
    );
    assert_eq!((f.ino(), f.nlink()), (g.ino(), 2));
    assert_eq!(
        std::fs::metadata(m.backing("g")).unwrap().ino(),
        std::fs::metadata(m.backing("f")).unwrap().ino()
    );
    // A write through one name is read through the other.
    std::fs::write(m.at("g"), b"new").unwrap();
    assert_eq!(std::fs::read(m.at("f")).unwrap(), b"new");
    std::fs::remove_file(m.at("f")).unwrap();
    assert_eq!(std::fs::metadata(m.at("g")).unwrap().nlink(), 1);
    assert_eq!(
        errno(std::fs::hard_link(m.at("g"), m.at("g")).unwrap_err()),
        libc::EEXIST
    );

    std::os::unix::fs::symlink("g", m.at("s")).unwrap();
    std::os::unix::fs::symlink("nowhere/at/all", m.at("dangling")).unwrap();
    assert_eq!(std::fs::read_link(m.at("s")).unwrap(), Path::new("g"));
    assert_eq!(std::fs::read_link(m.backing("s")).unwrap(), Path::new("g"));
    assert_eq!(std::fs::read(m.at("s")).unwrap(), b"new");
    assert_eq!(
        std::fs::read_link(m.at("dangling")).unwrap(),
        Path::new("nowhere/at/all")
    );
    assert_eq!(
        errno(std::fs::read(m.at("dangling")).unwrap_err()),
        libc::ENOENT
    );
    // A hard link to a symlink links the symlink, not its target.
    let l = c(&m.at("s"));
    let l2 = c(&m.at("s2"));
    // SAFETY: valid C strings; flags 0: do not follow the symlink.
    let r = unsafe { libc::linkat(libc::AT_FDCWD, l.as_ptr(), libc::AT_FDCWD, l2.as_ptr(), 0) };
    assert_eq!(
        r,
        0,
        "link to a symlink: {}",
        std::io::Error::last_os_error()
    );
    let s2 = std::fs::symlink_metadata(m.backing("s2")).unwrap();
    assert!(s2.file_type().is_symlink());
    assert_eq!(
        s2.ino(),
        std::fs::symlink_metadata(m.backing("s")).unwrap().ino()
    );
    std::fs::remove_file(m.at("s2")).unwrap();
    assert!(
        std::fs::symlink_metadata(m.at("s"))
            .unwrap()
            .file_type()
            .is_symlink()
    );

    let fifo = c(&m.at("fifo"));
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0);
    let st = std::fs::symlink_metadata(m.backing("fifo")).unwrap();
    assert!(st.file_type().is_fifo());
    assert_eq!(st.mode() & 0o7777, 0o640 & !current_umask());

    // readdir lists exactly what is there, on the mount as in the backing directory.
    let names = |p: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&m.mnt), names(&m.source));
    assert_eq!(names(&m.mnt).len(), 4);
}

fn current_umask() -> u32 {
    // SAFETY: umask cannot fail; the old mask is put back at once.
    unsafe {
        let old = libc::umask(0o022);
        libc::umask(old);
        old
    }
}

#[test]
fn xattrs_set_get_list_replace_remove() {
    if !can_mount() {
        return;
    }
    let m = Mount::start("xattr", &[]);
    std::fs::write(m.at("f"), b"").unwrap();
    let (p, b) = (c(&m.at("f")), c(&m.backing("f")));
    let set = |path: &CString, name: &std::ffi::CStr, v: &[u8], flags: i32| {
        // SAFETY: valid C strings; `v` is readable for its length.
        errno_of(unsafe {
            libc::setxattr(
                path.as_ptr(),
                name.as_ptr(),
                v.as_ptr().cast(),
                v.len(),
                flags,
            )
        })
    };
    let get = |path: &CString, name: &std::ffi::CStr| -> Result<Vec<u8>, i32> {
        let mut buf = vec![0u8; 256];
        // SAFETY: valid C strings; `buf` is writable for its length.
        let n = unsafe {
            libc::getxattr(
                path.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error().raw_os_error().unwrap());
        }
        buf.truncate(n as usize);
        Ok(buf)
    };
    let list = |path: &CString| -> Vec<u8> {
        // SAFETY: a valid C string; size 0 asks for the size only.
        let need = unsafe { libc::listxattr(path.as_ptr(), std::ptr::null_mut(), 0) };
        assert!(need >= 0);
        let mut buf = vec![0u8; need as usize];
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::listxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        assert_eq!(n, need);
        buf
    };
    assert_eq!(set(&p, c"user.one", b"1", 0), 0);
    assert_eq!(set(&p, c"user.two", b"second value", 0), 0);
    assert_eq!(get(&p, c"user.one"), Ok(b"1".to_vec()));
    assert_eq!(
        get(&b, c"user.two"),
        Ok(b"second value".to_vec()),
        "on the backing file"
    );
    let mut names: Vec<_> = list(&p)
        .split(|&x| x == 0)
        .filter(|s| !s.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    names.sort();
    assert_eq!(names, [b"user.one".to_vec(), b"user.two".to_vec()]);
    assert_eq!(set(&p, c"user.one", b"x", libc::XATTR_CREATE), libc::EEXIST);
    assert_eq!(
        set(&p, c"user.new", b"x", libc::XATTR_REPLACE),
        libc::ENODATA
    );
    assert_eq!(set(&p, c"user.one", b"replaced", libc::XATTR_REPLACE), 0);
    assert_eq!(get(&p, c"user.one"), Ok(b"replaced".to_vec()));
    // A buffer too small for the value: ERANGE, as on the backing file.
    let mut small = [0u8; 2];
    // SAFETY: valid C strings; `small` is writable for its length.
    let n = unsafe {
        libc::getxattr(
            p.as_ptr(),
            c"user.two".as_ptr(),
            small.as_mut_ptr().cast(),
            small.len(),
        )
    };
    assert_eq!(
        (n, std::io::Error::last_os_error().raw_os_error()),
        (-1, Some(libc::ERANGE))
    );
    // SAFETY: valid C strings.
    let removed = unsafe { libc::removexattr(p.as_ptr(), c"user.one".as_ptr()) };
    assert_eq!(errno_of(removed), 0);
    assert_eq!(get(&p, c"user.one"), Err(libc::ENODATA));
    assert_eq!(get(&b, c"user.one"), Err(libc::ENODATA));
    assert_eq!(get(&p, c"user.two"), Ok(b"second value".to_vec()));
}
