//! A per-core TCP echo server: one `SO_REUSEPORT` listener per core, each with a multishot
//! accept, one task per connection echoing with owned buffers.
//!
//! Run: `cargo run --release --example echo [-- --listen ADDR --cores N]`
//!
//! The first line on stdout is `echo: listening on ADDR (N cores)`, printed once every core
//! listens; with `--listen 127.0.0.1:0` it carries the port the kernel chose. A client that
//! shuts down its write side gets everything echoed and then end-of-stream; a client that
//! resets only ends its own connection.

use std::io::Write;
use std::net::{Shutdown, SocketAddr};
use std::sync::mpsc;

use futures::StreamExt;
use ringleader::net::{OwnedIo, TcpListener, TcpStream};
use ringleader::{Runtime, spawn};

/// Bytes one recv may return.
const BUF: usize = 16 * 1024;

struct Args {
    listen: SocketAddr,
    cores: usize,
}

const USAGE: &str = "\
echo: a per-core TCP echo server on io_uring

USAGE: echo [--listen ADDR] [--cores N]

  --listen ADDR  address to listen on (port 0: the kernel picks one) [default: 127.0.0.1:7878]
  --cores N      cores (threads, rings, SO_REUSEPORT listeners) [default: all CPUs]
  -h, --help     this text

The first stdout line is `echo: listening on ADDR (N cores)`.";

/// `Ok(None)`: help was asked for.
fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut a = Args {
        listen: "127.0.0.1:7878".parse().expect("default address"),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--listen" => {
                let v = value("--listen")?;
                a.listen = v
                    .parse()
                    .map_err(|e| format!("--listen {v:?}: {e} (expected IP:PORT)"))?;
            }
            "--cores" => {
                let v = value("--cores")?;
                a.cores = match v.parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(format!("--cores {v:?}: expected a number above 0")),
                };
            }
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(Some(a))
}

/// Echo until the peer closes its write side (then close ours) or the connection fails.
async fn echo(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(BUF);
    loop {
        buf.clear();
        let (res, b) = stream.read(buf).await;
        buf = b;
        match res {
            Ok(0) => break,
            Ok(_) => {}
            // A reset or other failure ends this connection only.
            Err(_) => return,
        }
        let (res, b) = stream.write_all(buf).await;
        buf = b;
        if res.is_err() {
            return;
        }
    }
    let _ = stream.shutdown(Shutdown::Write).await;
}

/// Accept forever on this core's listener, one task per connection.
async fn serve(listener: TcpListener) {
    let mut incoming = listener.incoming();
    while let Some(conn) = incoming.next().await {
        match conn {
            Ok(stream) => spawn(echo(stream)).detach(),
            // ECONNABORTED, EMFILE, ...: the stream re-arms; keep serving.
            Err(e) => eprintln!("echo: core {}: accept: {e}", ringleader::current_core()),
        }
    }
}

/// Bind on `core`, report the bound address (or the error) on `ready`, then serve.
fn listen_on(
    rt: &Runtime,
    core: usize,
    addr: SocketAddr,
    ready: mpsc::Sender<std::io::Result<SocketAddr>>,
) -> ringleader::JoinHandle<()> {
    rt.spawn_on(core, move || async move {
        let listener = match TcpListener::bind_reuseport(addr) {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let _ = ready.send(listener.local_addr());
        drop(ready);
        serve(listener).await;
    })
}

fn run(args: Args) -> Result<(), String> {
    let rt = Runtime::builder()
        .cores(args.cores)
        .build()
        .map_err(|e| format!("starting {} cores: {e}", args.cores))?;
    let (tx, rx) = mpsc::channel();
    // Core 0 binds first, so that port 0 becomes one port every other core then shares.
    let mut handles = vec![listen_on(&rt, 0, args.listen, tx.clone())];
    let bound = rx
        .recv()
        .map_err(|_| "core 0 stopped before binding".to_owned())?
        .map_err(|e| format!("binding {}: {e}", args.listen))?;
    for core in 1..args.cores {
        handles.push(listen_on(&rt, core, bound, tx.clone()));
    }
    drop(tx);
    for _ in 1..args.cores {
        rx.recv()
            .map_err(|_| "a core stopped before binding".to_owned())?
            .map_err(|e| format!("binding {bound}: {e}"))?;
    }
    // Ignore a closed stdout: the server does not need it.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "echo: listening on {bound} ({} cores)", args.cores);
    let _ = out.flush();
    drop(out);
    for h in handles {
        if let Err(e) = futures::executor::block_on(h) {
            return Err(format!("a core's server failed: {e}"));
        }
    }
    Ok(())
}

fn main() {
    let args = match parse(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            let _ = writeln!(std::io::stdout(), "{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("echo: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args) {
        eprintln!("echo: {e}");
        std::process::exit(1);
    }
}
