//! The peers' echo servers: each the straightforward idiomatic program for its runtime.
//!
//! One listener; one task per connection; `TCP_NODELAY`; a 4 KiB buffer per connection
//! (a whole 128 B or 1 KiB request arrives in one read); read what is there, write all of
//! it back, until end of stream or an error. No tuning beyond the runtime's defaults, and no
//! buffer pool or multishot op a user would have to write by hand: this is what each runtime
//! gives an application that reads and writes.
//!
//! Each runs in its own process (see `child`), started by the bench binary as
//! `echo --serve NAME --listen ADDR`; it prints `echo: listening on ADDR (1 cores)` once
//! bound, then serves until killed.

use std::io::{self, Write};
use std::net::SocketAddr;

/// Bytes per connection buffer.
pub const BUF: usize = 4096;

/// A peer runtime's echo server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// tokio, `new_current_thread()`: everything on the calling thread.
    TokioCurrentThread,
    /// tokio, `new_multi_thread().worker_threads(1)`: connections on the one worker; the
    /// accept loop in `block_on` on the main thread. Both threads share the server's CPU.
    TokioMultiThread,
    /// monoio on its io_uring driver.
    Monoio,
    /// glommio: one `LocalExecutor`, placement unbound (the process is already pinned).
    Glommio,
    /// compio on its io_uring driver.
    Compio,
}

fn announce(addr: SocketAddr) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "echo: listening on {addr} (1 cores)");
    let _ = out.flush();
}

/// Bind `listen` and serve forever (returns only on a set-up error).
pub fn serve(peer: Peer, listen: SocketAddr) -> io::Result<()> {
    match peer {
        Peer::TokioCurrentThread => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()?;
            rt.block_on(tokio_accept(listen))
        }
        Peer::TokioMultiThread => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_io()
                .build()?;
            rt.block_on(tokio_accept(listen))
        }
        Peer::Monoio => {
            let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new().build()?;
            rt.block_on(monoio_accept(listen))
        }
        Peer::Glommio => {
            let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
                .make()
                .map_err(io::Error::from)?;
            ex.run(glommio_accept(listen))
        }
        Peer::Compio => {
            let rt = compio::runtime::Runtime::new()?;
            rt.block_on(compio_accept(listen))
        }
    }
}

async fn tokio_accept(listen: SocketAddr) -> io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    announce(listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(tokio_echo(stream));
    }
}

async fn tokio_echo(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; BUF];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn monoio_accept(listen: SocketAddr) -> io::Result<()> {
    let listener = monoio::net::TcpListener::bind(listen)?;
    announce(listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        monoio::spawn(monoio_echo(stream));
    }
}

async fn monoio_echo(mut stream: monoio::net::TcpStream) {
    use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(BUF);
    loop {
        let (res, b) = stream.read(buf).await;
        buf = b;
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let (res, b) = stream.write_all(buf).await;
        buf = b;
        if res.is_err() {
            return;
        }
    }
}

async fn glommio_accept(listen: SocketAddr) -> io::Result<()> {
    let listener = glommio::net::TcpListener::bind(listen).map_err(io::Error::from)?;
    announce(listener.local_addr()?);
    loop {
        let stream = listener.accept().await.map_err(io::Error::from)?;
        glommio::spawn_local(glommio_echo(stream)).detach();
    }
}

async fn glommio_echo(mut stream: glommio::net::TcpStream) {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; BUF];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn compio_accept(listen: SocketAddr) -> io::Result<()> {
    let listener = compio::net::TcpListener::bind(listen).await?;
    announce(listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        compio::runtime::spawn(compio_echo(stream)).detach();
    }
}

async fn compio_echo(mut stream: compio::net::TcpStream) {
    use compio::io::{AsyncRead, AsyncWriteExt};
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(BUF);
    loop {
        let compio::BufResult(res, b) = stream.read(buf).await;
        buf = b;
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let compio::BufResult(res, b) = stream.write_all(buf).await;
        buf = b;
        if res.is_err() {
            return;
        }
        buf.clear();
    }
}
