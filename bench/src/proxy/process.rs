//! A child process of the bench: pinned to one CPU, its output drained, killed by PID.
//!
//! Every process the proxy bench starts (the proxy under test, the iperf3 server, the mirror
//! sinks) goes through [`Proc::spawn`]. The child is pinned between `fork` and `exec`, so
//! every thread and every process it starts later (socat forks one per connection) inherits
//! the one-CPU mask, and asks for `SIGKILL` if the bench dies (`PR_SET_PDEATHSIG`). Its
//! stdout and stderr are drained by two threads so a chatty child never blocks on a full
//! pipe: the first stdout line containing `listening on ADDR` is handed to
//! [`Proc::wait_announced`], and the last few KiB of stderr are kept for error messages.
//! On drop, the process's descendants and then the process itself get `SIGKILL`, each by
//! its own PID (never a group or a name), and the child is reaped.

use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::procfs;

/// How much of a child's stderr is kept for error messages.
const STDERR_TAIL: usize = 4096;

/// A running child; SIGKILLed with its descendants and reaped on drop.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    what: String,
    announced: Receiver<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Proc {
    /// Start `cmd` pinned to `cpu`; `what` names it in messages.
    pub fn spawn(mut cmd: Command, cpu: usize, what: &str) -> io::Result<Proc> {
        ringleader_bench::pin::pin_child(&mut cmd, cpu)?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("starting {what}: {e}")))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, announced) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if line.contains("listening on ")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(line);
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut pipe = child.stderr.take().expect("stderr is piped");
        let tail = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                t.extend_from_slice(&buf[..n]);
                let excess = t.len().saturating_sub(STDERR_TAIL);
                t.drain(..excess);
            }
        });
        Ok(Proc {
            child,
            what: what.to_owned(),
            announced,
            stderr,
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait up to `timeout` for the `... listening on ADDR ...` line and return ADDR.
    pub fn wait_announced(&mut self, timeout: Duration) -> Result<SocketAddr, String> {
        match self.announced.recv_timeout(timeout) {
            Ok(line) => line
                .split("listening on ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| format!("{}: cannot parse the address in {line:?}", self.what)),
            Err(_) => Err(self.failure("never said `listening on ADDR`")),
        }
    }

    /// Wait up to `timeout` until some socket listens on `port` (without connecting to it:
    /// a probe connection would be forwarded, or count as a test).
    pub fn wait_listening(&mut self, port: u16, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if procfs::listening(port) {
                return Ok(());
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                return Err(self.failure("exited before listening"));
            }
            if Instant::now() >= deadline {
                return Err(self.failure(&format!("did not listen on port {port}")));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// CPU ticks of the process, its threads and its descendants (live, zombie or reaped).
    pub fn tree_ticks(&self) -> u64 {
        procfs::tree_ticks(self.pid())
    }

    /// Fail with its stderr if it has exited.
    pub fn check_running(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(self.failure(&format!("exited ({status})"))),
            Err(e) => Err(self.failure(&format!("wait failed: {e}"))),
        }
    }

    /// `what` + `msg` + the tail of its stderr.
    pub fn failure(&self, msg: &str) -> String {
        // Give the drain thread a moment to collect the last words of a dying child.
        std::thread::sleep(Duration::from_millis(50));
        let tail = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        let tail = String::from_utf8_lossy(&tail);
        let tail = tail.trim();
        if tail.is_empty() {
            format!("{} {msg}", self.what)
        } else {
            format!("{} {msg}; stderr: {tail}", self.what)
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        for pid in procfs::descendants(self.pid()) {
            // SAFETY: kill(2) with a positive PID signals that one process; the PID is a
            // descendant of a child this bench started, read from /proc just now.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        // `Child::kill` signals this child's PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
