//! One client connection, from the upstream connect to the last close.
//!
//! ```text
//!   client ──forward──▶ upstream          (and ──▶ each mirror, the same bytes)
//!   client ◀─backward── upstream
//!                       mirrors ──▶ read and discarded
//! ```
//!
//! - **Connect**: the upstream and every mirror, concurrently. An upstream that refuses (or
//!   any connect error, or no answer within `--connect-timeout`) closes the client at once,
//!   with one line on stderr; a mirror that refuses is left out of this connection. Out of
//!   fds (`EMFILE`), a connect waits for other connections to end and tries again, for up
//!   to 5 s (within the connect timeout).
//! - **Idle**: every receive and every completed send touches the connection's
//!   [`IdleTimer`]; when no byte moved either way for `--idle-timeout`, the connection is
//!   closed (its ops cancelled, its sockets closed), so a client, upstream or mirror that
//!   goes silent does not hold a slot and buffers forever.
//! - **Half-close**: the client's end of stream ends *forward*: each destination gets
//!   everything, then `shutdown(Write)`. *Backward* goes on until the upstream's end of
//!   stream, then shuts down the client's write side. The connection ends when both
//!   directions have; every socket and pipe is closed when its last op has completed.
//! - **Mirrors' replies** are received into a small buffer and dropped, so a mirror that
//!   talks back never fills its socket buffers and stalls itself. Once both directions are
//!   done the connection waits (at most `MIRROR_LINGER`) for each mirror's end of stream
//!   before closing: closing a socket with unread replies would reset it, and a reset makes
//!   the mirror's kernel drop what the mirror has not read yet.
//! - **Errors** (a reset, a refused send) of the client or the upstream end this connection
//!   only: the other direction is cancelled and the sockets closed. A mirror that fails, falls
//!   more than `--mirror-budget` behind or takes nothing for `--mirror-timeout` only drops out
//!   of the fan-out (`mirror.rs`): its connection is reset, the client goes on.
//! - **Splice mode** makes the sockets non-blocking, so that its splices never park an io-wq
//!   worker (`poll.rs`); io_uring's own socket ops wait for readiness in the ring anyway.
//!
//! Everything runs in the connection's one task: the directions and the per-destination
//! writers are futures joined together, so a received chunk's sends are submitted in the
//! same poll that received it.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;

use futures::future::{Either, join, join_all, select, try_join};
use ringleader::net::{OwnedIo, TcpStream};
use ringleader::time::timeout;

use crate::Config;
use crate::accept::{Activity, Conn, IdleTimer, within};
use crate::args::Mode;
use crate::stats::ConnGuard;
use crate::{poll, relay, splice};

/// How long a finished connection waits for its mirrors to close after the proxy shut down
/// their write sides.
const MIRROR_LINGER: Duration = Duration::from_secs(5);
/// While the proxy stops, a connection on which no byte moved for this long (or its idle
/// timeout, if shorter) is closed: it is between requests.
const DRAIN_QUIET: Duration = Duration::from_secs(1);

/// Which end of the proxy a socket is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Client,
    Upstream,
    Mirror,
}

/// A connected socket and what it is, for error messages.
#[derive(Debug)]
pub(crate) struct Peer {
    pub sock: TcpStream,
    pub addr: SocketAddr,
    pub role: Role,
    /// The connection's idle timer.
    activity: Activity,
}

impl Peer {
    fn new(sock: TcpStream, addr: SocketAddr, role: Role, activity: &Activity) -> Peer {
        // Small replies leave at once; bulk sends are whole buffers anyway.
        let _ = sock.set_nodelay(true);
        Peer {
            sock,
            addr,
            role,
            activity: activity.clone(),
        }
    }

    /// Bytes moved on this socket (a receive or a send completed): the connection is not
    /// idle. A clock read, no syscall.
    pub(crate) fn touch(&self) {
        self.activity.touch();
    }

    /// Abort the TCP connection now: `connect(AF_UNSPEC)` makes the kernel send a reset and
    /// drop both socket queues (`tcp_disconnect`). The fd stays open, so no number is reused
    /// under an op still in flight on it (those fail), until the connection's end closes it.
    pub(crate) fn reset(&self) {
        // SAFETY: an all-zero `sockaddr` is a valid value; only its family is read.
        let mut unspec: libc::sockaddr = unsafe { std::mem::zeroed() };
        unspec.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
        // SAFETY: connect(2) reads `size_of::<sockaddr>()` bytes from `unspec`, which lives
        // across the call; the fd is this peer's open socket.
        let r = unsafe {
            libc::connect(
                self.sock.as_raw_fd(),
                &unspec,
                std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
            )
        };
        if r != 0 {
            let e = io::Error::last_os_error();
            eprintln!("proxy: {}", self.error("reset", e));
        }
    }

    /// `e`, saying which peer and which op.
    pub(crate) fn error(&self, op: &str, e: io::Error) -> io::Error {
        let role = match self.role {
            Role::Client => "client",
            Role::Upstream => "upstream",
            Role::Mirror => "mirror",
        };
        io::Error::new(e.kind(), format!("{role} {}: {op}: {e}", self.addr))
    }
}

/// Serve one accepted client until both directions are done or one fails, or the
/// connection goes idle. `slot` holds the client's place under `--max-connections`, and
/// says when the proxy stops: a connection then ends once quiet for [`DRAIN_QUIET`].
pub(crate) async fn serve(client: TcpStream, cfg: Rc<Config>, slot: Conn) {
    let _count = ConnGuard::new();
    let client_addr = client
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut idle = IdleTimer::new(cfg.idle);
    let activity = idle.activity();
    let client = Peer::new(client, client_addr, Role::Client, &activity);
    let limit = cfg.connect_timeout;
    let connects = join(
        connect(cfg.upstream, limit),
        join_all(cfg.mirrors.iter().map(|&a| connect(a, limit))),
    );
    let (upstream, mirror_socks) = connects.await;
    let upstream = match upstream {
        Ok(s) => Peer::new(s, cfg.upstream, Role::Upstream, &activity),
        Err(e) => {
            eprintln!(
                "proxy: upstream {}: connect: {e}; closing client {client_addr}",
                cfg.upstream
            );
            return;
        }
    };
    let mut mirrors = Vec::with_capacity(mirror_socks.len());
    for (sock, &addr) in mirror_socks.into_iter().zip(&cfg.mirrors) {
        match sock {
            Ok(s) => mirrors.push(Peer::new(s, addr, Role::Mirror, &activity)),
            Err(e) => eprintln!(
                "proxy: mirror {addr}: connect: {e}; client {client_addr} goes on without it"
            ),
        }
    }
    let cfg = &*cfg;
    if cfg.mode == Mode::Splice {
        let all = std::iter::once(&client).chain([&upstream]).chain(&mirrors);
        if let Some(e) = all
            .map(|p| poll::set_nonblocking(&p.sock).map_err(|e| p.error("O_NONBLOCK", e)))
            .find_map(Result::err)
        {
            eprintln!("proxy: connection from {client_addr} ended: {e}");
            return;
        }
    }
    let forward = async {
        match cfg.mode {
            Mode::Splice => splice::forward(&client, &upstream, &mirrors, cfg).await,
            Mode::Lease | Mode::Copy => {
                let dsts: Vec<&Peer> = std::iter::once(&upstream).chain(&mirrors).collect();
                relay::relay(&client, &dsts, cfg).await
            }
        }
    };
    let backward = async {
        match cfg.mode {
            Mode::Splice => splice::backward(&upstream, &client, cfg).await,
            Mode::Lease | Mode::Copy => relay::relay(&upstream, &[&client], cfg).await,
        }
    };
    let both = pin!(try_join(forward, backward));
    let discards = pin!(join_all(mirrors.iter().map(discard_replies)));
    // Connected: the idle limit counts from here.
    activity.touch();
    let mut relay = pin!(relay_until_done(both, discards, cfg, client_addr));
    let mut draining = false;
    loop {
        let stop = async {
            if draining {
                std::future::pending::<()>().await
            } else {
                slot.stopping().await
            }
        };
        let stopping = match select(relay.as_mut(), select(pin!(idle.expired()), pin!(stop))).await
        {
            Either::Left(((), _)) => return,
            Either::Right((Either::Left(_), _)) => break,
            Either::Right((Either::Right(_), _)) => true,
        };
        if stopping {
            // The proxy is stopping: a connection quiet for DRAIN_QUIET is done with.
            draining = true;
            let quiet = cfg.idle.map_or(DRAIN_QUIET, |d| d.min(DRAIN_QUIET));
            idle.set_limit(Some(quiet));
        }
    }
    eprintln!(
        "proxy: connection from {client_addr}: no bytes moved for {:?} ({}): closing it",
        idle.limit().unwrap_or_default(),
        if draining {
            "stopping"
        } else {
            "--idle-timeout"
        }
    );
}

/// Run both directions (and the mirrors' reply discarding) to the end; report an error.
async fn relay_until_done(
    both: impl std::future::Future<Output = io::Result<((), ())>> + Unpin,
    discards: impl std::future::Future<Output = Vec<()>> + Unpin,
    cfg: &Config,
    client_addr: SocketAddr,
) {
    match select(both, discards).await {
        Either::Left((Ok(_), discards)) => {
            // Closing a socket with unread data resets it, and a reset can cost the mirror
            // the tail of the stream it has not read yet: wait (boundedly) for its end. A
            // mirror that was dropped is reset already and ends at once.
            let _ = timeout(MIRROR_LINGER.min(cfg.mirror_timeout), discards).await;
        }
        Either::Left((Err(e), _)) => {
            eprintln!("proxy: connection from {client_addr} ended: {e}");
        }
        Either::Right((_, both)) => {
            if let Err(e) = both.await {
                eprintln!("proxy: connection from {client_addr} ended: {e}");
            }
        }
    }
}

/// How long a connect waits, in all, for fds to free up when the process has none left.
const FD_WAIT: Duration = Duration::from_secs(5);

/// Connect to `addr`, giving up after `limit` (`--connect-timeout`: an address that drops
/// SYNs would otherwise hold the client for the kernel's ~2 minutes of retries).
async fn connect(addr: SocketAddr, limit: Duration) -> io::Result<TcpStream> {
    within(Some(limit), connect_retrying(addr))
        .await
        .unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {limit:?} (--connect-timeout)"),
            ))
        })
}

/// Connect to `addr`. When the process is out of fds (`EMFILE`, `ENFILE`: a burst larger
/// than `ulimit -n`), wait for other connections to end and try again, 10 ms apart doubling
/// to 1 s, for up to [`FD_WAIT`], rather than turn the client away at once.
async fn connect_retrying(addr: SocketAddr) -> io::Result<TcpStream> {
    let mut pause = Duration::from_millis(10);
    let mut waited = Duration::ZERO;
    loop {
        match TcpStream::connect_addr(addr).await {
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
                    && waited < FD_WAIT =>
            {
                ringleader::time::sleep(pause).await;
                waited += pause;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            r => return r,
        }
    }
}

/// Receive and drop what `mirror` sends, until it closes or fails.
async fn discard_replies(mirror: &Peer) {
    let mut buf = Vec::with_capacity(16 << 10);
    loop {
        buf.clear();
        let (res, b) = mirror.sock.read_owned(buf).await;
        buf = b;
        if !matches!(res, Ok(n) if n > 0) {
            return;
        }
        mirror.touch();
    }
}
