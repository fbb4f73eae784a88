//! Errors of path ops keep the errno (its kind, and the code through `fs::raw_os_error` or
//! `source()`) and name the op and the path, so a user is never left guessing which file.

use std::error::Error;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use ringleader::fs::{self, File, OpenOptions, PathError};

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

fn assert_names(err: &std::io::Error, op: &str, path: &Path, errno: i32) {
    assert_eq!(fs::raw_os_error(err), Some(errno), "{err}");
    let msg = err.to_string();
    assert!(msg.starts_with(op), "message {msg:?} names the op {op}");
    assert!(
        msg.contains(&format!("{path:?}")),
        "message {msg:?} names the path {path:?}"
    );
    let inner = err
        .source()
        .and_then(|s| s.downcast_ref::<std::io::Error>());
    assert_eq!(
        inner.and_then(|e| e.raw_os_error()),
        Some(errno),
        "source keeps the errno"
    );
    let payload = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<PathError>())
        .unwrap();
    assert_eq!((payload.op(), payload.path()), (op, path));
}

#[test]
fn open_missing_path_is_enoent_naming_the_path() {
    let dir = TempDir::new("enoent");
    let path = dir.join("no-such-file");
    ringleader::block_on(async {
        let err = File::open(&path).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_names(&err, "open", &path, libc::ENOENT);
    });
}

#[test]
fn create_new_on_existing_file_is_eexist() {
    let dir = TempDir::new("eexist");
    let path = dir.join("exists");
    std::fs::write(&path, b"x").unwrap();
    ringleader::block_on(async {
        let err = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert_names(&err, "open", &path, libc::EEXIST);
    });
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"x",
        "existing file untouched"
    );
}

#[test]
fn invalid_open_options_are_einval_naming_the_path() {
    let dir = TempDir::new("einval");
    let path = dir.join("f");
    ringleader::block_on(async {
        // No access mode at all, and create without write: both rejected as std does.
        for opts in [OpenOptions::new(), {
            let mut o = OpenOptions::new();
            o.read(true).create(true);
            o
        }] {
            let err = opts.open(&path).await.unwrap_err();
            assert_names(&err, "open", &path, libc::EINVAL);
        }
    });
    assert!(!path.exists());
}

#[test]
fn path_with_interior_nul_is_invalid_input() {
    ringleader::block_on(async {
        let err = File::open("bad\0path").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("bad\\0path"), "{err}");
    });
}

#[test]
fn path_op_errors_name_op_and_path() {
    let dir = TempDir::new("pathops");
    let missing = dir.join("missing");
    let full = dir.join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("f"), b"").unwrap();
    ringleader::block_on(async {
        let err = fs::remove_file(&missing).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_names(&err, "unlink", &missing, libc::ENOENT);

        let err = fs::remove_dir(&full).await.unwrap_err();
        assert_names(&err, "rmdir", &full, libc::ENOTEMPTY);

        let err = fs::create_dir(&full).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert_names(&err, "mkdir", &full, libc::EEXIST);

        let err = fs::metadata(&missing).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_names(&err, "statx", &missing, libc::ENOENT);

        let to = dir.join("to");
        let err = fs::rename(&missing, &to).await.unwrap_err();
        assert_names(&err, "rename", &missing, libc::ENOENT);
        assert!(err.to_string().contains(&format!("{to:?}")), "{err}");
        let payload = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<PathError>())
            .unwrap();
        assert_eq!(payload.to(), Some(to.as_path()));
    });
}
