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

#[path = "common/flags.rs"]
mod flags;

use std::convert::Infallible;
use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures::StreamExt;
use futures::channel::oneshot;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Method, Request, Response, StatusCode, header};
use ringleader::compat::hyper::{HyperIo, HyperTimer};
use ringleader::fs::File;
use ringleader::fs::ops::ReadAt;
use ringleader::net::{TcpListener, TcpStream};
use ringleader::{Op, spawn};

#[path = "common/listen.rs"]
#[expect(
    dead_code,
    reason = "http_server binds its cores from core 0 itself; it uses `claim` only"
)]
mod listen;

/// Bytes one file read asks for.
const CHUNK: usize = 256 * 1024;

const USAGE: &str = "\
http_server: an HTTP/1.1 server on hyper and ringleader, on every core

USAGE: http_server [--listen ADDR] [--cores N] [--dir DIR]

  --listen ADDR  address to listen on (port 0: the kernel picks one) [default: 127.0.0.1:8080]
  --cores N      cores (threads, rings, SO_REUSEPORT listeners) [default: all CPUs]
  --dir DIR      directory that downloads are served from [default: .]
  -h, --help     this text

ROUTES (GET):
  /                    the text `hello`
  /download/NAME       the file DIR/NAME
  /file?path=NAME      the same (NAME percent-encoded)

NAME may name a file in a subdirectory (a/b.bin) but not leave DIR (no `..`).
The first stdout line is `http_server: listening on ADDR (N cores)`.";

struct Args {
    listen: SocketAddr,
    cores: usize,
    dir: PathBuf,
}

/// `Ok(None)`: help was asked for.
fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut a = Args {
        listen: "127.0.0.1:8080".parse().expect("default address"),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        dir: PathBuf::from("."),
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

/// `dir/name`, if `name` is a relative path that stays inside `dir`.
fn resolve(dir: &Path, name: &str) -> Option<PathBuf> {
    let mut path = dir.to_path_buf();
    for part in name.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.contains('\0') {
            return None;
        }
        path.push(part);
    }
    Some(path)
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

async fn download(dir: &Path, name: Option<String>) -> Response<Reply> {
    let Some(path) = name.as_deref().and_then(|n| resolve(dir, n)) else {
        return text(StatusCode::BAD_REQUEST, "bad file name\n");
    };
    let file = match File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return text(StatusCode::NOT_FOUND, "no such file\n");
        }
        Err(_) => return text(StatusCode::FORBIDDEN, "cannot open the file\n"),
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

async fn handle(req: Request<Incoming>, dir: Rc<PathBuf>) -> Result<Response<Reply>, Infallible> {
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

/// Serve one connection until the client closes it (or it fails).
async fn connection(stream: TcpStream, dir: Rc<PathBuf>) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |req| handle(req, Rc::clone(&dir)));
    // Errors (a client that resets, a header timeout) end this connection only.
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(HyperTimer)
        .serve_connection(HyperIo::new(stream), service)
        .await;
}

/// Accept forever on this core's listener, one task per connection.
async fn serve(listener: TcpListener, dir: PathBuf) {
    let dir = Rc::new(dir);
    let mut incoming = listener.incoming();
    while let Some(conn) = incoming.next().await {
        match conn {
            Ok(stream) => spawn(connection(stream, Rc::clone(&dir))).detach(),
            // ECONNABORTED, EMFILE, ...: the stream re-arms; keep serving.
            Err(e) => eprintln!(
                "http_server: core {}: accept: {e}",
                ringleader::current_core()
            ),
        }
    }
}

/// Runs on core 0 of `args.cores`: bind there first (so port 0 becomes one port every core
/// shares), then on every other core, report, and serve.
#[ringleader::main(cores = args.cores)]
async fn run(args: Args) -> Result<(), String> {
    // Nobody else may listen there: a second server would split the clients with us.
    let addr = listen::claim(args.listen)?;
    let listener = TcpListener::bind_reuseport(addr).map_err(|e| format!("binding {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    for core in 1..args.cores {
        let (tx, rx) = oneshot::channel();
        let dir = args.dir.clone();
        ringleader::spawn_on(core, move || async move {
            match TcpListener::bind_reuseport(bound) {
                Ok(l) => {
                    let _ = tx.send(Ok(()));
                    serve(l, dir).await;
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        })
        .detach();
        rx.await
            .map_err(|_| format!("core {core} stopped before binding"))?
            .map_err(|e| format!("binding {bound} on core {core}: {e}"))?;
    }
    // Ignore a closed stdout: the server does not need it.
    let _ = writeln!(
        io::stdout().lock(),
        "http_server: listening on {bound} ({} cores)",
        args.cores
    );
    serve(listener, args.dir).await;
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
