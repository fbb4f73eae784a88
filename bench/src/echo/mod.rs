//! The echo benchmark's parts: which servers, how they are started, and the load that
//! measures them.
//!
//! # Model
//!
//! Every server is a separate process pinned to one CPU ([`child`]); the load generator
//! ([`client`]) runs in the bench process, pinned to another. A **run** starts a fresh
//! server, connects `conns` clients, lets them do round trips for a warm-up, counts the
//! round trips of a fixed window with their latencies ([`histogram`]) and the server's CPU
//! time over exactly that window ([`cpu`]), then kills the server by PID. ringleader's server
//! is the repository's own `examples/echo` binary (`--cores 1`), so the bench measures
//! exactly what ships; each peer's is a small program in [`peers`], run by re-executing the
//! bench binary with `--serve NAME`.
//!
//! # Invariants
//!
//! - Every server sees the same client, the same CPUs and the same load; runs of different
//!   servers are interleaved, so slow drift of a noisy host spreads over all of them.
//! - No server process outlives the run that started it ([`child::ServerProcess`]'s drop).
//! - Every echo is checked byte for byte; a wrong byte fails the run, not just slows it.

pub mod child;
pub mod client;
pub mod cpu;
pub mod histogram;
pub mod pbuf;
pub mod peers;

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use child::ServerProcess;
use peers::Peer;

/// A server under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    /// `examples/echo --cores 1`: multishot recv into a provided-buffer ring, per core;
    /// spins up to 50 us before parking, adaptively (no spin while spins find nothing).
    Ringleader,
    /// The same with `--spin-us 0`: parks in `io_uring_enter` as soon as it is idle.
    RingleaderNoSpin,
    /// A peer runtime's idiomatic echo.
    Peer(Peer),
}

impl Server {
    /// Every server, in table order; the baseline of the ratios first after ringleader.
    pub const ALL: [Server; 7] = [
        Server::Ringleader,
        Server::RingleaderNoSpin,
        Server::Peer(Peer::TokioCurrentThread),
        Server::Peer(Peer::TokioMultiThread),
        Server::Peer(Peer::Monoio),
        Server::Peer(Peer::Glommio),
        Server::Peer(Peer::Compio),
    ];

    /// The ratio column's reference.
    pub const BASELINE: Server = Server::Peer(Peer::TokioCurrentThread);

    /// The name used on the command line and in the table.
    pub fn name(self) -> &'static str {
        match self {
            Server::Ringleader => "ringleader",
            Server::RingleaderNoSpin => "rl-nospin",
            Server::Peer(Peer::TokioCurrentThread) => "tokio-ct",
            Server::Peer(Peer::TokioMultiThread) => "tokio-mt",
            Server::Peer(Peer::Monoio) => "monoio",
            Server::Peer(Peer::Glommio) => "glommio",
            Server::Peer(Peer::Compio) => "compio",
        }
    }

    /// A longer description for the table's legend.
    pub fn description(self) -> &'static str {
        match self {
            Server::Ringleader => {
                "examples/echo --cores 1 (multishot recv, buffer ring, send from the lease, \
                 adaptive spin of up to 50 us before parking)"
            }
            Server::RingleaderNoSpin => "examples/echo --cores 1 --spin-us 0 (parks when idle)",
            Server::Peer(Peer::TokioCurrentThread) => "tokio new_current_thread(), read/write_all",
            Server::Peer(Peer::TokioMultiThread) => {
                "tokio new_multi_thread(), 1 worker (+ the block_on thread), read/write_all"
            }
            Server::Peer(Peer::Monoio) => "monoio IoUringDriver, owned-buffer read/write_all",
            Server::Peer(Peer::Glommio) => "glommio LocalExecutor, read/write_all",
            Server::Peer(Peer::Compio) => "compio io_uring, owned-buffer read/write_all",
        }
    }

    /// The server named `name`.
    pub fn from_name(name: &str) -> Option<Server> {
        Server::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Start it on `cpu`, listening on a port the kernel picks. `ringleader_bin` is the
    /// built `examples/echo`; `bench_exe` the bench binary (re-run with `--serve`).
    pub fn start(
        self,
        cpu: usize,
        ringleader_bin: &Path,
        bench_exe: &Path,
    ) -> io::Result<ServerProcess> {
        let mut cmd;
        match self {
            Server::Ringleader => {
                cmd = Command::new(ringleader_bin);
                cmd.args(["--cores", "1"]);
            }
            Server::RingleaderNoSpin => {
                cmd = Command::new(ringleader_bin);
                cmd.args(["--cores", "1", "--spin-us", "0"]);
            }
            Server::Peer(_) => {
                cmd = Command::new(bench_exe);
                cmd.args(["--serve", self.name()]);
            }
        }
        cmd.args(["--listen", "127.0.0.1:0"]);
        ServerProcess::start(cmd, cpu)
    }
}

/// Serve as the peer `name` on `listen` (the `--serve` mode of the bench binary).
pub fn serve(name: &str, listen: SocketAddr) -> io::Result<()> {
    match Server::from_name(name) {
        Some(Server::Peer(p)) => peers::serve(p, listen),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("--serve {name:?}: not a peer server"),
        )),
    }
}
