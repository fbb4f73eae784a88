//! Shared by the `fuse_uring_*` tests: switching the fuse module's `enable_uring` on (and
//! back), one test at a time across processes, and a skip reason when the machine cannot.

#![allow(dead_code, reason = "each test uses part of it")]

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;

pub const ENABLE_URING: &str = "/sys/module/fuse/parameters/enable_uring";

/// Holds `enable_uring = Y` and an exclusive lock (so that no other `fuse_uring_*` test,
/// in this process or another, restores it meanwhile); restores the old value on drop.
pub struct UringEnabled {
    old: String,
    _lock: File,
}

impl UringEnabled {
    /// `Err(reason)` when this machine cannot run FUSE over io_uring.
    pub fn acquire() -> Result<UringEnabled, String> {
        // SAFETY: getuid cannot fail.
        if unsafe { libc::getuid() } != 0 {
            return Err("not root (mount(2) and enable_uring need it)".into());
        }
        if !std::path::Path::new("/dev/fuse").exists() {
            return Err("no /dev/fuse".into());
        }
        let lock = File::create("/tmp/ringleader-fuse-uring-tests.lock")
            .map_err(|e| format!("lock file: {e}"))?;
        // SAFETY: flock on an fd `lock` owns; blocks until no other test holds it.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(format!("flock: {}", std::io::Error::last_os_error()));
        }
        let old = std::fs::read_to_string(ENABLE_URING).map_err(|e| {
            format!("{ENABLE_URING}: {e} (kernel without CONFIG_FUSE_IO_URING, Linux 6.14+)")
        })?;
        std::fs::OpenOptions::new()
            .write(true)
            .open(ENABLE_URING)
            .and_then(|mut f| f.write_all(b"Y"))
            .map_err(|e| format!("cannot set {ENABLE_URING} to Y: {e}"))?;
        Ok(UringEnabled {
            old: old.trim().to_owned(),
            _lock: lock,
        })
    }
}

impl Drop for UringEnabled {
    fn drop(&mut self) {
        let _ = std::fs::write(ENABLE_URING, &self.old);
    }
}

/// Whether the current value is `Y`.
pub fn uring_enabled() -> bool {
    std::fs::read_to_string(ENABLE_URING).is_ok_and(|s| s.trim() == "Y")
}

/// `/sys/devices/system/cpu/possible` as a count ("0-1" is 2).
pub fn possible_cpus() -> usize {
    let s = std::fs::read_to_string("/sys/devices/system/cpu/possible").expect("possible CPUs");
    s.trim()
        .split(',')
        .map(|r| match r.split_once('-') {
            Some((a, b)) => b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1,
            None => 1,
        })
        .sum()
}

/// `umount2(path, flags)`.
pub fn umount(path: &std::path::Path, flags: i32) -> std::io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string.
    if unsafe { libc::umount2(c.as_ptr(), flags) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The FUSE connection number of the mount at `mnt` (its device minor), from mountinfo.
pub fn connection(mnt: &std::path::Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mnt = mnt.to_str()?;
    info.lines().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (f.get(4) == Some(&mnt)).then(|| f[2].split(':').nth(1).unwrap_or("").to_owned())
    })
}

/// Abort the FUSE connection of `mnt` (fusectl, mounted if needed) and detach the mount:
/// every client blocked on it gets `ENOTCONN`. For watchdogs: a hung test fails instead.
pub fn abort(mnt: &std::path::Path) {
    let ctl = std::path::Path::new("/sys/fs/fuse/connections");
    if std::fs::read_dir(ctl).is_ok_and(|mut d| d.next().is_none()) {
        let _ = std::process::Command::new("mount")
            .args(["-t", "fusectl", "none", "/sys/fs/fuse/connections"])
            .status();
    }
    if let Some(c) = connection(mnt) {
        let _ = std::fs::write(ctl.join(c).join("abort"), "1");
    }
    let _ = umount(mnt, libc::MNT_DETACH);
}

/// A watchdog: if `progress` stays unchanged for `stall` while `finished` is false, abort
/// the mount (clients then fail with `ENOTCONN`, and the test with them) and say so.
pub fn watchdog(
    mnt: std::path::PathBuf,
    progress: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    finished: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stall: std::time::Duration,
) -> std::thread::JoinHandle<bool> {
    use std::sync::atomic::Ordering;
    std::thread::spawn(move || {
        let mut last = usize::MAX;
        let mut since = std::time::Instant::now();
        while !finished.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let now = progress.load(Ordering::SeqCst);
            if now != last {
                last = now;
                since = std::time::Instant::now();
            } else if since.elapsed() > stall {
                eprintln!("watchdog: no progress for {stall:?} at {now}: aborting {mnt:?}");
                abort(&mnt);
                return true;
            }
        }
        false
    })
}

/// `examples/fuse_passthrough` serving a fresh source directory over io_uring
/// (`FUSE_PASSTHROUGH_TRANSPORT=uring`, `--cores 2`), its stderr kept in a file. Hold a
/// [`UringEnabled`] while it runs. [`UringServer::stop`] ends it and returns its stderr;
/// dropping it stops it too (SIGTERM, then SIGKILL) and detaches the mount.
pub struct UringServer {
    child: Option<std::process::Child>,
    pub source: std::path::PathBuf,
    pub mnt: std::path::PathBuf,
    stderr: std::path::PathBuf,
    dir: std::path::PathBuf,
}

impl UringServer {
    pub fn start(bin: &std::path::Path, tag: &str) -> UringServer {
        use std::io::BufRead;
        let dir = std::env::temp_dir().join(format!("rl-fuse-uring-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (source, mnt) = (dir.join("src"), dir.join("mnt"));
        std::fs::create_dir_all(&source).unwrap();
        std::fs::create_dir_all(&mnt).unwrap();
        let stderr = dir.join("stderr");
        let mut child = std::process::Command::new(bin)
            .arg("--source")
            .arg(&source)
            .arg("--mount")
            .arg(&mnt)
            .args(["--cores", "2"])
            .env("FUSE_PASSTHROUGH_TRANSPORT", "uring")
            .stdout(std::process::Stdio::piped())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn fuse_passthrough");
        let mut line = String::new();
        let _ = std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        let s = UringServer {
            child: Some(child),
            source,
            mnt,
            stderr,
            dir,
        };
        assert!(
            line.starts_with("fuse_passthrough: serving") && line.contains("io_uring"),
            "first line: {line:?}; stderr: {}",
            std::fs::read_to_string(&s.stderr).unwrap_or_default()
        );
        s
    }

    pub fn at(&self, rel: &str) -> std::path::PathBuf {
        self.mnt.join(rel)
    }

    pub fn backing(&self, rel: &str) -> std::path::PathBuf {
        self.source.join(rel)
    }

    /// SIGTERM, wait for the exit (a watchdog detaches a mount that does not go away) and
    /// return what the server wrote on stderr, after checking that it exited 0 and served
    /// requests over io_uring.
    pub fn stop(mut self) -> String {
        let mut child = self.child.take().unwrap();
        // SAFETY: kill only sends a signal, to our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().expect("wait for the server");
        let err = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        assert!(status.success(), "server exit {status:?}; stderr: {err}");
        let served: u64 = err
            .lines()
            .filter_map(|l| l.split(" served ").nth(1))
            .filter_map(|r| r.strip_suffix(" requests over io_uring"))
            .map(|n| n.parse::<u64>().unwrap())
            .sum();
        assert!(served > 0, "no request went over io_uring; stderr: {err}");
        assert!(
            !err.contains("declined io_uring"),
            "the kernel declined io_uring: {err}"
        );
        err
    }
}

impl Drop for UringServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill only sends a signal, to our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            std::thread::sleep(std::time::Duration::from_millis(500));
            if c.try_wait().ok().flatten().is_none() {
                abort(&self.mnt);
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let _ = umount(&self.mnt, libc::MNT_DETACH);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
