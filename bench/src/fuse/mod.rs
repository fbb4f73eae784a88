//! The FUSE benchmark's parts: which servers, how one is mounted and torn down, and the
//! workloads ([`workload`]).
//!
//! # Model
//!
//! A **server** ([`Server`]) shows the source directory (on tmpfs) at a mount point:
//! ringleader's `examples/fuse_passthrough` over io_uring or over classic /dev/fuse,
//! `bindfs` (libfuse 3), or the bench's own `fuser_passthrough` (the `fuser` crate); or
//! nothing (`nofuse`: the client works on the source itself, the ceiling). A **run** starts
//! a fresh server pinned to one CPU, waits until its mount is in `/proc/self/mountinfo`,
//! runs one workload on the other CPU, and stops the server.
//!
//! # Invariants
//!
//! - Every mount point is a directory of the bench's own temporary directory, and only those
//!   are unmounted ([`unmount`]).
//! - No server outlives its run: [`Running`] is dropped on every path, and its drop sends
//!   SIGTERM to the server's PID, SIGKILL after 3 s, reaps it, then detaches the mount
//!   (`umount -l`) if it is still there. Pinned servers also die with the bench
//!   (`PR_SET_PDEATHSIG`).
//! - A server's CPU time is `utime + stime` of its one process (every thread, io-wq workers
//!   included), read from `/proc/PID/stat`.

#[path = "../nbd/sampler.rs"]
pub mod sampler;
pub mod workload;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What shows the source at the mount point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Server {
    NoFuse,
    Bindfs,
    Fuser,
    Ringleader,
    RingleaderClassic,
}

impl Server {
    pub const ALL: [Server; 5] = [
        Server::NoFuse,
        Server::Bindfs,
        Server::Fuser,
        Server::Ringleader,
        Server::RingleaderClassic,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Server::NoFuse => "nofuse",
            Server::Bindfs => "bindfs",
            Server::Fuser => "fuser",
            Server::Ringleader => "ringleader",
            Server::RingleaderClassic => "ringleader-classic",
        }
    }

    pub fn from_name(name: &str) -> Option<Server> {
        Server::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Where the servers' programs are and which CPU they run on.
#[derive(Clone, Debug)]
pub struct Launch {
    pub ringleader_bin: PathBuf,
    pub fuser_bin: PathBuf,
    pub cpu: Option<usize>,
}

/// A mounted server, stopped by PID and unmounted when dropped.
#[derive(Debug)]
pub struct Running {
    child: Option<Child>,
    mount: PathBuf,
}

impl Running {
    /// The server's PID (0 for `nofuse`: no process, no CPU time).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Where the client works: the mount point, or the source for `nofuse`.
    pub fn dir(&self) -> &Path {
        &self.mount
    }

    /// An error if the server has exited (it should run until stopped).
    pub fn check_running(&mut self) -> Result<(), String> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("the server exited during the run: {status}")),
            Err(e) => Err(format!("waitpid: {e}")),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on the PID of our own child, which is not reaped yet (so the PID
        // cannot have been reused).
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        unmount(&self.mount);
    }
}

/// Whether `path` is a mount point (a line of `/proc/self/mountinfo` names it).
pub fn is_mounted(path: &Path) -> bool {
    let Some(p) = path.to_str() else {
        return false;
    };
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(p))
}

/// Detach the bench's own mount at `path` if it is there (`umount -l`).
pub fn unmount(path: &Path) {
    if is_mounted(path) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(path)
            .stderr(Stdio::null())
            .status();
    }
}

/// Start `server` to show `source` at `mount` (an empty directory), and wait until the
/// mount answers.
pub fn start(server: Server, l: &Launch, source: &Path, mount: &Path) -> Result<Running, String> {
    let mut cmd = match server {
        Server::NoFuse => {
            return Ok(Running {
                child: None,
                mount: source.to_owned(),
            });
        }
        Server::Bindfs => {
            // As packaged: single-threaded libfuse loop, in the foreground for its PID.
            let mut c = Command::new("bindfs");
            c.arg("-f").arg(source).arg(mount);
            c
        }
        Server::Fuser => {
            let mut c = Command::new(&l.fuser_bin);
            c.arg("--source").arg(source).arg("--mount").arg(mount);
            c
        }
        Server::Ringleader | Server::RingleaderClassic => {
            let mut c = Command::new(&l.ringleader_bin);
            c.arg("--source").arg(source).arg("--mount").arg(mount);
            if l.cpu.is_some() {
                c.args(["--cores", "1"]);
            }
            if server == Server::RingleaderClassic {
                c.env("FUSE_PASSTHROUGH_TRANSPORT", "classic");
            } else {
                c.env_remove("FUSE_PASSTHROUGH_TRANSPORT");
            }
            c
        }
    };
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(cpu) = l.cpu {
        ringleader_bench::pin::pin_child(&mut cmd, cpu).map_err(|e| format!("pinning: {e}"))?;
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("starting {}: {e}", server.name()))?;
    let mut running = Running {
        child: Some(child),
        mount: mount.to_owned(),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !is_mounted(mount) {
        if let Err(e) = running.check_running() {
            let err = running
                .child
                .as_mut()
                .and_then(|c| c.stderr.take())
                .map(|s| {
                    BufReader::new(s)
                        .lines()
                        .map_while(Result::ok)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
                .join("; ");
            return Err(format!("{}: {e}: {err}", server.name()));
        }
        if Instant::now() > deadline {
            return Err(format!("{} did not mount in 10 s", server.name()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // The first request waits for INIT's answer: the mount serves once this returns.
    std::fs::metadata(mount).map_err(|e| format!("{}: stat of the mount: {e}", server.name()))?;
    // Drain the servers' output in the background so a late line cannot block them.
    if let Some(c) = running.child.as_mut() {
        for out in [
            c.stdout
                .take()
                .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
            c.stderr
                .take()
                .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut { out }, &mut std::io::sink());
            });
        }
    }
    Ok(running)
}

/// Whether `tool` is an executable file on `PATH`.
pub fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}
