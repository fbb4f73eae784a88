//! `File::open_beneath` / `OpenOptions::open_at` (`IORING_OP_OPENAT2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`): files and subdirectories beneath the directory
//! open, including through symlinks that stay inside; every way out is refused — `..`, an
//! absolute path, a symlink to a directory or a file outside (at the last component or in
//! the middle), a magic link (`/proc/self/fd/N`) — and an open dropped in flight leaks no
//! fd, even when its directory is dropped right after. One test in its own binary, so the
//! fd count sees no other test's fds.

use std::future::Future;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::Context;

use futures::task::noop_waker;

use ringleader::fs::{File, OpenOptions, Resolve, raw_os_error};

/// `base/served` (the directory handed out) and `base/outside` (what must stay unreachable).
struct Tree(PathBuf);

impl Tree {
    fn new(tag: &str) -> Tree {
        let base = std::env::temp_dir().join(format!("rl-fs-beneath-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let served = base.join("served");
        std::fs::create_dir_all(served.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(base.join("outside")).unwrap();
        std::fs::write(served.join("top.txt"), b"top").unwrap();
        std::fs::write(served.join("sub/deeper/leaf.txt"), b"leaf").unwrap();
        std::fs::write(base.join("outside/secret.txt"), b"secret").unwrap();
        let link = |target: &str, name: &str| {
            std::os::unix::fs::symlink(target, served.join(name)).unwrap();
        };
        link("/etc", "etcdir");
        link("../outside", "outdir");
        link("../outside/secret.txt", "secret_link");
        link(
            base.join("outside/secret.txt").to_str().unwrap(),
            "abs_secret_link",
        );
        link("sub/deeper/leaf.txt", "inner_link");
        link("sub", "sub_link");
        link("/proc/self/fd/0", "magic");
        Tree(base)
    }

    fn served(&self) -> PathBuf {
        self.0.join("served")
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn read_all(f: &File) -> Vec<u8> {
    let (res, buf) = f.read_at(Vec::with_capacity(64), 0).await;
    res.unwrap();
    buf
}

async fn files_beneath_open_and_every_escape_is_refused(tree: &Tree) {
    {
        let dir = File::open(tree.served()).await.unwrap();
        for (path, want) in [
            ("top.txt", &b"top"[..]),
            ("sub/deeper/leaf.txt", b"leaf"),
            ("./sub/../top.txt", b"top"),
            ("inner_link", b"leaf"),
            ("sub_link/deeper/leaf.txt", b"leaf"),
        ] {
            let f = File::open_beneath(&dir, path)
                .await
                .unwrap_or_else(|e| panic!("{path:?} lies beneath the directory: {e}"));
            assert_eq!(read_all(&f).await, want, "{path:?}");
        }
        for path in [
            "../outside/secret.txt",
            "sub/../../outside/secret.txt",
            "/etc/passwd",
            "etcdir/passwd",
            "outdir/secret.txt",
            "secret_link",
            "abs_secret_link",
            "magic",
        ] {
            let err = File::open_beneath(&dir, path)
                .await
                .expect_err(&format!("{path:?} leaves the directory"));
            let errno = raw_os_error(&err);
            assert!(
                matches!(errno, Some(libc::EXDEV | libc::ELOOP)),
                "{path:?}: expected EXDEV or ELOOP, got {err}"
            );
            assert!(
                err.to_string().contains(path),
                "the error names the path: {err}"
            );
        }
        let err = File::open_beneath(&dir, "missing.txt").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }
}

async fn open_at_honours_the_options_and_other_resolve_flags(tree: &Tree) {
    {
        let dir = File::open(tree.served()).await.unwrap();
        // Create beneath, with a mode: openat2 takes the mode only with O_CREAT.
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open_at(&dir, "sub/new.txt", Resolve::BENEATH)
            .await
            .unwrap();
        f.write_all_at(b"new".to_vec(), 0).await.0.unwrap();
        f.close().await.unwrap();
        assert_eq!(
            std::fs::read(tree.served().join("sub/new.txt")).unwrap(),
            b"new"
        );
        // NO_SYMLINKS refuses even a link that stays inside.
        let read = OpenOptions::new().read(true).clone();
        let err = read
            .open_at(&dir, "inner_link", Resolve::NO_SYMLINKS)
            .await
            .unwrap_err();
        assert_eq!(raw_os_error(&err), Some(libc::ELOOP), "{err}");
        // NONE resolves as openat(2): the escape works, which is what BENEATH is for.
        let f = read
            .open_at(&dir, "secret_link", Resolve::NONE)
            .await
            .unwrap();
        assert_eq!(read_all(&f).await, b"secret");
        // A bad option combination is refused before any SQE, naming the path.
        let err = OpenOptions::new()
            .open_at(&dir, "top.txt", Resolve::BENEATH)
            .await
            .unwrap_err();
        assert_eq!(raw_os_error(&err), Some(libc::EINVAL), "{err}");
    }
}

/// Poll `fut` once (submitting its SQE) without a real waker.
fn poll_once<F: Future + Unpin>(fut: &mut F) -> bool {
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    Pin::new(fut).poll(&mut cx).is_ready()
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// An open dropped in flight closes the fd it produces, and its directory may be dropped
/// right after (the op holds the directory's fd until its CQE).
async fn dropped_opens_leak_nothing(tree: &Tree) {
    let before = fd_count();
    for _ in 0..100 {
        let dir = File::open(tree.served()).await.unwrap();
        let mut open = Box::pin(File::open_beneath(&dir, "sub/deeper/leaf.txt"));
        let _ = poll_once(&mut open);
        drop(open);
        drop(dir);
    }
    for _ in 0..100_000 {
        if ringleader::runtime::stats().ops_in_flight == 0 {
            break;
        }
        ringleader::yield_now().await;
    }
    assert_eq!(fd_count(), before, "fds leaked by dropped opens");
}

#[test]
fn opens_beneath_a_directory() {
    let tree = Tree::new("all");
    ringleader::block_on(async {
        files_beneath_open_and_every_escape_is_refused(&tree).await;
        open_at_honours_the_options_and_other_resolve_flags(&tree).await;
        dropped_opens_leak_nothing(&tree).await;
    });
}
