//! Binding one `SO_REUSEPORT` listener per core (included with `#[path]` by the servers).
//!
//! `SO_REUSEPORT` lets any process of the same user join the group and take a share of the
//! clients, so a second server started on the same address would silently split them with
//! the first. A server first [`claim`]s its address with a plain listener (no
//! `SO_REUSEPORT`), which the kernel refuses while anyone listens there, then binds its
//! per-core group on it.

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long [`claim`] waits for an address to be given up. A process killed by SIGKILL
/// leaves its listeners behind for a moment: its rings' in-flight accepts hold them until
/// the kernel's ring teardown (asynchronous, in a kworker) cancels them, so a server
/// restarted at once would otherwise fail, or (with `SO_REUSEPORT`) join the dying group
/// and lose clients to it.
pub const CLAIM_WAIT: Duration = Duration::from_secs(2);

/// Check that nobody listens on `addr` (with port 0: pick a free port) and return the
/// address to bind every core to. The claim is a listener without `SO_REUSEPORT`, closed
/// again before the cores bind; while the address is in use it is retried for up to
/// [`CLAIM_WAIT`].
pub fn claim(addr: SocketAddr) -> Result<SocketAddr, String> {
    let deadline = Instant::now() + CLAIM_WAIT;
    let probe = loop {
        match std::net::TcpListener::bind(addr) {
            Ok(p) => break p,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                return Err(format!(
                    "listening on {addr}: address in use (another server listens there)"
                ));
            }
            Err(e) => return Err(format!("listening on {addr}: {e}")),
        }
    };
    probe
        .local_addr()
        .map_err(|e| format!("listening on {addr}: {e}"))
}

/// Start every core's listener with `start(core, addr, ready)`, core 0 first: with port 0 it
/// picks the port, which every other core then binds too. Each core reports its bound
/// address, or why it could not bind, on `ready`. Returns the bound address and what each
/// `start` returned, once every core listens.
pub fn bind_every_core<T>(
    cores: usize,
    addr: SocketAddr,
    mut start: impl FnMut(usize, SocketAddr, mpsc::Sender<io::Result<SocketAddr>>) -> T,
) -> Result<(SocketAddr, Vec<T>), String> {
    let addr = claim(addr)?;
    let (tx, rx) = mpsc::channel();
    let mut started = vec![start(0, addr, tx.clone())];
    let bound = rx
        .recv()
        .map_err(|_| "core 0 stopped before binding".to_owned())?
        .map_err(|e| format!("core 0: listening on {addr}: {e}"))?;
    for core in 1..cores {
        started.push(start(core, bound, tx.clone()));
    }
    drop(tx);
    for _ in 1..cores {
        rx.recv()
            .map_err(|_| "a core stopped before binding".to_owned())?
            .map_err(|e| format!("listening on {bound}: {e}"))?;
    }
    Ok((bound, started))
}
