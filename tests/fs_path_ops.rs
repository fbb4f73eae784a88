//! `create_dir`, `rename`, `remove_file` and `remove_dir` change the file system as their
//! syscalls do; `File::open`/`create`/`OpenOptions` honour their flags.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use ringleader::fs::{self, File, OpenOptions};

/// A fresh directory under the temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("rl-fs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn create_rename_and_remove_change_the_tree() {
    let dir = TempDir::new("tree");
    let sub = dir.join("sub");
    let a = sub.join("a");
    let b = sub.join("b");
    ringleader::block_on(async {
        fs::create_dir(&sub).await.unwrap();
        assert!(std::fs::metadata(&sub).unwrap().is_dir());

        let f = File::create(&a).await.unwrap();
        f.write_all_at(b"payload".to_vec(), 0).await.0.unwrap();
        f.close().await.unwrap();

        fs::rename(&a, &b).await.unwrap();
        assert!(!a.exists());
        assert_eq!(std::fs::read(&b).unwrap(), b"payload");

        // Rename replaces an existing destination.
        std::fs::write(&a, b"new").unwrap();
        fs::rename(&a, &b).await.unwrap();
        assert_eq!(std::fs::read(&b).unwrap(), b"new");

        fs::remove_file(&b).await.unwrap();
        assert!(!b.exists());
        fs::remove_dir(&sub).await.unwrap();
        assert!(!sub.exists());
    });
}

#[test]
fn remove_file_refuses_a_directory_and_remove_dir_a_file() {
    let dir = TempDir::new("kinds");
    let d = dir.join("d");
    let f = dir.join("f");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(&f, b"").unwrap();
    ringleader::block_on(async {
        let e = fs::remove_file(&d).await.unwrap_err();
        assert_eq!(fs::raw_os_error(&e), Some(libc::EISDIR), "{e}");
        let e = fs::remove_dir(&f).await.unwrap_err();
        assert_eq!(fs::raw_os_error(&e), Some(libc::ENOTDIR), "{e}");
    });
    assert!(d.is_dir() && f.is_file());
}

#[test]
fn open_options_honour_create_truncate_append_and_mode() {
    let dir = TempDir::new("opts");
    let path = dir.join("f");
    ringleader::block_on(async {
        // create + mode
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .mode(0o640)
            .open(&path)
            .await
            .unwrap();
        f.write_all_at(b"0123456789".to_vec(), 0).await.0.unwrap();
        drop(f);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode & !0o640,
            0,
            "no bits beyond the requested mode: {mode:o}"
        );

        // append: positional offsets are ignored, every write lands at the end
        let f = OpenOptions::new().append(true).open(&path).await.unwrap();
        f.write_all_at(b"AB".to_vec(), 0).await.0.unwrap();
        drop(f);
        assert_eq!(std::fs::read(&path).unwrap(), b"0123456789AB");

        // write without truncate keeps the tail
        let f = OpenOptions::new().write(true).open(&path).await.unwrap();
        f.write_all_at(b"xy".to_vec(), 0).await.0.unwrap();
        drop(f);
        assert_eq!(std::fs::read(&path).unwrap(), b"xy23456789AB");

        // File::create truncates
        let f = File::create(&path).await.unwrap();
        assert_eq!(f.metadata().await.unwrap().len(), 0);

        // File::open is read-only
        let f = File::open(&path).await.unwrap();
        // SAFETY: F_GETFL on an open fd has no memory effects.
        let fl = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&f), libc::F_GETFL) };
        assert_eq!(fl & libc::O_ACCMODE, libc::O_RDONLY);
        // SAFETY: as above.
        let fd_flags = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&f), libc::F_GETFD) };
        assert_ne!(fd_flags & libc::FD_CLOEXEC, 0, "opened close-on-exec");
    });
}

#[test]
fn std_conversions_keep_the_same_open_file() {
    let dir = TempDir::new("conv");
    let path = dir.join("f");
    std::fs::write(&path, b"from std").unwrap();
    ringleader::block_on(async {
        let f = File::from_std(std::fs::File::open(&path).unwrap());
        let (res, buf) = f.read_exact_at(vec![0u8; 8], 0).await;
        res.unwrap();
        assert_eq!(&buf[..], b"from std");
        let std_file = f.into_std();
        assert_eq!(std_file.metadata().unwrap().len(), 8);
        let f = File::from(std_file);
        let f = f.try_into_std().expect("no op in flight");
        let raw = std::os::fd::IntoRawFd::into_raw_fd(File::from_std(f));
        // SAFETY: `raw` was just released by the File and is owned by nobody else.
        let f = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(raw) };
        assert_eq!(f.metadata().await.unwrap().len(), 8);
    });
}
