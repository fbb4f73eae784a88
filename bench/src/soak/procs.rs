//! Processes the soak starts: the servers (started once, sampled through `/proc/PID`,
//! stopped with SIGTERM) and the client tools (`fio`, `qemu-io`: one run each, killed on
//! stop or time-out).
//!
//! Every child gets `PR_SET_PDEATHSIG(SIGKILL)`, so a bench that dies leaves nothing
//! running; it fires when the *thread* that started the child ends, so each child is started
//! and reaped by one thread that outlives it. Children are signalled by their PID only. Their
//! stdout and stderr go to files (never pipes, which a chatty child could fill and block on).

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::Board;

/// Make `cmd`'s child get SIGKILL when the thread starting it ends (the bench died).
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the hook runs in the forked child before `exec`; it makes one system call
    // (async-signal-safe) and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Send `sig` to `pid` (one process, never a group).
fn signal(pid: u32, sig: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    // SAFETY: kill(2) with a positive PID signals that one process; no memory is passed.
    if unsafe { libc::kill(pid, sig) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One sample of a process's resources.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// `VmRSS`, bytes.
    pub rss: u64,
    /// Entries of `/proc/PID/fd`.
    pub fds: u64,
    /// Entries of `/proc/PID/task`.
    pub threads: u64,
}

/// Sample `pid` from `/proc`.
pub fn usage(pid: u32) -> io::Result<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| io::Error::other(format!("no VmRSS in /proc/{pid}/status")))?;
    let count = |dir: &str| -> io::Result<u64> {
        Ok(std::fs::read_dir(format!("/proc/{pid}/{dir}"))?.count() as u64)
    };
    Ok(Usage {
        rss: rss_kib * 1024,
        fds: count("fd")?,
        threads: count("task")?,
    })
}

/// Raise `RLIMIT_NOFILE` (soft and hard) to at least `want`, as far as allowed; returns the
/// soft limit in force. Children inherit it.
pub fn raise_nofile(want: u64) -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into `lim`, which lives across the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur >= want {
        return Ok(lim.rlim_cur);
    }
    for new in [
        libc::rlimit {
            rlim_cur: want,
            rlim_max: lim.rlim_max.max(want),
        },
        // Not allowed to raise the hard limit (not root): go up to it.
        libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        },
    ] {
        // SAFETY: setrlimit reads one `rlimit`, which lives across the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
            return Ok(new.rlim_cur);
        }
    }
    Err(io::Error::last_os_error())
}

/// A server process: started with its output in files, killed and reaped on drop.
#[derive(Debug)]
pub struct Server {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    command: String,
    stderr: PathBuf,
    /// Set once the process has been reaped.
    exit: Option<ExitStatus>,
}

impl Server {
    /// Start `cmd` (`name` is the binary's name: its first stdout line must be
    /// `NAME: listening on ADDR ...`), with stdout and stderr in `dir`; wait up to 15 s for
    /// the address.
    pub fn start(name: &'static str, mut cmd: Command, dir: &Path) -> io::Result<Server> {
        let command = format!("{cmd:?}").replace('"', "");
        let out_path = dir.join(format!("{name}.stdout"));
        let err_path = dir.join(format!("{name}.stderr"));
        die_with_parent(&mut cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(File::create(&out_path)?)
            .stderr(File::create(&err_path)?)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("starting {command}: {e}")))?;
        let mut server = Server {
            name,
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            command,
            stderr: err_path,
            exit: None,
        };
        let prefix = format!("{name}: listening on ");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = std::fs::read_to_string(&out_path).unwrap_or_default();
            let addr = out
                .lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|a| a.parse().ok());
            if let Some(addr) = addr {
                server.addr = addr;
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                server.exit = Some(status);
                return Err(io::Error::other(format!(
                    "{} exited ({status}) before listening; stderr: {}",
                    server.command,
                    server.stderr_tail(5)
                )));
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "{} did not print `{prefix}ADDR` within 15 s (stdout {out:?})",
                    server.command
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The command line it was started with.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// `Some(status)` if the process has exited (it is reaped then).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Lines the server wrote to stderr.
    pub fn stderr_lines(&self) -> usize {
        std::fs::read_to_string(&self.stderr).map_or(0, |s| s.lines().count())
    }

    /// The last `n` lines of its stderr, joined with " | ".
    pub fn stderr_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join(" | ")
    }

    /// SIGTERM, then wait up to `grace` for the exit (SIGKILL after that). Returns the exit
    /// status and how long it took, or `None` if it had to be killed.
    pub fn terminate(&mut self, grace: Duration) -> io::Result<Option<(ExitStatus, Duration)>> {
        if let Some(status) = self.exited() {
            return Ok(Some((status, Duration::ZERO)));
        }
        let t0 = Instant::now();
        signal(self.pid(), libc::SIGTERM)?;
        while t0.elapsed() < grace {
            if let Some(status) = self.exited() {
                return Ok(Some((status, t0.elapsed())));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        self.exit = Some(self.child.wait()?);
        Ok(None)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exited().is_none() {
            // `Child::kill` signals this child's PID only.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// How one run of a client tool ended.
#[derive(Debug)]
pub enum ToolEnd {
    Exited(ExitStatus),
    /// Still running after the time limit: killed.
    TimedOut,
    /// The soak stopped: killed.
    Stopped,
}

/// Run `cmd` to its end, output to `log` (truncated), killing it (by PID) when the soak
/// stops or after `limit`.
pub fn run_tool(
    cmd: &mut Command,
    log: &Path,
    limit: Duration,
    board: &Board,
) -> io::Result<ToolEnd> {
    die_with_parent(cmd);
    let out = File::create(log)?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()?;
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(ToolEnd::Exited(status));
        }
        let end = if board.stopped() {
            ToolEnd::Stopped
        } else if t0.elapsed() > limit {
            ToolEnd::TimedOut
        } else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let _ = child.kill();
        child.wait()?;
        return Ok(end);
    }
}

/// `status` as text: "exit 0", "signal 9".
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(sig)) => format!("signal {sig}"),
        _ => status.to_string(),
    }
}
