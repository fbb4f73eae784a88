//! An HTTP/1.1 server on hyper and ringleader: `hello` at `/`, file downloads from a
//! directory, on every core (one `SO_REUSEPORT` listener and multishot accept per core, one
//! task per connection, keep-alive).
//!
//! Run: `cargo run --release --features hyper --example http_server -- --dir /tmp`
//!
//! The first line on stdout is `http_server: listening on ADDR (N cores)`, printed once every
//! core listens; with `--listen 127.0.0.1:0` it carries the port the kernel chose.
//!
//! A download streams the file in 256 KiB `read_at` ops, with the next read in flight while
//! hyper sends the previous chunk; the response carries `content-length`.
//!
//! # Confinement
//!
//! A requested name is opened with `openat2` beneath the served directory
//! (`File::open_beneath`: `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`, relative to a directory
//! fd each core opens at start), so the kernel refuses `..`, absolute paths and symlinks that
//! lead out of `--dir`, whatever the encoding the name arrived in, and with no window between
//! a check and the open. Symlinks that stay inside are followed.
//!
//! # Limits and stopping (docs/operating.md has the operator's view)
//!
//! - `--max-connections` (default 10,000, over all cores): at the cap new clients wait in the
//!   listen backlog until a connection ends; accepting pauses when fds run out instead of
//!   retrying in a loop (`common/accept.rs`);
//! - `--handshake-timeout` (default 5 s): hyper's `header_read_timeout`: each request's header
//!   must be complete within it of the server starting to wait for it (at accept, and after
//!   the previous response on a kept-alive connection), or the connection is closed without
//!   a response. This stops slowloris clients and is the keep-alive idle limit too;
//! - `--idle-timeout` (default 60 s): a connection with no bytes moving either way for that
//!   long is closed: a client that stopped reading its download, or a stalled request body;
//! - SIGTERM or SIGINT: stop accepting (the listeners close), let every connection finish its
//!   request in flight (hyper's graceful shutdown: an idle kept-alive connection is closed at
//!   once), and exit 0 when all are gone or `--drain-timeout` (default 10 s) has passed.

#[path = "common/flags.rs"]
mod flags;

#[path = "common/duration.rs"]
mod duration;

#[path = "common/stop.rs"]
mod stop;

#[path = "common/accept.rs"]
#[expect(
    dead_code,
    reason = "hyper times the request header itself: `within` is unused"
)]
mod accept;

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::mpsc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::rt::ReadBufCursor;
use hyper::{Method, Request, Response, StatusCode, header};
use ringleader::compat::hyper::{HyperIo, HyperTimer};
use ringleader::fs::ops::ReadAt;
use ringleader::fs::{File, raw_os_error};
use ringleader::net::{TcpListener, TcpStream};
use ringleader::{Runtime, ops::Op};

#[path = "common/listen.rs"]
mod listen;

use accept::{Activity, Conn, Gate, IdleTimer};
use duration::{parse_duration, parse_optional_duration};
use listen::bind_every_core;
use stop::StopSignals;

/// Bytes one file read asks for.
const CHUNK: usize = 256 * 1024;

/// Default `--max-connections`.
const MAX_CONNECTIONS: usize = 10_000;
/// Default `--handshake-timeout`: a real client sends its header in one segment; 5 s also
/// covers two retransmissions of it, and is Apache's keep-alive timeout.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `--idle-timeout`.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `--drain-timeout`.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

const USAGE: &str = "\
http_server: an HTTP/1.1 server on hyper and ringleader, on every core

USAGE: http_server [OPTIONS]

  --listen ADDR            address to listen on (port 0: the kernel picks one)
                           [default: 127.0.0.1:8080]
  --cores N                cores (threads, rings, SO_REUSEPORT listeners) [default: all CPUs]
  --dir DIR                directory that downloads are served from [default: .]
  --max-connections N      connections open at once, over all cores; more clients wait in
                           the listen backlog until one ends [default: 10000]
  --handshake-timeout DUR  a request's header must arrive complete within DUR of the server
                           waiting for it (after accept, or after the previous response on
                           a kept-alive connection), else the connection is closed without a
                           response; also the keep-alive idle limit (0 or off: none)
                           [default: 5s]
  --idle-timeout DUR       close a connection with no bytes moving either way for DUR (a
                           client that stopped reading its download) (0 or off: never)
                           [default: 60s]
  --drain-timeout DUR      on SIGTERM or SIGINT: stop accepting, let requests in flight
                           finish for at most DUR, then exit 0 [default: 10s]
  -h, --help               this text

DUR: a number with ms, s, m or h (a bare number is seconds).

ROUTES (GET):
  /                    the text `hello`
  /download/NAME       the file DIR/NAME
  /file?path=NAME      the same (NAME percent-encoded)

NAME may name a file in a subdirectory (a/b.bin). It is opened with openat2 beneath DIR:
`..`, absolute paths and symlinks that lead out of DIR are refused (400 for a malformed
name, 403 for a way out, 404 for a missing or non-regular file); symlinks within DIR are
followed.
The first stdout line is `http_server: listening on ADDR (N cores)`.";

struct Args {
    listen: SocketAddr,
    cores: usize,
    dir: PathBuf,
    max_connections: usize,
    limits: Limits,
    drain: Duration,
}

/// What each connection is held to.
#[derive(Clone, Copy)]
struct Limits {
    handshake: Option<Duration>,
    idle: Option<Duration>,
}

/// `Ok(None)`: help was asked for.
fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut a = Args {
        listen: "127.0.0.1:8080".parse().expect("default address"),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        dir: PathBuf::from("."),
        max_connections: MAX_CONNECTIONS,
        limits: Limits {
            handshake: Some(HANDSHAKE_TIMEOUT),
            idle: Some(IDLE_TIMEOUT),
        },
        drain: DRAIN_TIMEOUT,
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
            "--dir" => a.dir = PathBuf::from(value("--dir")?),
            "--max-connections" => {
                let v = value("--max-connections")?;
                a.max_connections = match v.parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => {
                        return Err(format!(
                            "--max-connections {v:?}: expected a number above 0"
                        ));
                    }
                };
            }
            "--handshake-timeout" => {
                let v = value("--handshake-timeout")?;
                a.limits.handshake = parse_optional_duration(&v).ok_or_else(|| {
                    format!("--handshake-timeout {v:?}: expected a duration (5s, off)")
                })?;
            }
            "--idle-timeout" => {
                let v = value("--idle-timeout")?;
                a.limits.idle = parse_optional_duration(&v).ok_or_else(|| {
                    format!("--idle-timeout {v:?}: expected a duration (60s, off)")
                })?;
            }
            "--drain-timeout" => {
                let v = value("--drain-timeout")?;
                a.drain = parse_duration(&v)
                    .ok_or_else(|| format!("--drain-timeout {v:?}: expected a duration (10s)"))?;
            }
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if !a.dir.is_dir() {
        return Err(format!("--dir {}: not a directory", a.dir.display()));
    }
    Ok(Some(a))
}

/// A response body: a small text, or a file streamed chunk by chunk.
enum Reply {
    Text(Option<Bytes>),
    File(FileBody),
}

/// `file[pos..end]`, read `CHUNK` bytes at a time with one read in flight ahead.
struct FileBody {
    file: File,
    pos: u64,
    end: u64,
    read: Option<Op<ReadAt<Vec<u8>>>>,
}

impl FileBody {
    fn start_read(&mut self) {
        let want = (self.end - self.pos).min(CHUNK as u64) as usize;
        self.read = Some(self.file.read_at(Vec::with_capacity(want), self.pos));
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        if self.read.is_none() {
            if self.pos >= self.end {
                return Poll::Ready(None);
            }
            self.start_read();
        }
        let Some(op) = &mut self.read else {
            unreachable!("a read was just started")
        };
        let (res, buf) = ready!(Pin::new(op).poll(cx));
        self.read = None;
        let n = match res {
            Ok(0) => {
                let e = io::Error::new(io::ErrorKind::UnexpectedEof, "the file shrank");
                return Poll::Ready(Some(Err(e)));
            }
            Ok(n) => n,
            Err(e) => return Poll::Ready(Some(Err(e))),
        };
        self.pos += n as u64;
        if self.pos < self.end {
            // Read ahead while hyper sends this chunk.
            self.start_read();
        }
        Poll::Ready(Some(Ok(Bytes::from(buf))))
    }
}

impl Body for Reply {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            Reply::Text(text) => Poll::Ready(text.take().map(|t| Ok(Frame::data(t)))),
            Reply::File(f) => f.poll_chunk(cx).map(|c| c.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Reply::Text(text) => text.is_none(),
            Reply::File(f) => f.read.is_none() && f.pos >= f.end,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Reply::Text(text) => SizeHint::with_exact(text.as_ref().map_or(0, |t| t.len() as u64)),
            Reply::File(f) => SizeHint::with_exact(f.end - f.pos),
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Reply> {
    let mut res = Response::new(Reply::Text(Some(Bytes::from_static(body.as_bytes()))));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    res
}

/// Decode `%XX` escapes (and `+` as a space when `plus` is set, as in a query).
fn percent_decode(s: &str, plus: bool) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hi = (bytes.next()? as char).to_digit(16)?;
                let lo = (bytes.next()? as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
            }
            b'+' if plus => out.push(b' '),
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// `name` if it is a plain relative path (no empty, `.` or `..` component, no NUL). Only a
/// first filter for a clear 400: the open beneath the directory is what confines.
fn plain_name(name: &str) -> Option<&str> {
    let plain = name
        .split('/')
        .all(|part| !(part.is_empty() || part == "." || part == ".." || part.contains('\0')));
    plain.then_some(name)
}

/// The file a request names, if it is a download request.
fn requested_file(req: &Request<Incoming>) -> Option<Option<String>> {
    let uri = req.uri();
    if let Some(name) = uri.path().strip_prefix("/download/") {
        return Some(percent_decode(name, false));
    }
    if uri.path() == "/file" {
        let path = uri
            .query()
            .unwrap_or("")
            .split('&')
            .find_map(|kv| kv.strip_prefix("path="));
        return Some(path.and_then(|p| percent_decode(p, true)));
    }
    None
}

async fn download(dir: &File, name: Option<String>) -> Response<Reply> {
    let Some(path) = name.as_deref().and_then(plain_name) else {
        return text(StatusCode::BAD_REQUEST, "bad file name\n");
    };
    let file = match File::open_beneath(dir, path).await {
        Ok(f) => f,
        Err(e) => {
            return match raw_os_error(&e) {
                Some(libc::ENOENT | libc::ENOTDIR) => text(StatusCode::NOT_FOUND, "no such file\n"),
                // A symlink (or magic link) that leads out of the directory.
                Some(libc::EXDEV | libc::ELOOP) => {
                    text(StatusCode::FORBIDDEN, "outside the served directory\n")
                }
                _ => text(StatusCode::FORBIDDEN, "cannot open the file\n"),
            };
        }
    };
    let meta = match file.metadata().await {
        Ok(m) if m.is_file() => m,
        _ => return text(StatusCode::NOT_FOUND, "not a regular file\n"),
    };
    let len = meta.len();
    let mut res = Response::new(Reply::File(FileBody {
        file,
        pos: 0,
        end: len,
        read: None,
    }));
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    res
}

async fn handle(req: Request<Incoming>, dir: Rc<File>) -> Result<Response<Reply>, Infallible> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n"));
    }
    if req.uri().path() == "/" {
        return Ok(text(StatusCode::OK, "hello"));
    }
    Ok(match requested_file(&req) {
        Some(name) => download(&dir, name).await,
        None => text(StatusCode::NOT_FOUND, "not found\n"),
    })
}

/// Serve one connection until the client closes it, it fails, it breaks a limit, or the
/// server stops (then the request in flight finishes first).
async fn connection(stream: TcpStream, dir: Rc<File>, conn: Conn, limits: Limits) {
    let _ = stream.set_nodelay(true);
    let mut idle = IdleTimer::new(limits.idle);
    let io = Watched {
        io: HyperIo::new(stream),
        activity: idle.activity(),
    };
    let service = hyper::service::service_fn(move |req| handle(req, Rc::clone(&dir)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(HyperTimer)
        .header_read_timeout(limits.handshake);
    let mut served = pin!(builder.serve_connection(io, service));
    let mut stopping = false;
    poll_fn(|cx| {
        if !stopping && Pin::new(&mut conn.stopping()).poll(cx).is_ready() {
            // Finish the request in flight, then close; an idle connection closes now.
            stopping = true;
            served.as_mut().graceful_shutdown();
        }
        // Errors (a client that resets, a header timeout) end this connection only.
        if served.as_mut().poll(cx).is_ready() || idle.poll_expired(cx).is_ready() {
            return Poll::Ready(());
        }
        Poll::Pending
    })
    .await;
}

/// The connection's I/O, touching its idle timer whenever bytes move.
struct Watched {
    io: HyperIo<TcpStream>,
    activity: Activity,
}

impl hyper::rt::Read for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let res = ready!(Pin::new(&mut self.io).poll_read(cx, buf));
        // Bytes, or the end of the stream (which ends the connection anyway).
        self.activity.touch();
        Poll::Ready(res)
    }
}

impl hyper::rt::Write for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = ready!(Pin::new(&mut self.io).poll_write(cx, buf));
        if matches!(res, Ok(n) if n > 0) {
            self.activity.touch();
        }
        Poll::Ready(res)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, bufs));
        if matches!(res, Ok(n) if n > 0) {
            self.activity.touch();
        }
        Poll::Ready(res)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Bind on `core` and open the served directory there, report the bound address (or the
/// error) on `ready`, then serve until the gate stops.
fn listen_on(
    rt: &Runtime,
    core: usize,
    addr: SocketAddr,
    gate: Gate,
    args: (PathBuf, Limits),
    ready: mpsc::Sender<io::Result<SocketAddr>>,
) {
    let (dir, limits) = args;
    rt.spawn_on(core, move || async move {
        let dir = match File::open(&dir).await {
            Ok(d) => Rc::new(d),
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let listener = match TcpListener::bind_reuseport(addr) {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let _ = ready.send(listener.local_addr());
        drop(ready);
        gate.serve(listener, |stream, conn| {
            connection(stream, Rc::clone(&dir), conn, limits)
        })
        .await;
    })
    .detach();
}

fn run(args: Args) -> Result<(), String> {
    let rt = Runtime::builder()
        .cores(args.cores)
        .build()
        .map_err(|e| format!("starting {} cores: {e}", args.cores))?;
    // Listen for the stop signals before announcing the address, so a signal sent as soon as
    // the address is known stops the server cleanly.
    let stop = StopSignals::listen(&rt).map_err(|e| format!("listening for signals: {e}"))?;
    let gate = Gate::new("http_server", args.max_connections);
    let (bound, _) = bind_every_core(args.cores, args.listen, |core, addr, ready| {
        let per_core = (args.dir.clone(), args.limits);
        listen_on(&rt, core, addr, gate.clone(), per_core, ready)
    })?;
    // Ignore a closed stdout: the server does not need it.
    let mut out = io::stdout().lock();
    let _ = writeln!(
        out,
        "http_server: listening on {bound} ({} cores)",
        args.cores
    );
    let _ = out.flush();
    drop(out);
    let sig = stop.wait().map_err(|e| e.to_string())?;
    eprintln!(
        "http_server: signal {sig}: stopping: no new connections; draining {} for up to {:?}",
        gate.open(),
        args.drain
    );
    gate.stop();
    match gate.drain(args.drain) {
        0 => eprintln!("http_server: drained"),
        n => eprintln!("http_server: --drain-timeout passed: closing {n} connections"),
    }
    rt.shutdown();
    Ok(())
}

fn main() {
    let args = match parse(flags::expand(std::env::args().skip(1))) {
        Ok(Some(a)) => a,
        Ok(None) => {
            let _ = writeln!(io::stdout(), "{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("http_server: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args) {
        eprintln!("http_server: {e}");
        std::process::exit(1);
    }
}
