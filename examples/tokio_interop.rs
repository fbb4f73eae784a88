//! Code written against tokio's `AsyncRead`/`AsyncWrite` on ringleader's streams, through
//! `ringleader::compat::tokio::TokioCompat` (cargo feature `tokio`; see
//! `docs/tokio-interop.md`).
//!
//! Run: `cargo run --release --features tokio --example tokio_interop [-- --lines 1000]`
//!
//! An uppercasing line server and a client on one core: the server reads lines with tokio's
//! `AsyncBufReadExt::lines` and answers with `AsyncWriteExt::write_all`; the client sends with
//! `write_all`, shuts its write side down with `AsyncWriteExt::shutdown` and reads the answers
//! with `read_line`. Only tokio's traits and helpers are used, never its runtime: every byte
//! goes through ringleader's recv and send ops.
//!
//! With `--measure-mib M` it also copies M MiB over a Unix socket pair through futures-io and
//! through `TokioCompat` (into an initialised slice and into uninitialised `Vec` capacity)
//! and prints MiB/s for each, the measurement `docs/tokio-interop.md` quotes.

#[path = "common/flags.rs"]
mod flags;

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Instant;

use futures::StreamExt;
use ringleader::compat::tokio::TokioCompat;
use ringleader::net::{TcpListener, TcpStream, UnixStream};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const USAGE: &str = "\
tokio_interop: tokio's io-util over ringleader streams

USAGE: tokio_interop [--lines N] [--measure-mib M]

  --lines N        lines the client sends through the uppercasing server [default: 1000]
  --measure-mib M  also copy M MiB over a Unix socket pair through futures-io and through
                   TokioCompat, and print MiB/s for each [default: off]
  -h, --help       this text";

struct Args {
    lines: usize,
    measure_mib: Option<usize>,
}

/// `Ok(None)`: help was asked for.
fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut a = Args {
        lines: 1000,
        measure_mib: None,
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            let v = it.next().ok_or_else(|| format!("{name} needs a value"))?;
            v.parse()
                .map_err(|_| format!("{name} {v:?}: expected a number"))
        };
        match flag.as_str() {
            "--lines" => a.lines = number("--lines")?,
            "--measure-mib" => a.measure_mib = Some(number("--measure-mib")?.max(1)),
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(Some(a))
}

/// Answer every line of one connection with its upper-case form.
async fn uppercase(stream: TcpStream) -> std::io::Result<()> {
    let (read, mut write) = tokio::io::split(TokioCompat::new(stream));
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        write.write_all(line.to_uppercase().as_bytes()).await?;
        write.write_all(b"\n").await?;
    }
    write.shutdown().await
}

async fn round_trip(lines: usize) -> Result<(), String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let server = ringleader::spawn(async move {
        let stream = listener.incoming().next().await.expect("never ends")?;
        uppercase(stream).await
    });
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (read, mut write) = tokio::io::split(TokioCompat::new(stream));
    // Send everything first, then read: the server's answers queue in the socket meanwhile.
    let sender = ringleader::spawn(async move {
        for i in 0..lines {
            write.write_all(format!("line {i}\n").as_bytes()).await?;
        }
        write.shutdown().await
    });
    let mut answers = BufReader::new(read);
    let mut line = String::new();
    for i in 0..lines {
        line.clear();
        answers
            .read_line(&mut line)
            .await
            .map_err(|e| e.to_string())?;
        if line != format!("LINE {i}\n") {
            return Err(format!("answer {i}: {line:?}"));
        }
    }
    sender
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    server
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// How the reader of [`measure`] reads.
#[derive(Clone, Copy, Debug)]
enum Path {
    /// `futures::AsyncReadExt::read` into a 64 KiB slice.
    FuturesIo,
    /// `tokio::io::AsyncReadExt::read` through `TokioCompat` into the same slice.
    TokioSlice,
    /// `tokio::io::AsyncReadExt::read_buf` through `TokioCompat` into the uninitialised spare
    /// capacity of a `Vec` (cleared after each read), as codecs read into a `BytesMut`.
    TokioUninit,
}

/// User CPU time of the calling thread, in clock ticks (`/proc/thread-self/stat`).
fn user_ticks() -> std::io::Result<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat")?;
    // Fields after the command name's closing parenthesis: state(0) .. utime(11).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    rest.split_whitespace()
        .nth(11)
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| std::io::Error::other("unexpected /proc/thread-self/stat"))
}

/// Copy `mib` MiB from one end of a Unix socket pair to the other (both ends on this
/// thread); MiB/s and user CPU milliseconds per GiB (at the clock tick's resolution).
async fn measure(path: Path, mib: usize) -> std::io::Result<(f64, f64)> {
    let (a, b) = UnixStream::pair()?;
    let total = mib * 1024 * 1024;
    let writer = ringleader::spawn(async move {
        let mut a = a;
        let chunk = vec![7u8; 64 * 1024];
        let mut sent = 0;
        while sent < total {
            futures::AsyncWriteExt::write_all(&mut a, &chunk).await?;
            sent += chunk.len();
        }
        futures::AsyncWriteExt::close(&mut a).await
    });
    let start = Instant::now();
    let ticks = user_ticks()?;
    let mut got = 0;
    match path {
        Path::FuturesIo => {
            let mut b = b;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = futures::AsyncReadExt::read(&mut b, &mut buf).await?;
                if n == 0 {
                    break;
                }
                got += n;
            }
        }
        Path::TokioSlice => {
            let mut b = TokioCompat::new(b);
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = b.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                got += n;
            }
        }
        Path::TokioUninit => {
            let mut b = TokioCompat::new(b);
            let mut buf = Vec::with_capacity(64 * 1024);
            loop {
                buf.clear();
                let n = b.read_buf(&mut buf).await?;
                if n == 0 {
                    break;
                }
                got += n;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    // `JoinError` is not `Sync`, so it goes into an io::Error as text.
    writer
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
    // Ticks are 10 ms on usual kernels (USER_HZ = 100).
    let user_ms = (user_ticks()? - ticks) as f64 * 10.0;
    assert_eq!(got, total, "{path:?} lost bytes");
    let mib = got as f64 / (1024.0 * 1024.0);
    Ok((mib / secs, user_ms / (mib / 1024.0)))
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
            eprintln!("tokio_interop: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = round_trip(args.lines).await {
        eprintln!("tokio_interop: {e}");
        return ExitCode::FAILURE;
    }
    println!(
        "tokio_interop: {} lines upper-cased through tokio's io-util on ringleader",
        args.lines
    );
    if let Some(mib) = args.measure_mib {
        for path in [Path::FuturesIo, Path::TokioSlice, Path::TokioUninit] {
            // A warm-up, then the measured copy.
            let run = async {
                measure(path, mib.div_ceil(8)).await?;
                measure(path, mib).await
            };
            match run.await {
                Ok((rate, user)) => println!(
                    "  {path:<12?} {rate:>6.0} MiB/s  user CPU {user:>5.0} ms/GiB ({mib} MiB)"
                ),
                Err(e) => {
                    eprintln!("tokio_interop: measuring {path:?}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    ExitCode::SUCCESS
}
