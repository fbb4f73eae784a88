//! Binding one `SO_REUSEPORT` listener per core (included with `#[path]` by the servers).

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;

/// Start every core's listener with `start(core, addr, ready)`, core 0 first: with port 0 it
/// picks the port, which every other core then binds too. Each core reports its bound
/// address, or why it could not bind, on `ready`. Returns the bound address and what each
/// `start` returned, once every core listens.
pub fn bind_every_core<T>(
    cores: usize,
    addr: SocketAddr,
    mut start: impl FnMut(usize, SocketAddr, mpsc::Sender<io::Result<SocketAddr>>) -> T,
) -> Result<(SocketAddr, Vec<T>), String> {
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
