//! The servers, and how one is started on a CPU and stopped by its PID.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// An NBD server the bench can start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    Ringleader,
    RingleaderRingWrites,
    RingleaderBatchReads,
    RingleaderGroupReads,
    RingleaderNoSpin,
    QemuNbdUring,
    QemuNbdThreads,
    Nbdkit,
}

impl Server {
    pub const ALL: [Server; 8] = [
        Server::Ringleader,
        Server::RingleaderRingWrites,
        Server::RingleaderBatchReads,
        Server::RingleaderGroupReads,
        Server::RingleaderNoSpin,
        Server::QemuNbdUring,
        Server::QemuNbdThreads,
        Server::Nbdkit,
    ];

    /// ringleader as it ships and the three peers.
    pub const DEFAULT: [Server; 4] = [
        Server::Ringleader,
        Server::QemuNbdUring,
        Server::QemuNbdThreads,
        Server::Nbdkit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Server::Ringleader => "ringleader",
            Server::RingleaderRingWrites => "ringleader-ring-writes",
            Server::RingleaderBatchReads => "ringleader-batch-reads",
            Server::RingleaderGroupReads => "ringleader-group-reads",
            Server::RingleaderNoSpin => "ringleader-nospin",
            Server::QemuNbdUring => "qemu-nbd-io_uring",
            Server::QemuNbdThreads => "qemu-nbd-threads",
            Server::Nbdkit => "nbdkit",
        }
    }

    pub fn from_name(name: &str) -> Option<Server> {
        Server::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn is_ringleader(self) -> bool {
        matches!(
            self,
            Server::Ringleader
                | Server::RingleaderRingWrites
                | Server::RingleaderBatchReads
                | Server::RingleaderGroupReads
                | Server::RingleaderNoSpin
        )
    }

    /// The program a peer needs on `PATH`; empty for ringleader.
    pub fn tool(self) -> &'static str {
        match self {
            Server::Ringleader
            | Server::RingleaderRingWrites
            | Server::RingleaderBatchReads
            | Server::RingleaderGroupReads
            | Server::RingleaderNoSpin => "",
            Server::QemuNbdUring | Server::QemuNbdThreads => "qemu-nbd",
            Server::Nbdkit => "nbdkit",
        }
    }
}

/// Whether `tool` is an executable file on `PATH`.
pub fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// How every server of a bench is started.
#[derive(Clone, Debug)]
pub struct Launch<'a> {
    /// ringleader's `nbd_server` binary.
    pub ringleader_bin: &'a Path,
    /// Extra arguments for it.
    pub ringleader_args: &'a [String],
    pub image: &'a Path,
    /// The CPU the server (every thread it starts) is confined to, if pinned.
    pub cpu: Option<usize>,
}

/// A server process, killed by PID when dropped.
#[derive(Debug)]
pub struct Running {
    child: Child,
    addr: SocketAddr,
    /// ringleader's stdout, kept open so a late line cannot fail its write.
    _stdout: Option<BufReader<ChildStdout>>,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// An error if the server has exited (it should run until killed).
    pub fn check_running(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("the server exited during the run: {status}")),
            Err(e) => Err(format!("waitpid: {e}")),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // `Child::kill` signals this child's own PID (SIGKILL).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Confine the child `cmd` starts to `cpu`, if any (threads it starts inherit the mask).
pub fn pinned(cmd: &mut Command, cpu: Option<usize>) -> &mut Command {
    if let Some(cpu) = cpu {
        ringleader_bench::pin::pin_child(cmd, cpu).expect("CPUs come from allowed_cpus");
    }
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Start `server` and wait until it listens.
pub fn start(server: Server, l: &Launch<'_>) -> Result<Running, String> {
    let img = l.image.to_str().ok_or("image path is not UTF-8")?;
    if server.is_ringleader() {
        return start_ringleader(server, l, img);
    }
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let p = port.to_string();
    let mut cmd = match server {
        Server::QemuNbdUring | Server::QemuNbdThreads => {
            let aio = if server == Server::QemuNbdUring {
                "--aio=io_uring"
            } else {
                "--aio=threads"
            };
            let mut c = Command::new("qemu-nbd");
            c.args(["-f", "raw", "-b", "127.0.0.1", "-p", &p, "-t", "-e", "8"])
                .args(["--cache=writeback", aio, img]);
            c
        }
        _ => {
            let mut c = Command::new("nbdkit");
            c.args(["-f", "-i", "127.0.0.1", "-p", &p, "file", img]);
            c
        }
    };
    let child = pinned(cmd.stdout(Stdio::null()).stderr(Stdio::null()), l.cpu)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", server.tool()))?;
    let mut running = Running {
        child,
        addr,
        _stdout: None,
    };
    // Both peers accept a connection that leaves before the handshake (`-t` keeps qemu-nbd
    // serving after it).
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        running.check_running()?;
        if Instant::now() > deadline {
            return Err(format!("{} did not listen on {addr}", server.name()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(running)
}

/// ringleader prints `nbd_server: listening on ADDR (...)` once every core listens.
fn start_ringleader(server: Server, l: &Launch<'_>, img: &str) -> Result<Running, String> {
    let mut cmd = Command::new(l.ringleader_bin);
    cmd.args(["--listen", "127.0.0.1:0", "--image", img])
        .args(l.ringleader_args)
        .stdout(Stdio::piped());
    if l.cpu.is_some() {
        cmd.args(["--cores", "1"]);
    }
    match server {
        Server::RingleaderRingWrites => {
            cmd.arg("--ring-writes");
        }
        Server::RingleaderBatchReads => {
            cmd.args(["--read-path", "batch"]);
        }
        Server::RingleaderGroupReads => {
            cmd.args(["--read-path", "group"]);
        }
        Server::RingleaderNoSpin => {
            cmd.args(["--spin-us", "0"]);
        }
        _ => {}
    }
    let mut child = pinned(&mut cmd, l.cpu)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", l.ringleader_bin.display()))?;
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    let read = stdout.read_line(&mut line);
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok());
    let running = Running {
        child,
        addr: addr.unwrap_or(([127, 0, 0, 1], 0).into()),
        _stdout: Some(stdout),
    };
    match (read, addr) {
        (Ok(_), Some(_)) => Ok(running),
        (Err(e), _) => Err(format!("reading nbd_server's stdout: {e}")),
        (Ok(_), None) => Err(format!("nbd_server said {line:?}")),
    }
}
