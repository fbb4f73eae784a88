//! The rows of the proxy bench: what each one runs between the iperf3 client and server,
//! and how it is started.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::iperf::free_port;
use super::process::Proc;

/// How long a proxy may take to start listening.
const READY: Duration = Duration::from_secs(10);

/// A mode of ringleader's `examples/proxy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Lease,
    Splice,
    Copy,
}

impl Mode {
    fn flag(self) -> &'static str {
        match self {
            Mode::Lease => "lease",
            Mode::Splice => "splice",
            Mode::Copy => "copy",
        }
    }
}

/// One row: the path the iperf3 stream takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Row {
    /// No proxy: the ceiling.
    Direct,
    /// `examples/proxy --mode M --cores 1` (with `--zc`).
    Ringleader { mode: Mode, zc: bool },
    /// `socat TCP-LISTEN:P,reuseaddr,fork TCP:UP` (a process per connection).
    Socat,
    /// haproxy in tcp mode, one thread (with `option splice-auto`).
    Haproxy { splice: bool },
    /// tokio `copy_bidirectional`, current-thread runtime.
    Tokio,
    /// monoio read/write_all (or `zero_copy` splice).
    Monoio { splice: bool },
    /// Fan-out: `examples/proxy --mode M --mirror ..`.
    FanRingleader(Mode),
    /// Fan-out: the tokio fan-out proxy.
    FanTokio,
}

impl Row {
    /// Every row, in table order (single-stream rows, then fan-out rows).
    pub const ALL: [Row; 15] = [
        Row::Direct,
        Row::Ringleader {
            mode: Mode::Lease,
            zc: false,
        },
        Row::Ringleader {
            mode: Mode::Lease,
            zc: true,
        },
        Row::Ringleader {
            mode: Mode::Splice,
            zc: false,
        },
        Row::Ringleader {
            mode: Mode::Copy,
            zc: false,
        },
        Row::Socat,
        Row::Haproxy { splice: false },
        Row::Haproxy { splice: true },
        Row::Tokio,
        Row::Monoio { splice: false },
        Row::Monoio { splice: true },
        Row::FanRingleader(Mode::Lease),
        Row::FanRingleader(Mode::Splice),
        Row::FanRingleader(Mode::Copy),
        Row::FanTokio,
    ];

    /// The name on the command line and in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Row::Direct => "direct",
            Row::Ringleader { mode, zc } => match (mode, zc) {
                (Mode::Lease, false) => "rl-lease",
                (Mode::Lease, true) => "rl-lease-zc",
                (Mode::Splice, false) => "rl-splice",
                (Mode::Splice, true) => "rl-splice-zc",
                (Mode::Copy, false) => "rl-copy",
                (Mode::Copy, true) => "rl-copy-zc",
            },
            Row::Socat => "socat",
            Row::Haproxy { splice: false } => "haproxy",
            Row::Haproxy { splice: true } => "haproxy-splice",
            Row::Tokio => "tokio",
            Row::Monoio { splice: false } => "monoio",
            Row::Monoio { splice: true } => "monoio-splice",
            Row::FanRingleader(Mode::Lease) => "fan-rl-lease",
            Row::FanRingleader(Mode::Splice) => "fan-rl-splice",
            Row::FanRingleader(Mode::Copy) => "fan-rl-copy",
            Row::FanTokio => "fan-tokio",
        }
    }

    /// The row named `name`.
    pub fn from_name(name: &str) -> Option<Row> {
        Row::ALL.into_iter().find(|r| r.name() == name)
    }

    /// A row of the fan-out table.
    pub fn fanout(self) -> bool {
        matches!(self, Row::FanRingleader(_) | Row::FanTokio)
    }

    /// Runs ringleader's `examples/proxy`.
    pub fn ringleader(self) -> bool {
        matches!(self, Row::Ringleader { .. } | Row::FanRingleader(_))
    }

    /// One of the peers the single-stream goal is measured against.
    pub fn peer(self) -> bool {
        matches!(
            self,
            Row::Socat | Row::Haproxy { .. } | Row::Tokio | Row::Monoio { .. }
        )
    }

    /// The external program it needs, if any.
    pub fn tool(self) -> Option<&'static str> {
        match self {
            Row::Socat => Some("socat"),
            Row::Haproxy { .. } => Some("haproxy"),
            _ => None,
        }
    }
}

/// What starting a proxy needs.
#[derive(Debug)]
pub struct Setup {
    /// The proxy's CPU.
    pub cpu: usize,
    /// The bench binary, re-run with `--serve-*` for the peers written here.
    pub bench_exe: PathBuf,
    /// ringleader's `examples/proxy`, or why there is none.
    pub ringleader: Result<PathBuf, String>,
    /// Extra arguments for ringleader's proxy.
    pub ringleader_args: Vec<String>,
    /// The mirror sinks of the fan-out rows: where they listen, and their PIDs.
    pub mirrors: Vec<SocketAddr>,
    pub sinks: Vec<u32>,
    /// Where haproxy's configuration files go.
    pub tmp: PathBuf,
    /// haproxy's `maxconn` (global and frontend): above the most connections a run opens.
    pub haproxy_maxconn: usize,
}

/// Start `row`'s proxy in front of `upstream`; `None` for [`Row::Direct`].
pub fn start(
    row: Row,
    s: &Setup,
    upstream: SocketAddr,
) -> Result<Option<(Proc, SocketAddr)>, String> {
    let up = upstream.to_string();
    let announced = |cmd: Command| -> Result<Option<(Proc, SocketAddr)>, String> {
        let mut p = Proc::spawn(cmd, s.cpu, row.name()).map_err(|e| e.to_string())?;
        let addr = p.wait_announced(READY)?;
        Ok(Some((p, addr)))
    };
    // ringleader's proxy gets a port of ours, in case it prints the address it was given.
    let announced_port = |cmd: Command, port: u16| {
        announced(cmd).map(|p| {
            p.map(|(p, addr)| {
                let port = if addr.port() == 0 { port } else { addr.port() };
                (p, SocketAddr::from(([127, 0, 0, 1], port)))
            })
        })
    };
    let listening = |cmd: Command, port: u16| -> Result<Option<(Proc, SocketAddr)>, String> {
        let mut p = Proc::spawn(cmd, s.cpu, row.name()).map_err(|e| e.to_string())?;
        p.wait_listening(port, READY)?;
        Ok(Some((p, SocketAddr::from(([127, 0, 0, 1], port)))))
    };
    let peer = |flag: &str, extra: Option<String>| {
        let mut cmd = Command::new(&s.bench_exe);
        cmd.args([flag, "127.0.0.1:0", &up]).args(extra);
        announced(cmd)
    };
    match row {
        Row::Direct => Ok(None),
        Row::Ringleader { mode, zc } => {
            let port = free_port()?;
            let mut cmd = ringleader(s, mode, port, &up, &[])?;
            if zc {
                cmd.arg("--zc");
            }
            announced_port(cmd, port)
        }
        Row::FanRingleader(mode) => {
            let port = free_port()?;
            announced_port(ringleader(s, mode, port, &up, &s.mirrors)?, port)
        }
        Row::Socat => {
            let port = free_port()?;
            let mut cmd = Command::new("socat");
            cmd.arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
                .arg(format!("TCP:{up}"));
            listening(cmd, port)
        }
        Row::Haproxy { splice } => {
            let port = free_port()?;
            let cfg = s.tmp.join(format!("haproxy-{port}.cfg"));
            std::fs::write(
                &cfg,
                haproxy_config(port, upstream, splice, s.haproxy_maxconn),
            )
            .map_err(|e| format!("writing {}: {e}", cfg.display()))?;
            let mut cmd = Command::new("haproxy");
            cmd.arg("-db").arg("-f").arg(&cfg);
            listening(cmd, port)
        }
        Row::Tokio => peer("--serve-tokio", None),
        Row::Monoio { splice: false } => peer("--serve-monoio", None),
        Row::Monoio { splice: true } => peer("--serve-monoio-splice", None),
        Row::FanTokio => {
            let list: Vec<String> = s.mirrors.iter().map(ToString::to_string).collect();
            peer("--serve-tokio-fanout", Some(list.join(",")))
        }
    }
}

fn ringleader(
    s: &Setup,
    mode: Mode,
    port: u16,
    up: &str,
    mirrors: &[SocketAddr],
) -> Result<Command, String> {
    let bin: &Path = s.ringleader.as_ref().map_err(Clone::clone)?;
    let mut cmd = Command::new(bin);
    cmd.arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .args(["--upstream", up])
        .args(["--mode", mode.flag(), "--cores", "1"]);
    for m in mirrors {
        cmd.arg("--mirror").arg(m.to_string());
    }
    cmd.args(&s.ringleader_args);
    Ok(cmd)
}

/// A minimal haproxy configuration: tcp mode, one thread, one frontend, one backend.
fn haproxy_config(port: u16, upstream: SocketAddr, splice: bool, maxconn: usize) -> String {
    let splice = if splice {
        "    option splice-auto\n"
    } else {
        ""
    };
    format!(
        "global\n    nbthread 1\n    maxconn {maxconn}\n\n\
         defaults\n    mode tcp\n{splice}    timeout connect 5s\n    timeout client 60s\n    \
         timeout server 60s\n\n\
         frontend proxy\n    bind 127.0.0.1:{port}\n    maxconn {maxconn}\n    \
         default_backend upstream\n\n\
         backend upstream\n    server up {upstream}\n"
    )
}
