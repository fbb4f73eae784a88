//! The splice mode: the data stays in kernel pages, from the source socket to every
//! destination socket; the proxy never maps it.
//!
//! # Client to upstream and mirrors
//!
//! Per connection, one *main* pipe and one *tap* pipe per mirror, all of `P` bytes. A round:
//!
//! 1. **fill**: a [`PipeGroup`] leader `SPLICE`s up to `P` bytes from the client into the
//!    main pipe (`IORING_OP_SPLICE`, run by the kernel's io-wq: it waits for data). Meanwhile
//!    the previous round's taps drain to their mirrors (`SPLICE` tap pipe → mirror socket).
//! 2. **fan out**: once every tap is empty, a [`PipeGroup`] on the main pipe `TEE`s its `n`
//!    bytes into each tap (page references, no copy) and then `SPLICE`s them to the upstream.
//!    A short splice to the upstream is finished from what is left in the pipe.
//! 3. the taps drain during the next fill.
//!
//! Why wait for empty taps: `TEE` always copies from the *start* of the main pipe and stops
//! when the tap is full, so a short tee could not be resumed. An empty tap as large as the
//! main pipe always takes all of it (both have the same number of slots), so every tee is
//! whole.
//!
//! **Backpressure** is the pipes: a mirror that does not read keeps its tap full, the next
//! fan-out waits, the main pipe stays full and the next fill waits: the client's bytes stay
//! in its socket. The direction holds at most the main pipe plus one round in the taps
//! (tees share pages, so several taps hold one copy): `P = max_buffered / 2` with mirrors,
//! `max_buffered` without (rounded down to a power of two, at least a page, at most
//! `/proc/sys/fs/pipe-max-size`).
//!
//! # Upstream to client
//!
//! One pipe and one [`PipeGroup`] per round: leader `SPLICE` upstream → pipe, then a drain
//! `SPLICE` pipe → client.

use std::future::IntoFuture;
use std::io;
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::rc::Rc;

use futures::future::{join, join_all};
use ringleader::buf::PipeLease;
use ringleader::group::PipeGroup;

use crate::Config;
use crate::conn::Peer;
use crate::stats::Budget;

/// A mirror's pipe: teed into from the main pipe, drained to the mirror.
struct Tap<'p> {
    peer: &'p Peer,
    pipe: PipeLease,
    /// A duplicate of the pipe's write end, as the tee's target.
    w: Rc<OwnedFd>,
    /// False once the mirror failed: it gets nothing more on this connection.
    live: bool,
}

impl<'p> Tap<'p> {
    fn new(peer: &'p Peer, size: usize) -> io::Result<Tap<'p>> {
        let pipe = new_pipe(size)?;
        let w = Rc::new(pipe.write_fd().try_clone_to_owned()?);
        Ok(Tap {
            peer,
            pipe,
            w,
            live: true,
        })
    }

    fn fail(&mut self, e: io::Error) {
        self.live = false;
        eprintln!("proxy: {e}; this connection goes on without that mirror");
    }

    /// Splice everything in the tap to the mirror.
    async fn drain(&mut self) {
        if let Err(e) = drain_pipe(&mut self.pipe, self.peer).await {
            self.fail(e);
        }
    }
}

fn new_pipe(size: usize) -> io::Result<PipeLease> {
    PipeLease::new(size).map_err(|e| io::Error::new(e.kind(), format!("pipe: {e}")))
}

/// Relay `src` (the client) to `upstream` and every mirror until `src` ends, then shut down
/// their write sides. See the module docs.
pub(crate) async fn forward(
    src: &Peer,
    upstream: &Peer,
    mirrors: &[Peer],
    cfg: &Config,
) -> io::Result<()> {
    let size = cfg.pipe_size(!mirrors.is_empty());
    let budget = Budget::new(cfg.max_buffered);
    let mut main = new_pipe(size)?;
    let mut taps = mirrors
        .iter()
        .map(|m| Tap::new(m, size))
        .collect::<io::Result<Vec<_>>>()?;
    // Bytes the last round teed, held by the taps until they have drained.
    let mut in_taps = 0;
    loop {
        let fill = PipeGroup::new(&mut main)
            .splice_from(&src.sock, None, size)
            .into_future();
        let drains = join_all(
            taps.iter_mut()
                .filter(|t| t.live && in_taps > 0)
                .map(Tap::drain),
        );
        let (filled, _) = join(fill, drains).await;
        let n = filled.leader.map_err(|e| src.error("splice from", e))?;
        // The peak is both rounds at once: the fill ran while the taps drained.
        budget.add(n);
        budget.sub(in_taps);
        in_taps = 0;
        if n == 0 {
            break;
        }
        let live: Vec<usize> = (0..taps.len()).filter(|&i| taps[i].live).collect();
        let mut group = PipeGroup::new(&mut main);
        for &i in &live {
            group = group.tee_to(&taps[i].w);
        }
        let out = group.drain_to(&upstream.sock, None).await;
        let mut results = out.members.into_iter();
        for &i in &live {
            let tap = &mut taps[i];
            match results.next() {
                Some(Ok(k)) if k == n => {}
                Some(Ok(k)) => tap.fail(tap.peer.error("tee", short(k, n))),
                Some(Err(e)) => tap.fail(tap.peer.error("tee", e)),
                None => tap.fail(tap.peer.error("tee", short(0, n))),
            }
        }
        match results.next() {
            Some(Ok(k)) if k == n => {}
            // A short splice: the rest is still in the main pipe.
            Some(Ok(_)) => drain_pipe(&mut main, upstream).await?,
            Some(Err(e)) => return Err(upstream.error("splice to", e)),
            None => return Err(upstream.error("splice to", short(0, n))),
        }
        if taps.iter().any(|t| t.live) {
            in_taps = n;
        } else {
            budget.sub(n);
        }
    }
    let mirrors_done = join_all(taps.iter_mut().filter(|t| t.live).map(|t| async move {
        if let Err(e) = t.peer.sock.shutdown(Shutdown::Write).await {
            t.fail(t.peer.error("shutdown", e));
        }
    }));
    let (up, _) = join(upstream.sock.shutdown(Shutdown::Write), mirrors_done).await;
    up.map_err(|e| upstream.error("shutdown", e))
}

/// Relay `src` (the upstream) to `dst` (the client) until `src` ends, then shut down `dst`'s
/// write side.
pub(crate) async fn backward(src: &Peer, dst: &Peer, cfg: &Config) -> io::Result<()> {
    let size = cfg.pipe_size(false);
    let budget = Budget::new(cfg.max_buffered);
    let mut pipe = new_pipe(size)?;
    loop {
        let out = PipeGroup::new(&mut pipe)
            .splice_from(&src.sock, None, size)
            .drain_to(&dst.sock, None)
            .await;
        let n = out.leader.map_err(|e| src.error("splice from", e))?;
        if n == 0 {
            break;
        }
        budget.add(n);
        match out.members.into_iter().next() {
            Some(Ok(k)) if k == n => {}
            Some(Ok(_)) => drain_pipe(&mut pipe, dst).await?,
            Some(Err(e)) => return Err(dst.error("splice to", e)),
            None => return Err(dst.error("splice to", short(0, n))),
        }
        budget.sub(n);
    }
    dst.sock
        .shutdown(Shutdown::Write)
        .await
        .map_err(|e| dst.error("shutdown", e))
}

/// Splice what `pipe` holds to `dst` until it is empty.
async fn drain_pipe(pipe: &mut PipeLease, dst: &Peer) -> io::Result<()> {
    while pipe.len()? > 0 {
        let out = PipeGroup::new(pipe).drain_to(&dst.sock, None).await;
        match out.members.into_iter().next() {
            Some(Ok(0)) | None => return Err(dst.error("splice to", short(0, 1))),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(dst.error("splice to", e)),
        }
    }
    Ok(())
}

#[cold] // The kernel moves whole requests between a pipe and a blocking socket.
fn short(k: usize, n: usize) -> io::Error {
    io::Error::new(io::ErrorKind::WriteZero, format!("moved {k} of {n} bytes"))
}
