//! A line-based chat server in the style of tokio's chat example: every line a client sends
//! goes to every other client.
//!
//! Run: `cargo run --release --example chat [-- --listen ADDR --max-clients N]`, then
//! `nc 127.0.0.1 6142` from a few terminals.
//!
//! The first line on stdout is `chat: listening on ADDR`; with `--listen 127.0.0.1:0` it
//! carries the port the kernel chose. A client is asked for its name (and closed if it gives
//! none within `--name-timeout`), then gets `chat: welcome, NAME (N online)`; from then on it
//! receives `NAME: LINE` for every line another client sends, and `* NAME joined` /
//! `* NAME left` notices. SIGINT (Ctrl-C) or SIGTERM stops the server cleanly: the listener
//! closes, every client gets `chat: server stopping` and is closed, and the process exits 0.
//!
//! # How it is built (docs/from-tokio.md shows it beside the tokio version)
//!
//! - One core: the accept loop and one task per client ([`JoinSet`]) share a thread, so the
//!   tasks are `!Send`-friendly and nothing here locks. (A multi-core chat would run one
//!   accept loop per core on `SO_REUSEPORT` listeners; `sync::broadcast` already crosses
//!   cores.)
//! - Lines travel through one [`broadcast`] channel; each client task `select!`s between its
//!   next input line and the next broadcast event.
//! - Every future raced in a `select!` here is cancel-safe, because a branch that loses is
//!   dropped: `Incoming::next` (one multishot accept stays armed; accepted connections queue
//!   in the stream), `Lines::next` (a partial line stays in the stream), `broadcast::recv`,
//!   and the signal futures, which are pinned outside the loop and polled by `&mut`.
//! - The name prompt is a [`time::timeout`] around `lines.next()`: on expiry the read is
//!   dropped, so its recv op is cancelled (docs/cancellation.md).
//! - Limits against clients that misbehave: a line longer than `--max-line` closes its
//!   client (futures' `lines()` would buffer an endless line without bound, so the server
//!   reads lines through [`BoundedLines`]); a client that takes none of its output for
//!   `--write-timeout` is closed (otherwise one that never reads would keep its task and slot
//!   for good, blocked in a send); `--max-clients` bounds the rest. Memory: per client at most
//!   one partial line plus the socket buffers; the shared history holds at most 8192 lines of
//!   at most `--max-line` bytes plus the name.

#[path = "common/flags.rs"]
mod flags;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::io::AsyncBufRead;
use futures::{AsyncWriteExt, Stream, StreamExt};
use ringleader::net::{TcpListener, TcpStream};
use ringleader::signal::{
    ctrl_c,
    unix::{SignalKind, signal},
};
use ringleader::sync::broadcast::{self, error::RecvError};
use ringleader::task::JoinSet;
use ringleader::time;

/// Events kept for slow readers; a client further behind is told how many it missed.
const HISTORY: usize = 8192;
/// After a stop signal, how long clients get to be told and closed before they are aborted.
const DRAIN: Duration = Duration::from_secs(5);

struct Args {
    listen: SocketAddr,
    max_clients: usize,
    name_timeout: Duration,
    max_line: usize,
    write_timeout: Duration,
}

const USAGE: &str = "\
chat: a line-based chat server on io_uring (every line goes to every other client)

USAGE: chat [OPTIONS]

  --listen ADDR          address to listen on (port 0: the kernel picks one)
                         [default: 127.0.0.1:6142]
  --max-clients N        clients connected at once; more are told the room is full and
                         closed [default: 1000]
  --name-timeout SECS    close a client that gives no name within SECS seconds [default: 30]
  --max-line BYTES       close a client that sends a longer line (the name included)
                         [default: 4096]
  --write-timeout SECS   close a client that takes none of its output for SECS seconds (it
                         stopped reading) [default: 30]
  -h, --help             this text

The first stdout line is `chat: listening on ADDR`. SIGINT or SIGTERM: tell every client
the server is stopping, close them, exit 0.";

/// `Ok(None)`: help was asked for.
fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut a = Args {
        listen: "127.0.0.1:6142".parse().expect("default address"),
        max_clients: 1000,
        name_timeout: Duration::from_secs(30),
        max_line: 4096,
        write_timeout: Duration::from_secs(30),
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
            "--max-clients" => {
                let v = value("--max-clients")?;
                a.max_clients = match v.parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(format!("--max-clients {v:?}: expected a number above 0")),
                };
            }
            "--name-timeout" => a.name_timeout = secs("--name-timeout", &value("--name-timeout")?)?,
            "--write-timeout" => {
                a.write_timeout = secs("--write-timeout", &value("--write-timeout")?)?
            }
            "--max-line" => {
                let v = value("--max-line")?;
                a.max_line = match v.parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(format!("--max-line {v:?}: expected bytes above 0")),
                };
            }
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(Some(a))
}

/// Whole seconds above 0.
fn secs(flag: &str, v: &str) -> Result<Duration, String> {
    match v.parse::<u64>() {
        Ok(s) if s > 0 => Ok(Duration::from_secs(s)),
        _ => Err(format!("{flag} {v:?}: expected seconds above 0")),
    }
}

/// What the broadcast channel carries.
#[derive(Clone, Debug)]
enum Event {
    /// A line for every client but `from` (already formatted, newline included).
    Line { from: u64, text: Arc<str> },
    /// The server is stopping: say so and close.
    Stop,
}

/// The state the client tasks share (all on one core, hence `Rc` and `Cell`).
struct Room {
    tx: broadcast::Sender<Event>,
    online: std::cell::Cell<usize>,
    name_timeout: Duration,
    max_line: usize,
    write_timeout: Duration,
}

fn main() {
    let args = match parse(flags::expand(std::env::args().skip(1))) {
        Ok(Some(a)) => a,
        Ok(None) => {
            let _ = writeln!(io::stdout(), "{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("chat: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = ringleader::block_on(serve(args)) {
        eprintln!("chat: {e}");
        std::process::exit(1);
    }
}

async fn serve(args: Args) -> io::Result<()> {
    // Listen for the stop signals before announcing the address, so a signal sent as soon
    // as the address is known stops the server cleanly instead of killing it.
    let mut interrupt = pin!(ctrl_c());
    if futures::poll!(interrupt.as_mut()).is_ready() {
        return Ok(());
    }
    let mut terminate = signal(SignalKind::terminate())?;

    let listener = TcpListener::bind(args.listen)?;
    let mut incoming = listener.incoming();
    let (tx, _) = broadcast::channel(HISTORY);
    let room = Rc::new(Room {
        tx,
        online: std::cell::Cell::new(0),
        name_timeout: args.name_timeout,
        max_line: args.max_line,
        write_timeout: args.write_timeout,
    });
    let mut clients = JoinSet::new();
    let mut next_id = 0u64;
    {
        let mut out = io::stdout().lock();
        writeln!(out, "chat: listening on {}", listener.local_addr()?)?;
        out.flush()?;
    }

    let stop = loop {
        ringleader::select! {
            conn = incoming.next() => {
                let stream = match conn {
                    Some(Ok(s)) => s,
                    Some(Err(e)) => {
                        eprintln!("chat: accept: {e}");
                        continue;
                    }
                    None => break "the listener closed",
                };
                // Reap finished clients first, so the count is of live ones.
                while clients.try_join_next().is_some() {}
                if clients.len() >= args.max_clients {
                    clients.spawn(refuse(stream));
                    continue;
                }
                next_id += 1;
                clients.spawn(client(Rc::clone(&room), stream, next_id));
            }
            Some(done) = clients.join_next() => {
                if let Err(e) = done {
                    eprintln!("chat: a client task failed: {e}");
                }
            }
            r = &mut interrupt => {
                r?;
                break "SIGINT";
            }
            _ = terminate.recv() => break "SIGTERM",
        }
    };

    eprintln!("chat: {stop}: stopping");
    drop(incoming);
    drop(listener);
    let _ = room.tx.send(Event::Stop);
    let drained = time::timeout(DRAIN, async {
        while let Some(done) = clients.join_next().await {
            if let Err(e) = done {
                eprintln!("chat: a client task failed: {e}");
            }
        }
    })
    .await;
    if drained.is_err() {
        eprintln!(
            "chat: {} clients still busy after {DRAIN:?}: closing them",
            clients.len()
        );
        clients.shutdown().await;
    }
    eprintln!("chat: stopped");
    Ok(())
}

/// Over `--max-clients`: say so and close.
async fn refuse(stream: TcpStream) {
    let _ = time::timeout(Duration::from_secs(1), async move {
        let mut stream = stream;
        stream
            .write_all(b"chat: the room is full, try later\n")
            .await?;
        stream.close().await
    })
    .await;
}

/// One client: a name, then its lines out and everyone else's lines in.
async fn client(room: Rc<Room>, stream: TcpStream, id: u64) {
    let peer = stream.peer_addr().ok();
    if let Err(e) = chat(&room, stream, id).await {
        // A client that resets is normal; anything else is worth a line.
        if e.kind() != io::ErrorKind::ConnectionReset && e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("chat: client {peer:?}: {e}");
        }
    }
}

async fn chat(room: &Room, stream: TcpStream, id: u64) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let (rd, mut wr) = stream.into_split();
    let mut lines = BoundedLines::new(rd, room.max_line);

    send(&mut wr, "chat: your name?\n", room.write_timeout).await?;
    let name = match time::timeout(room.name_timeout, lines.next()).await {
        Ok(Some(Ok(line))) => line.trim().to_owned(),
        Ok(Some(Err(e))) => return refuse_line(&mut wr, e, room).await,
        Ok(None) => return Ok(()),
        Err(_elapsed) => {
            return send(&mut wr, "chat: no name given, bye\n", room.write_timeout).await;
        }
    };
    let name = if name.is_empty() {
        format!("guest{id}")
    } else {
        name
    };

    // Subscribe before saying welcome: every line sent after a client saw its welcome
    // reaches it.
    let mut rx = room.tx.subscribe();
    room.online.set(room.online.get() + 1);
    let _left = Leave {
        room,
        id,
        name: &name,
    };
    let _ = room.tx.send(Event::Line {
        from: id,
        text: format!("* {name} joined\n").into(),
    });
    send(
        &mut wr,
        &format!("chat: welcome, {name} ({} online)\n", room.online.get()),
        room.write_timeout,
    )
    .await?;

    loop {
        ringleader::select! {
            line = lines.next() => match line {
                Some(Ok(line)) => {
                    let text = format!("{name}: {line}\n");
                    let _ = room.tx.send(Event::Line { from: id, text: text.into() });
                }
                Some(Err(e)) => return refuse_line(&mut wr, e, room).await,
                None => return Ok(()),
            },
            event = rx.recv() => match event {
                Ok(Event::Line { from, text }) if from != id => send(&mut wr, &text, room.write_timeout).await?,
                Ok(Event::Line { .. }) => {}
                Ok(Event::Stop) | Err(RecvError::Closed) => {
                    return send(&mut wr, "chat: server stopping\n", room.write_timeout).await;
                }
                Err(RecvError::Lagged(n)) => {
                    send(&mut wr, &format!("chat: you missed {n} messages\n"), room.write_timeout).await?;
                }
            },
        }
    }
}

/// Write one whole message (futures-io's `write_all`, then a flush), within `limit`: a
/// client that takes nothing for that long has stopped reading and is closed.
async fn send(
    wr: &mut (impl AsyncWriteExt + Unpin),
    text: &str,
    limit: Duration,
) -> io::Result<()> {
    let write = async {
        wr.write_all(text.as_bytes()).await?;
        wr.flush().await
    };
    time::timeout(limit, write).await.unwrap_or_else(|_| {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("took no output for {limit:?} (--write-timeout): closed"),
        ))
    })
}

/// A line the client may not send (too long, not UTF-8): say why, then close it.
async fn refuse_line(
    wr: &mut (impl AsyncWriteExt + Unpin),
    e: io::Error,
    room: &Room,
) -> io::Result<()> {
    let _ = send(wr, &format!("chat: {e}, bye\n"), room.write_timeout).await;
    Err(e)
}

/// Lines of a buffered reader, each at most `max` bytes (without its `\n`); a longer one is
/// an `InvalidData` error, once, after which the stream ends. Unlike futures' `lines()` the
/// partial line it holds is bounded. Cancel-safe, as `lines()` is: the partial line lives in
/// the stream, so a `select!` that drops `next()` loses nothing.
struct BoundedLines<R> {
    reader: R,
    line: Vec<u8>,
    max: usize,
    done: bool,
}

impl<R: AsyncBufRead + Unpin> BoundedLines<R> {
    fn new(reader: R, max: usize) -> BoundedLines<R> {
        BoundedLines {
            reader,
            line: Vec::new(),
            max,
            done: false,
        }
    }
}

impl<R: AsyncBufRead + Unpin> Stream for BoundedLines<R> {
    type Item = io::Result<String>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            let available = match Pin::new(&mut this.reader).poll_fill_buf(cx) {
                Poll::Ready(Ok(b)) => b,
                Poll::Ready(Err(e)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Pending => return Poll::Pending,
            };
            if available.is_empty() {
                // End of stream: a last line without its newline still counts.
                this.done = true;
                if this.line.is_empty() {
                    return Poll::Ready(None);
                }
                return Poll::Ready(Some(finish(std::mem::take(&mut this.line))));
            }
            let (take, newline) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (available.len(), false),
            };
            if this.line.len() + take > this.max {
                this.done = true;
                return Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("line longer than {} bytes (--max-line)", this.max),
                ))));
            }
            this.line.extend_from_slice(&available[..take]);
            Pin::new(&mut this.reader).consume(take + usize::from(newline));
            if newline {
                return Poll::Ready(Some(finish(std::mem::take(&mut this.line))));
            }
        }
    }
}

/// A received line as text, without a trailing `\r`.
fn finish(mut line: Vec<u8>) -> io::Result<String> {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a line that is not UTF-8"))
}

/// Tells the others that a client left, however its task ends (return, error or abort).
struct Leave<'a> {
    room: &'a Room,
    id: u64,
    name: &'a str,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.room.online.set(self.room.online.get() - 1);
        let _ = self.room.tx.send(Event::Line {
            from: self.id,
            text: format!("* {} left\n", self.name).into(),
        });
    }
}
