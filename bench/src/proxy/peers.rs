//! The peer proxies written in the bench, and the mirror sink. Each runs as its own process
//! (the bench binary re-run with a hidden `--serve-*` flag) so its CPU time can be read from
//! `/proc/PID/stat` alone, and announces itself with one stdout line
//! `proxy: listening on ADDR (...)`, as ringleader's `examples/proxy` does.
//!
//! Each is the program its runtime's docs lead to, without tuning:
//!
//! - **tokio**: a current-thread runtime, a task per connection,
//!   `tokio::io::copy_bidirectional` (two 8 KiB buffers; shuts down the write side when a
//!   read side ends).
//! - **monoio**: monoio's `IoUringDriver`, the loop of monoio's `examples/proxy.rs` (owned
//!   8 KiB `Vec`, `read` then `write_all`, both directions joined), plus a `shutdown` of the
//!   write half at end of stream so half-close propagates like everyone else's.
//! - **monoio-splice**: the same with `monoio::io::zero_copy` (splice through a pipe,
//!   4 KiB per splice, monoio's constant) in each direction.
//! - **tokio fan-out**: a current-thread runtime; per connection, the client's bytes are
//!   read into one 64 KiB buffer and each chunk is written with `write_all` to the upstream
//!   and then to every mirror in turn; the upstream's replies are relayed back with
//!   `tokio::io::copy`. End of stream from the client shuts down the upstream and mirrors.
//! - **sink**: plain std threads, one per connection, reading into a 256 KiB buffer reused
//!   for the connection's life and discarding it.
//!
//! Every proxy sets `TCP_NODELAY` on both of its sockets.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;

use futures_lite::future::zip;

/// The tokio fan-out proxy's read buffer.
const FANOUT_BUF: usize = 64 * 1024;
/// The sink's read buffer.
const SINK_BUF: usize = 256 * 1024;
/// monoio's `examples/proxy.rs` buffer.
const MONOIO_BUF: usize = 8 * 1024;

fn announce(addr: SocketAddr, what: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "proxy: listening on {addr} ({what})");
    let _ = out.flush();
}

fn tokio_runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
}

/// tokio `copy_bidirectional` proxy from `listen` to `upstream`; returns only on a set-up
/// or accept error.
pub fn tokio_proxy(listen: SocketAddr, upstream: SocketAddr) -> io::Result<()> {
    tokio_runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        announce(listener.local_addr()?, "tokio copy_bidirectional");
        loop {
            let (mut client, _) = listener.accept().await?;
            tokio::spawn(async move {
                let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = up.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
            });
        }
    })
}

/// tokio fan-out proxy: the client's bytes to `upstream` and every one of `mirrors`.
pub fn tokio_fanout(
    listen: SocketAddr,
    upstream: SocketAddr,
    mirrors: Vec<SocketAddr>,
) -> io::Result<()> {
    let mirrors = Rc::new(mirrors);
    let local = tokio::task::LocalSet::new();
    local.block_on(&tokio_runtime()?, async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        announce(
            listener.local_addr()?,
            &format!("tokio fan-out to {} mirror(s)", mirrors.len()),
        );
        loop {
            let (client, _) = listener.accept().await?;
            tokio::task::spawn_local(fanout_conn(client, upstream, Rc::clone(&mirrors)));
        }
    })
}

async fn fanout_conn(
    mut client: tokio::net::TcpStream,
    upstream: SocketAddr,
    mirrors: Rc<Vec<SocketAddr>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await else {
        return;
    };
    let mut sinks = Vec::with_capacity(mirrors.len());
    for &m in mirrors.iter() {
        let Ok(s) = tokio::net::TcpStream::connect(m).await else {
            return;
        };
        let _ = s.set_nodelay(true);
        sinks.push(s);
    }
    let _ = client.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let (mut client_r, mut client_w) = client.split();
    let (mut up_r, mut up_w) = up.split();
    let forward = async {
        let mut buf = vec![0u8; FANOUT_BUF];
        'chunks: loop {
            let n = match client_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if up_w.write_all(&buf[..n]).await.is_err() {
                break;
            }
            for s in sinks.iter_mut() {
                if s.write_all(&buf[..n]).await.is_err() {
                    break 'chunks;
                }
            }
        }
        let _ = up_w.shutdown().await;
        for s in sinks.iter_mut() {
            let _ = s.shutdown().await;
        }
    };
    let back = async {
        let _ = tokio::io::copy(&mut up_r, &mut client_w).await;
        let _ = client_w.shutdown().await;
    };
    zip(forward, back).await;
}

/// monoio proxy (`examples/proxy.rs`'s loop), or with `splice`, `monoio::io::zero_copy`.
pub fn monoio_proxy(listen: SocketAddr, upstream: SocketAddr, splice: bool) -> io::Result<()> {
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new().build()?;
    rt.block_on(async move {
        let listener = monoio::net::TcpListener::bind(listen)?;
        let what = if splice {
            "monoio zero_copy (splice)"
        } else {
            "monoio read/write_all"
        };
        announce(listener.local_addr()?, what);
        loop {
            let (client, _) = listener.accept().await?;
            monoio::spawn(monoio_conn(client, upstream, splice));
        }
    })
}

async fn monoio_conn(client: monoio::net::TcpStream, upstream: SocketAddr, splice: bool) {
    use monoio::io::Splitable;
    let Ok(up) = monoio::net::TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let (mut client_r, mut client_w) = client.into_split();
    let (mut up_r, mut up_w) = up.into_split();
    if splice {
        zip(
            monoio_splice_one_way(&mut client_r, &mut up_w),
            monoio_splice_one_way(&mut up_r, &mut client_w),
        )
        .await;
    } else {
        zip(
            monoio_copy_one_way(&mut client_r, &mut up_w),
            monoio_copy_one_way(&mut up_r, &mut client_w),
        )
        .await;
    }
}

async fn monoio_copy_one_way<R, W>(from: &mut R, to: &mut W)
where
    R: monoio::io::AsyncReadRent,
    W: monoio::io::AsyncWriteRent,
{
    use monoio::io::AsyncWriteRentExt;
    let mut buf = Vec::with_capacity(MONOIO_BUF);
    loop {
        let (res, b) = from.read(buf).await;
        buf = b;
        if !matches!(res, Ok(1..)) {
            break;
        }
        let (res, b) = to.write_all(buf).await;
        buf = b;
        if res.is_err() {
            break;
        }
        buf.clear();
    }
    let _ = to.shutdown().await;
}

async fn monoio_splice_one_way<R, W>(from: &mut R, to: &mut W)
where
    R: monoio::io::as_fd::AsReadFd,
    W: monoio::io::as_fd::AsWriteFd + monoio::io::AsyncWriteRent,
{
    let _ = monoio::io::zero_copy(from, to).await;
    let _ = to.shutdown().await;
}

/// Accept on `listen` forever; read and discard every connection on its own thread.
pub fn sink(listen: SocketAddr) -> io::Result<()> {
    let listener = std::net::TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    {
        let mut out = io::stdout().lock();
        writeln!(out, "sink: listening on {addr}")?;
        out.flush()?;
    }
    loop {
        let (mut conn, _) = listener.accept()?;
        std::thread::spawn(move || {
            let mut buf = vec![0u8; SINK_BUF];
            while let Ok(1..) = conn.read(&mut buf) {}
        });
    }
}
