//! An example server (echo, http_server) as a child process, for the tests of its limits
//! (included with `#[path]`, next to `example_bin.rs`): its address from the first stdout
//! line, its stderr collected by a thread, its CPU time from `/proc/PID/stat`, an optional
//! fd limit, and signals by its PID. Killed (SIGKILL by PID) and reaped on drop.
#![allow(dead_code)] // Each test uses part of it.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::example_bin::example_bin;

pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    _stdout: BufReader<ChildStdout>,
    stderr: Arc<Mutex<Vec<u8>>>,
    status: Option<ExitStatus>,
}

impl Server {
    /// Start example `name` (built with `features`) with `args`, and `RLIMIT_NOFILE` set to
    /// `nofile` if given; wait for its `NAME: listening on ADDR` line.
    pub fn start(name: &str, features: &[&str], args: &[&str], nofile: Option<u64>) -> Server {
        let mut cmd = Command::new(example_bin(name, features));
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        if let Some(n) = nofile {
            // SAFETY: the closure runs in the forked child before exec and only calls
            // setrlimit, which is async-signal-safe, on a local struct.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning the {name} example: {e}"));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line.split_whitespace().nth(3).and_then(|a| a.parse().ok());
        let mut server = Server {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            _stdout: stdout,
            stderr,
            status: None,
        };
        match addr {
            Some(a) => server.addr = a,
            None => {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "unexpected first line from {name}: {line:?}; stderr: {}",
                    server.stderr_text()
                )
            }
        }
        server
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Connect with read and write timeouts, so a hang fails the test.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    }

    /// User plus system CPU time the server has used so far.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields after the `(comm)`: state is field 3, utime 14 and stime 15.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        // SAFETY: sysconf only reads a constant.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_millis(ticks * 1000 / hz)
    }

    pub fn stderr_len(&self) -> usize {
        self.stderr.lock().unwrap().len()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Send `sig` to the server (by its PID).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's PID, which is not reaped before `wait_exit`.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    /// Whether the server still runs.
    pub fn running(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().unwrap();
        }
        self.status.is_none()
    }

    /// Wait up to `limit` for the server to exit; its status, or `None` if it still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + limit;
        while self.running() {
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.status
    }
}

/// How an exit status reads in a failure message.
pub fn describe(status: Option<ExitStatus>) -> String {
    match status {
        None => "still running".into(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(sig)) => format!("killed by signal {sig} (exit -{sig})"),
            _ => format!("{s:?}"),
        },
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
