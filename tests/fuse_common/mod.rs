//! Helpers for the FUSE passthrough tests: start `examples/fuse_passthrough` on a fresh
//! source directory and mount point, run tools on the mount with a deadline, and always
//! unmount (the [`Mount`] guard stops the server and detaches the mount when dropped, on
//! success and on panic alike).
#![allow(dead_code)]

#[path = "../support/example_bin.rs"]
mod example_bin;

use std::ffi::CString;
use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// No command a test runs may take longer than this (a hung mount fails the test instead
/// of hanging it; not a timing assertion).
pub const DEADLINE: Duration = Duration::from_secs(120);

/// The example's binary (see `support/example_bin.rs`).
pub fn server_bin() -> PathBuf {
    example_bin::example_bin("fuse_passthrough", &[])
}

/// Whether this machine can mount FUSE file systems; if not, print why the calling test is
/// skipped.
pub fn can_mount() -> bool {
    if !Path::new("/dev/fuse").exists() {
        eprintln!(
            "SKIP: /dev/fuse is missing (no fuse module, or a container without --device /dev/fuse)"
        );
        return false;
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP: the FUSE tests mount with mount(2) and need root");
        return false;
    }
    true
}

/// Whether `tool` is on `PATH`; if not, print why the calling test is skipped.
pub fn have(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()));
    if !found {
        eprintln!("SKIP: `{tool}` is not installed; this test needs it");
    }
    found
}

/// A new empty directory under the system temp dir, removed (recursively) on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("rl-fuse-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `umount2(path, flags)`.
pub fn umount(path: &Path, flags: i32) -> std::io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes()).expect("no NUL in a temp path");
    // SAFETY: a valid C string.
    if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whether `path` is a mount point now (listed in /proc/self/mounts).
pub fn is_mounted(path: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let p = path.to_string_lossy();
    mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(&*p))
}

/// A running server with its source and mount point. Dropping it stops the server
/// (SIGTERM, then SIGKILL), detaches the mount if it is still there, and removes both
/// directories.
pub struct Mount {
    pub child: Option<Child>,
    pub source: PathBuf,
    pub mnt: PathBuf,
    _dir: TempDir,
}

impl Mount {
    /// A fresh source directory, mounted with `args` (plus `--cores 2`).
    pub fn start(tag: &str, args: &[&str]) -> Mount {
        let dir = TempDir::new(tag);
        let source = dir.path().join("src");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&source).expect("mkdir src");
        std::fs::create_dir(&mnt).expect("mkdir mnt");
        Mount::start_on(dir, source, mnt, args)
    }

    fn start_on(dir: TempDir, source: PathBuf, mnt: PathBuf, args: &[&str]) -> Mount {
        // The classic transport: these tests are its coverage (the `fuse_uring_*` tests
        // cover io_uring), and a server left to choose would switch the fuse module's global
        // `enable_uring` on and leave it so.
        let mut child = Command::new(server_bin())
            .env("FUSE_PASSTHROUGH_TRANSPORT", "classic")
            .arg("--source")
            .arg(&source)
            .arg("--mount")
            .arg(&mnt)
            .args(["--cores", "2"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn fuse_passthrough");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let m = Mount {
            child: Some(child),
            source,
            mnt,
            _dir: dir,
        };
        assert!(
            line.starts_with("fuse_passthrough: serving"),
            "unexpected first line from fuse_passthrough: {line:?}"
        );
        assert!(
            is_mounted(&m.mnt),
            "the server said it serves, but nothing is mounted"
        );
        m
    }

    /// A path on the mount.
    pub fn at(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// The same path in the backing directory.
    pub fn backing(&self, rel: &str) -> PathBuf {
        self.source.join(rel)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("server running").id() as i32
    }

    /// Wait up to `limit` for the server to exit; its status, or `None` if it still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let start = Instant::now();
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                self.child = None;
                return Some(st);
            }
            if start.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(pid) = self.child.as_ref().map(|c| c.id() as i32) {
            // SAFETY: kill only sends a signal, to our own child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            if self.wait_exit(Duration::from_secs(10)).is_none() {
                if let Some(c) = self.child.as_mut() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }
        if is_mounted(&self.mnt) {
            let _ = umount(&self.mnt, libc::MNT_DETACH);
        }
    }
}

/// Run `cmd` to completion within [`DEADLINE`], capturing its output; panics if it does
/// not finish in time.
pub fn run(cmd: &mut Command) -> Output {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {desc}: {e}"));
    let start = Instant::now();
    // Drain the pipes in threads so a chatty command cannot block on a full pipe.
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut v);
        v
    });
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{desc} did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    }
}

/// [`run`], and assert that the command succeeded.
pub fn run_ok(cmd: &mut Command) -> Output {
    let desc = format!("{cmd:?}");
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{desc} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Deterministic pseudo-random bytes (xorshift), so failures are reproducible.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A tree of `files` files under `root`: 20 per directory, in nested directories, sizes
/// from 0 to ~300 KiB (mostly small), a few modes, a symlink per directory, a hard link,
/// an empty directory, and set modification times.
pub fn make_tree(root: &Path, files: usize) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(root).expect("mkdir tree root");
    let mut dir = root.to_path_buf();
    for i in 0..files {
        if i % 20 == 0 {
            let depth = (i / 20) % 4;
            dir = root.join(format!("d{}", i / 80));
            for level in 0..depth {
                dir = dir.join(format!("sub{level}"));
            }
            dir = dir.join(format!("g{i}"));
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::os::unix::fs::symlink(format!("f{i}"), dir.join(format!("link{i}")))
                .expect("symlink");
        }
        let size = match i % 50 {
            0 => 0,
            1 => 300 << 10,
            2..=5 => 65 << 10,
            _ => (i * 37) % 5000,
        };
        let p = dir.join(format!("f{i}"));
        std::fs::write(&p, pseudo_random(size, i as u64 + 1)).expect("write tree file");
        if i % 7 == 0 {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        if i % 11 == 0 {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let when = std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000 + i as u64 * 61);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .and_then(|f| f.set_modified(when))
            .expect("set mtime");
    }
    std::fs::hard_link(root.join("d0/g0/f0"), root.join("d0/g0/hardlink")).expect("hard link");
    std::fs::create_dir_all(root.join("empty")).expect("empty dir");
}
