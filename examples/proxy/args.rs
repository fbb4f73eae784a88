//! The command line: hand-parsed flags, sizes with K/M/G suffixes, and the usage text.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

pub(crate) const USAGE: &str = "\
proxy: a TCP proxy on io_uring (ringleader) that copies every client byte to the upstream
and to each mirror; replies come only from the upstream

USAGE: proxy --upstream ADDR [OPTIONS]

  --listen ADDR         address to listen on (port 0: the kernel picks one)
                        [default: 127.0.0.1:9000]
  --upstream ADDR       the server each client is relayed to (required)
  --mirror ADDR         also send every client byte to ADDR (repeatable); its replies are
                        read and discarded; a mirror that fails or falls behind is dropped
                        from that connection (its TCP connection reset), which goes on
  --mirror-budget SIZE  how far one mirror of a connection may fall behind the upstream:
                        bytes the upstream has taken and it has not; a mirror further
                        behind is dropped, so it never slows the client; below
                        --max-buffered, or `off` (a slow mirror then slows the client, up
                        to --mirror-timeout) [default: half of --max-buffered]
  --mirror-timeout DUR  a mirror with bytes waiting that takes none for DUR is dropped; a
                        finished connection waits at most this (and 5s) for its mirrors to
                        close (30s, 500ms, 2m) [default: 10s]
  --mode MODE           how bytes move [default: lease]
                          lease:  multishot recv into a per-connection buffer ring; the
                                  chosen buffer (a lease) is sent to every destination
                          splice: splice into a pipe, tee to each mirror's pipe, splice out;
                                  the data never enters user memory
                          copy:   recv into a Vec, write_all of that Vec to each
                                  destination (the plain baseline)
  --cores N             cores: threads, rings and SO_REUSEPORT listeners [default: 1]
  --max-buffered SIZE   the most bytes one connection direction holds in the proxy; a slow
                        destination throttles the sender beyond it [default: 4M]
  --buf-size SIZE       bytes per receive buffer (lease and copy modes) [default: 64K]
  --ring-memory SIZE    lease mode: the most buffer-ring memory one core maps; a stream
                        that finds none left is relayed through heap buffers (as in copy
                        mode) [default: 1G]
  --zc                  lease mode: send with SEND_ZC from the registered ring buffer
                        [default: off: on loopback the kernel copies anyway and the
                        notification costs a CQE per send]
  --max-connections N   client connections held at once, over all cores; clients beyond
                        wait in the listen backlog until one ends [default: 1024]
                        (worst case held: 2 x --max-buffered per connection, reached only
                        while destinations take nothing; --idle-timeout bounds how long)
  --idle-timeout DUR    close a connection on which no byte moved, either way, for DUR;
                        `off` (or 0) never [default: 5m]
  --connect-timeout DUR give up on an upstream (closing the client) or a mirror (leaving it
                        out) that has not answered a connect within DUR [default: 10s]
  --drain-timeout DUR   after SIGINT/SIGTERM: stop accepting, let open connections finish
                        for up to DUR, then close them [default: 10s]
  --stats               print `proxy-stats: ...` lines to stderr periodically
  --stats-ms MS         period of --stats lines in milliseconds [default: 1000]
  -h, --help            this text

SIZE: bytes, or a number with a K, M or G suffix (powers of 1024).

The first stdout line is `proxy: listening on ADDR (mode M, upstream U, N mirrors)`,
printed once every core listens. SIGINT or SIGTERM stops accepting, drains the open
connections for up to --drain-timeout, and exits 0.

DUR: a number with a unit: 500ms, 30s, 2m, 1h.";

/// How the client's bytes travel to the upstream and the mirrors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Lease,
    Splice,
    Copy,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Lease => "lease",
            Mode::Splice => "splice",
            Mode::Copy => "copy",
        })
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Args {
    pub listen: SocketAddr,
    pub upstream: SocketAddr,
    pub mirrors: Vec<SocketAddr>,
    pub mode: Mode,
    pub cores: usize,
    pub max_buffered: usize,
    pub buf_size: usize,
    /// `None`: `--mirror-budget off`.
    pub mirror_budget: Option<usize>,
    pub mirror_timeout: Duration,
    pub ring_memory: usize,
    pub zc: bool,
    pub stats: Option<Duration>,
    pub max_connections: usize,
    /// `None`: `--idle-timeout off`.
    pub idle: Option<Duration>,
    pub connect_timeout: Duration,
    pub drain: Duration,
}

/// `--mirror-timeout`'s default: long enough for a mirror that is merely busy (a GC pause, a
/// disk flush), short enough that a dead one does not hold a finished connection for long.
pub(crate) const MIRROR_TIMEOUT: Duration = Duration::from_secs(10);
/// `--max-connections`' default.
const MAX_CONNECTIONS: usize = 1024;
/// `--idle-timeout`'s default: a proxy carries protocols whose connections sit idle between
/// requests (pooled database or HTTP keep-alive connections), so longer than echo's.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// `--connect-timeout`'s default.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// `--drain-timeout`'s default.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// `Ok(None)`: help was asked for.
pub(crate) fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut listen: SocketAddr = "127.0.0.1:9000".parse().expect("default address");
    let mut upstream = None;
    let mut mirrors = Vec::new();
    let mut mode = Mode::Lease;
    let mut cores = 1;
    let mut max_buffered = 4 << 20;
    let mut buf_size = 64 << 10;
    let mut mirror_budget = None;
    let mut mirror_timeout = MIRROR_TIMEOUT;
    let mut ring_memory = 1 << 30;
    let mut zc = false;
    let mut stats = false;
    let mut stats_ms = 1000;
    let mut max_connections = MAX_CONNECTIONS;
    let mut idle = Some(IDLE_TIMEOUT);
    let mut connect_timeout = CONNECT_TIMEOUT;
    let mut drain = DRAIN_TIMEOUT;
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--listen" => {
                let v = value("--listen")?;
                listen = v
                    .parse()
                    .map_err(|e| format!("--listen {v:?}: {e} (expected IP:PORT)"))?;
            }
            "--upstream" => upstream = Some(resolve("--upstream", &value("--upstream")?)?),
            "--mirror" => mirrors.push(resolve("--mirror", &value("--mirror")?)?),
            "--mode" => {
                let v = value("--mode")?;
                mode = match v.as_str() {
                    "lease" => Mode::Lease,
                    "splice" => Mode::Splice,
                    "copy" => Mode::Copy,
                    _ => return Err(format!("--mode {v:?}: expected lease, splice or copy")),
                };
            }
            "--cores" => {
                let v = value("--cores")?;
                cores = match v.parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(format!("--cores {v:?}: expected a number above 0")),
                };
            }
            "--max-buffered" => max_buffered = size("--max-buffered", &value("--max-buffered")?)?,
            "--buf-size" => buf_size = size("--buf-size", &value("--buf-size")?)?,
            "--mirror-budget" => {
                let v = value("--mirror-budget")?;
                mirror_budget = Some(match v.as_str() {
                    "off" => None,
                    _ => Some(size("--mirror-budget", &v)?),
                });
            }
            "--mirror-timeout" => {
                mirror_timeout = duration("--mirror-timeout", &value("--mirror-timeout")?)?
            }
            "--connect-timeout" => {
                connect_timeout = duration("--connect-timeout", &value("--connect-timeout")?)?
            }
            "--drain-timeout" => drain = duration("--drain-timeout", &value("--drain-timeout")?)?,
            "--idle-timeout" => {
                let v = value("--idle-timeout")?;
                idle = match crate::duration::parse_optional_duration(&v) {
                    Some(d) => d,
                    None => {
                        return Err(format!(
                            "--idle-timeout {v:?}: expected a duration above 0 (30s, 500ms, \
                             2m) or off"
                        ));
                    }
                };
            }
            "--max-connections" => {
                let v = value("--max-connections")?;
                max_connections = match v.parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => {
                        return Err(format!(
                            "--max-connections {v:?}: expected a number above 0"
                        ));
                    }
                };
            }
            "--ring-memory" => ring_memory = size("--ring-memory", &value("--ring-memory")?)?,
            "--zc" => zc = true,
            "--stats" => stats = true,
            "--stats-ms" => {
                let v = value("--stats-ms")?;
                stats_ms = match v.parse::<u64>() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(format!("--stats-ms {v:?}: expected milliseconds above 0")),
                };
            }
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let upstream = upstream.ok_or("--upstream ADDR is required")?;
    if buf_size > u32::MAX as usize {
        return Err(format!("--buf-size {buf_size}: at most 4G"));
    }
    if mode != Mode::Splice && max_buffered < buf_size {
        return Err(format!(
            "--max-buffered {max_buffered} is below --buf-size {buf_size}: a connection must \
             be able to hold one buffer"
        ));
    }
    if mode == Mode::Splice {
        // A pipe holds at least a page; with mirrors the taps hold the mirror budget (two
        // pages at least) beside the main pipe (see splice.rs).
        let need = if mirrors.is_empty() { 4096 } else { 3 * 4096 };
        if max_buffered < need {
            return Err(format!(
                "--max-buffered {max_buffered}: splice mode needs at least {need} bytes (a \
                 page per pipe{})",
                if mirrors.is_empty() {
                    ""
                } else {
                    ", and two pages of mirror budget"
                }
            ));
        }
    }
    if zc && mode != Mode::Lease {
        return Err("--zc applies to --mode lease only".into());
    }
    let mirror_budget = mirror_budget.unwrap_or(Some(max_buffered / 2));
    if let (false, Some(budget)) = (mirrors.is_empty(), mirror_budget) {
        check_mirror_budget(mode, budget, max_buffered, buf_size)?;
    }
    Ok(Some(Args {
        listen,
        upstream,
        mirrors,
        mode,
        cores,
        max_buffered,
        buf_size,
        mirror_budget,
        mirror_timeout,
        ring_memory,
        zc,
        stats: stats.then(|| Duration::from_millis(stats_ms)),
        max_connections,
        idle,
        connect_timeout,
        drain,
    }))
}

/// A mirror's budget must leave the upstream room in the direction's bound, and hold at
/// least one receive (a buffer in lease and copy modes, two pages of tap pipe in splice
/// mode), or every mirror would be dropped at its first bytes.
fn check_mirror_budget(
    mode: Mode,
    budget: usize,
    max_buffered: usize,
    buf_size: usize,
) -> Result<(), String> {
    let (least, room) = match mode {
        Mode::Splice => (2 * 4096, 4096),
        Mode::Lease | Mode::Copy => (buf_size, buf_size),
    };
    // Lease mode's ring has a power of two buffers, at most the bound: the budget must leave
    // the upstream a buffer of it, or a mirror could hold the whole ring within its budget.
    let max_buffered = match mode {
        Mode::Lease => {
            let n = (max_buffered / buf_size).clamp(1, 1 << 15);
            (1 << n.ilog2()) * buf_size
        }
        Mode::Splice | Mode::Copy => max_buffered,
    };
    if budget < least {
        return Err(format!(
            "--mirror-budget {budget}: at least {least} ({})",
            if mode == Mode::Splice {
                "two pages of tap pipe"
            } else {
                "one --buf-size buffer"
            }
        ));
    }
    if budget + room > max_buffered {
        return Err(format!(
            "--mirror-budget {budget}: must leave the upstream at least {room} bytes of the \
             {max_buffered} a connection direction holds (--max-buffered; in lease mode, \
             rounded down to a power of two buffers), so a slow mirror never stops the client"
        ));
    }
    Ok(())
}

/// `IP:PORT`, or `HOST:PORT` resolved once, here (the first address wins).
fn resolve(flag: &str, v: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = v.parse() {
        return Ok(a);
    }
    v.to_socket_addrs()
        .map_err(|e| format!("{flag} {v:?}: {e} (expected IP:PORT or HOST:PORT)"))?
        .next()
        .ok_or_else(|| format!("{flag} {v:?}: resolves to no address"))
}

/// A duration above 0.
fn duration(flag: &str, v: &str) -> Result<Duration, String> {
    match crate::duration::parse_duration(v) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(format!(
            "{flag} {v:?}: expected a duration above 0 (30s, 500ms, 2m)"
        )),
    }
}

fn size(flag: &str, v: &str) -> Result<usize, String> {
    crate::size::parse_size(v)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| {
            format!("{flag} {v:?}: expected bytes above 0, or a number with a K, M or G suffix")
        })
}
