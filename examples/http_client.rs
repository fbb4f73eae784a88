//! An HTTP/1.1 client on hyper and ringleader: fetch one URL, print the status line on
//! stderr and the body on stdout (or into a file with `-o`).
//!
//! Run: `cargo run --release --features hyper --example http_client -- http://127.0.0.1:8080/`
//!
//! The host name is resolved on the blocking pool (`spawn_blocking`), the connection and the
//! body go through the ring: the body is written with `write` ops on stdout's fd or
//! `write_at` ops on the output file. Exit status 0 means a response arrived, whatever its
//! status code (as `curl` without `-f`); 1 means no response; 2 a usage error.

#[path = "common/flags.rs"]
mod flags;

use std::io::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use ringleader::compat::hyper::HyperIo;
use ringleader::fs::File;
use ringleader::net::TcpStream;

const USAGE: &str = "\
http_client: fetch a URL with hyper on ringleader

USAGE: http_client URL [-o FILE] [--timeout SECS]

  URL             http://HOST[:PORT][/PATH[?QUERY]] (http only; HOST may be [IPv6])
  -o FILE         write the body to FILE instead of stdout
  --timeout SECS  give up after SECS seconds [default: 60]
  -h, --help      this text

The status line (`HTTP/1.1 200 OK`) goes to stderr. Exit status: 0 when a response
arrived (any status code), 1 when none did, 2 on a usage error.";

struct Args {
    url: Url,
    output: Option<PathBuf>,
    timeout: Duration,
}

/// The parts of an `http://` URL the request needs.
struct Url {
    host: String,
    port: u16,
    /// `host[:port]` as written, for the `Host` header.
    authority: String,
    /// Path and query, starting with `/`.
    target: String,
}

fn parse_url(s: &str) -> Result<Url, String> {
    let rest = s
        .strip_prefix("http://")
        .ok_or_else(|| format!("{s:?}: only http:// URLs are supported"))?;
    let (authority, target) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_owned()),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{s:?}: unclosed [ in the host"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{s:?}: no host"));
    }
    let port = match port {
        None => 80,
        Some(p) => p.parse().map_err(|_| format!("{s:?}: bad port {p:?}"))?,
    };
    Ok(Url {
        host: host.to_owned(),
        port,
        authority: authority.to_owned(),
        target,
    })
}

/// `Ok(None)`: help was asked for.
fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let (mut url, mut output, mut timeout) = (None, None, Duration::from_secs(60));
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-o" => output = Some(PathBuf::from(value("-o")?)),
            "--timeout" => {
                let v = value("--timeout")?;
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0)
                    .ok_or_else(|| format!("--timeout {v:?}: expected seconds above 0"))?;
                timeout = Duration::from_secs_f64(secs);
            }
            "-h" | "--help" => return Ok(None),
            a if a.starts_with('-') => return Err(format!("unknown option {a:?} (try --help)")),
            a if url.is_none() => url = Some(parse_url(a)?),
            a => return Err(format!("unexpected argument {a:?}: one URL only")),
        }
    }
    let url = url.ok_or("no URL given (try --help)")?;
    Ok(Some(Args {
        url,
        output,
        timeout,
    }))
}

/// Where the body goes: a duplicate of stdout's fd (written at the current position, which
/// it shares with stdout; the writes hold it open) or a file.
enum Sink {
    Stdout(Rc<OwnedFd>),
    File { file: File, pos: u64 },
}

impl Sink {
    async fn write_all(&mut self, chunk: Bytes) -> std::io::Result<()> {
        let mut buf = Vec::from(chunk);
        match self {
            Sink::Stdout(out) => {
                // `u64::MAX`: the fd's own position (stdout may be a pipe).
                while !buf.is_empty() {
                    let (res, b) = ringleader::fd::write(out, buf, u64::MAX).await;
                    let n = res?;
                    if n == 0 {
                        return Err(std::io::ErrorKind::WriteZero.into());
                    }
                    buf = b;
                    buf.drain(..n);
                }
                Ok(())
            }
            Sink::File { file, pos } => {
                let len = buf.len() as u64;
                let (res, _) = file.write_all_at(buf, *pos).await;
                res?;
                *pos += len;
                Ok(())
            }
        }
    }
}

async fn fetch(args: Args) -> Result<(), String> {
    let Url {
        host,
        port,
        authority,
        target,
    } = args.url;
    // Name resolution blocks (getaddrinfo): run it on the blocking pool.
    let name = host.clone();
    let addrs: Vec<SocketAddr> = ringleader::spawn_blocking(move || {
        (name.as_str(), port)
            .to_socket_addrs()
            .map(Iterator::collect)
    })
    .await
    .map_err(|e| format!("resolving {host}: {e}"))?
    .map_err(|e| format!("resolving {host}: {e}"))?;
    let stream = TcpStream::connect(&addrs[..])
        .await
        .map_err(|e| format!("connecting to {authority}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(HyperIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {authority}: {e}"))?;
    ringleader::spawn(conn).detach();

    let req = Request::get(target.as_str())
        .header(hyper::header::HOST, authority.as_str())
        .header(hyper::header::USER_AGENT, "ringleader-http_client/0.1")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("building the request: {e}"))?;
    let res = sender
        .send_request(req)
        .await
        .map_err(|e| format!("GET {target}: {e}"))?;
    let _ = writeln!(std::io::stderr(), "{:?} {}", res.version(), res.status());

    let mut sink = match &args.output {
        None => Sink::Stdout(Rc::new(
            std::io::stdout()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| format!("duplicating stdout: {e}"))?,
        )),
        Some(path) => Sink::File {
            file: File::create(path).await.map_err(|e| e.to_string())?,
            pos: 0,
        },
    };
    let mut body = res.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("reading the body: {e}"))?;
        if let Ok(chunk) = frame.into_data() {
            sink.write_all(chunk)
                .await
                .map_err(|e| format!("writing the body: {e}"))?;
        }
    }
    if let Sink::File { file, .. } = sink {
        file.close()
            .await
            .map_err(|e| format!("closing the output: {e}"))?;
    }
    Ok(())
}

#[ringleader::main]
async fn main() -> ExitCode {
    let args = match parse(flags::expand(std::env::args().skip(1))) {
        Ok(Some(a)) => a,
        Ok(None) => {
            let _ = writeln!(std::io::stdout(), "{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("http_client: {e}");
            return ExitCode::from(2);
        }
    };
    let limit = args.timeout;
    match ringleader::time::timeout(limit, fetch(args)).await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("http_client: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("http_client: no complete response within {limit:?}");
            ExitCode::FAILURE
        }
    }
}
