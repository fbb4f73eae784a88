//! Acceptance (g): a pool that needs more locked memory than `RLIMIT_MEMLOCK` allows fails
//! with an error that names the limit, the amount asked and what to do — never a panic.
//!
//! The kernel decides whether a ring's registrations are charged to `RLIMIT_MEMLOCK` when
//! the ring is *created* (`io_uring_setup` exempts a creator holding `CAP_IPC_LOCK`). Root
//! holds it, so lowering the limit and dropping privileges after the runtime exists proves
//! nothing. The test therefore re-runs itself in a child process that lowers the limit,
//! runs as `nobody` (no capabilities) from the start, and only then creates the runtime and
//! the pool. If io_uring itself is refused to that user, the setup error must be the clear
//! one too.

use std::process::Command;

use ringleader::buf::{FixedPool, MemlockError};

const CHILD_ENV: &str = "RINGLEADER_MEMLOCK_CHILD";
const TEST_NAME: &str = "pool_over_memlock_limit_gives_the_clear_error";
const LIMIT: u64 = 64 << 10;
const SLOT: usize = 64 << 10;
const SLOTS: usize = 16;

#[test]
fn pool_over_memlock_limit_gives_the_clear_error() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child();
        return;
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root && cap_ipc_lock() {
        eprintln!("skipped: non-root with CAP_IPC_LOCK cannot be made subject to RLIMIT_MEMLOCK");
        return;
    }
    // As root the child runs as `nobody`, which may not reach this binary: a clone in a
    // directory other users cannot traverse (`mktemp -d` makes mode 0700 ones) hides it. So
    // the child runs a copy in a fresh world-readable directory of the temp dir, and starts
    // there, not in a working directory it may not be allowed to enter.
    let copy = root.then(ExeCopy::new);
    let exe = copy
        .as_ref()
        .map_or_else(|| std::env::current_exe().unwrap(), |c| c.exe.clone());
    let mut cmd = Command::new(&exe);
    cmd.args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1");
    if let Some(copy) = &copy {
        use std::os::unix::process::CommandExt;
        cmd.current_dir(&copy.dir).uid(65534).gid(65534); // nobody: std also drops the supplementary groups
    }
    let out = cmd.output().expect("re-running the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    if stdout.contains("SETUP-REFUSED") {
        eprintln!("io_uring refused to the unprivileged user; its error was the clear one");
    } else {
        assert!(
            stdout.contains("MEMLOCK-ERROR-OK"),
            "child did not run the check:\n{stdout}"
        );
    }
}

/// A copy of the test binary that any user can run, in a directory removed on drop.
struct ExeCopy {
    dir: std::path::PathBuf,
    exe: std::path::PathBuf,
}

impl ExeCopy {
    fn new() -> ExeCopy {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("ringleader-memlock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let exe = dir.join("buf_memlock_limit_error");
        std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        ExeCopy { dir, exe }
    }
}

impl Drop for ExeCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether this process holds `CAP_IPC_LOCK` (capability 14) in its effective set.
fn cap_ipc_lock() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    eff & (1 << 14) != 0
}

fn child() {
    let lim = libc::rlimit {
        rlim_cur: LIMIT,
        rlim_max: LIMIT,
    };
    // SAFETY: `lim` is a valid rlimit; lowering a limit needs no privilege.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) }, 0);
    assert!(
        !cap_ipc_lock(),
        "the child must not hold CAP_IPC_LOCK, or nothing is tested"
    );

    let rt = match ringleader::Builder::new().entries(8).build_local() {
        Ok(rt) => rt,
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains("io_uring_disabled") || msg.contains("RLIMIT_MEMLOCK"),
                "unclear setup error: {msg}"
            );
            println!("SETUP-REFUSED {msg}");
            return;
        }
    };
    rt.block_on(async {
        let err = FixedPool::new(SLOT, SLOTS).expect_err("1 MiB cannot fit a 64 KiB limit");
        assert_eq!(err.kind(), std::io::ErrorKind::OutOfMemory);
        let msg = err.to_string();
        let asked = (SLOT * SLOTS).to_string();
        for needle in [
            "RLIMIT_MEMLOCK",
            &format!("{LIMIT} bytes"),
            &format!("{asked} bytes"),
            "ulimit -l",
            "CAP_IPC_LOCK",
            "shrink the pool",
        ] {
            assert!(msg.contains(needle), "{needle:?} missing from: {msg}");
        }
        let inner = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<MemlockError>())
            .expect("a MemlockError inside");
        assert_eq!((inner.asked(), inner.limit()), (SLOT * SLOTS, Some(LIMIT)));
        let errno = std::error::Error::source(inner)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .and_then(std::io::Error::raw_os_error);
        assert_eq!(errno, Some(libc::ENOMEM), "the kernel's errno is kept");

        // A pool that fits the limit still works, and the failed one left nothing behind.
        let small = FixedPool::new(4096, 4).expect("16 KiB fits a 64 KiB limit");
        assert_eq!(small.available(), 4);
        println!("MEMLOCK-ERROR-OK {msg}");
    });
}
