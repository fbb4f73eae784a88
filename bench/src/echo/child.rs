//! An echo server running as a child process pinned to one CPU, killed by its PID on drop.
//!
//! The child is pinned between `fork` and `exec`, so every thread it ever starts (tokio's
//! worker, glommio's helpers, ringleader's core thread) inherits the one-CPU mask. Its first
//! stdout line must be `echo: listening on ADDR ...` (the format of `examples/echo`); that is
//! how the bench learns the port the kernel chose. The child also asks for `SIGKILL` when
//! the bench dies (`PR_SET_PDEATHSIG`), so an interrupted bench leaves no server behind.

use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};

/// A running server; killed (SIGKILL to its PID) and reaped when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    /// Kept open so that a late write by the server never meets a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl ServerProcess {
    /// Start `cmd` pinned to `cpu` and wait for its `listening on` line.
    pub fn start(mut cmd: Command, cpu: usize) -> io::Result<ServerProcess> {
        let what = format!("{cmd:?}");
        ringleader_bench::pin::pin_child(&mut cmd, cpu)?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("starting {what}: {e}")))?;
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut line = String::new();
        let read = stdout.read_line(&mut line);
        let addr = line
            .strip_prefix("echo: listening on ")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok());
        match (read, addr) {
            (Ok(_), Some(addr)) => Ok(ServerProcess {
                child,
                addr,
                _stdout: stdout,
            }),
            (read, _) => {
                let _ = child.kill();
                let status = child.wait();
                Err(io::Error::other(format!(
                    "{what} did not report its address (first line {line:?}, read {read:?}, \
                     exit {status:?})"
                )))
            }
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Fail if the server has exited.
    pub fn check_running(&mut self) -> io::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => Err(io::Error::other(format!(
                "the server (pid {}) exited: {status}",
                self.child.id()
            ))),
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // `Child::kill` signals this child's PID only (never a process group or a name).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
