//! The NBD clients of the soak, each a loop on its own thread until the board stops:
//!
//! | client | what it does | a problem is |
//! |---|---|---|
//! | [`fio`] | `fio --ioengine=nbd --verify=crc32c` runs, cycling through four shapes (4 KiB random, 128 KiB sequential, 512 B-64 KiB random, 1 MiB random), each a new connection | a verify failure (verification error); any other failure, or a run not done in 180 s |
//! | [`qemu_io`] | `qemu-io` runs of 3 `write -P` + `read -P` pairs at random offsets and lengths, each first re-reading the previous run's last write (so data must survive across connections) | a pattern mismatch (verification error); any other failure, or a run not done in 60 s |
//! | [`idle_pool`] | N connections after `NBD_OPT_GO` that mostly sit idle; a few a second read and check 4 KiB; one is replaced every 5 s | wrong data; a connection the server dropped (its idle timeout is off) |
//! | [`slowloris`] | alternately: drip the handshake one byte a second (26 s in all), or connect and send nothing | the server answers the dripped `GO`, or holds the connection past its handshake timeout + 20 s |
//! | [`resetter`] | every 200 ms: a connection that queues writes and big reads (or half a write) and closes with RST without reading the replies | only a failed connect or handshake |
//! | [`probe`] | one 4 KiB read every 100 ms on its own connection, timed and checked | wrong data; a dropped connection or a read not answered in 30 s |
//!
//! Region of each writer: [`layout`](super::layout).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::layout::*;
use super::nbd_client::{self, CMD_READ, CMD_WRITE, Nbd};
use super::procs::{ToolEnd, describe, run_tool};
use super::{Board, Kind, Latency, Rng, Who, probe_byte};

/// Socket time-out of the soak's own NBD connections.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// What every NBD client needs.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub addr: SocketAddr,
    /// The soak's temporary directory (tool logs, fio's working directory).
    pub dir: PathBuf,
    pub board: Arc<Board>,
    /// The server's `--handshake-timeout`.
    pub handshake_timeout: Duration,
}

impl Ctx {
    fn problem(&self, kind: Kind, msg: impl AsRef<str>) {
        self.board.problem(Who::Nbd, kind, msg);
    }

    fn count(&self, what: &'static str, n: u64) {
        self.board.tally(Who::Nbd).count(what, n);
    }

    fn uri(&self) -> String {
        format!("nbd://{}", self.addr)
    }
}

/// Check `buf`, read from the probe region at `off`; describes the first wrong byte.
fn check_probe(off: u64, buf: &[u8]) -> Result<(), String> {
    match (0..buf.len()).find(|&i| buf[i] != probe_byte(off + i as u64)) {
        None => Ok(()),
        Some(i) => Err(format!(
            "{} bytes at {off}: byte {} is {:#04x}, wrote {:#04x}",
            buf.len(),
            off + i as u64,
            buf[i],
            probe_byte(off + i as u64)
        )),
    }
}

/// Write the probe region and read it back (before any load starts).
pub fn prefill(addr: SocketAddr) -> Result<(), String> {
    let mut c = Nbd::connect(addr, IO_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    if c.size() < EXPORT_SIZE {
        return Err(format!("export is {} bytes, want {EXPORT_SIZE}", c.size()));
    }
    const CHUNK: u64 = 64 << 10;
    let mut buf = vec![0u8; CHUNK as usize];
    for off in (PROBE_BASE..PROBE_BASE + PROBE_LEN).step_by(CHUNK as usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = probe_byte(off + i as u64);
        }
        c.write(off, &buf)
            .map_err(|e| format!("write at {off}: {e}"))?;
    }
    for off in (PROBE_BASE..PROBE_BASE + PROBE_LEN).step_by(CHUNK as usize) {
        c.read(off, &mut buf)
            .map_err(|e| format!("read at {off}: {e}"))?;
        check_probe(off, &buf)?;
    }
    c.disconnect();
    Ok(())
}

/// fio's run shapes: `--rw`, block size option, `--iodepth`, `--size`.
const FIO_SHAPES: [(&str, &str, u32, u64); 4] = [
    ("randwrite", "--bs=4k", 16, 32 << 20),
    ("write", "--bs=128k", 4, 128 << 20),
    ("randwrite", "--bsrange=512-64k", 32, 32 << 20),
    ("randwrite", "--bs=1m", 8, 64 << 20),
];

/// fio worker `k` (`k < MAX_FIO`).
pub fn fio(ctx: Ctx, k: usize) {
    let cwd = ctx.dir.join(format!("fio-{k}"));
    if let Err(e) = std::fs::create_dir_all(&cwd) {
        ctx.problem(
            Kind::Error,
            format!("fio {k}: creating {}: {e}", cwd.display()),
        );
        return;
    }
    let log = ctx.dir.join(format!("fio-{k}.log"));
    let mut rng = Rng::new(0xf10 + k as u64);
    let mut run = 0usize;
    while !ctx.board.stopped() {
        let (rw, bs, depth, size) = FIO_SHAPES[run % FIO_SHAPES.len()];
        let slack = FIO_REGION - size;
        let offset = k as u64 * FIO_REGION + rng.below(slack / (1 << 20) + 1) * (1 << 20);
        let mut cmd = Command::new("fio");
        cmd.current_dir(&cwd).args([
            &format!("--name=soak-{k}-{run}"),
            "--ioengine=nbd",
            &format!("--uri={}", ctx.uri()),
            &format!("--rw={rw}"),
            bs,
            &format!("--iodepth={depth}"),
            &format!("--size={size}"),
            &format!("--offset={offset}"),
            "--verify=crc32c",
            "--verify_fatal=1",
            "--verify_state_save=0",
            "--randrepeat=0",
        ]);
        let what = format!("{cmd:?}").replace('"', "");
        match run_tool(&mut cmd, &log, Duration::from_secs(180), &ctx.board) {
            Ok(ToolEnd::Exited(s)) if s.success() => {
                ctx.count("fio runs", 1);
                ctx.count("fio MiB verified", size >> 20);
            }
            Ok(ToolEnd::Exited(s)) => {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let verify = text.contains("verify") || text.contains("crc32c");
                let excerpt: Vec<&str> = text
                    .lines()
                    .filter(|l| {
                        let l = l.to_ascii_lowercase();
                        l.contains("verify") || l.contains("error") || l.contains("fail")
                    })
                    .take(6)
                    .collect();
                let kind = if verify { Kind::Verify } else { Kind::Error };
                ctx.problem(
                    kind,
                    format!("`{what}` failed ({}): {}", describe(s), excerpt.join(" | ")),
                );
            }
            Ok(ToolEnd::TimedOut) => {
                ctx.problem(
                    Kind::Error,
                    format!("`{what}` not done after 180 s (killed)"),
                );
            }
            Ok(ToolEnd::Stopped) => break,
            Err(e) => {
                ctx.problem(Kind::Error, format!("running fio: {e}"));
                ctx.board.sleep(Duration::from_secs(5));
            }
        }
        run += 1;
    }
}

/// qemu-io worker `k` (`k < MAX_QEMU_IO`).
pub fn qemu_io(ctx: Ctx, k: usize) {
    let base = QEMU_IO_BASE + k as u64 * QEMU_IO_REGION;
    let log = ctx.dir.join(format!("qemu-io-{k}.log"));
    let mut rng = Rng::new(0x9e0 + k as u64);
    // The last write of the previous run: (offset, length, pattern).
    let mut last: Option<(u64, u64, u8)> = None;
    while !ctx.board.stopped() {
        let mut cmds = Vec::new();
        if let Some((off, len, pat)) = last {
            cmds.push(format!("read -P {pat:#04x} {off} {len}"));
        }
        for _ in 0..3 {
            let len = (rng.below(2048) + 1) * 512;
            let off = base + rng.below((QEMU_IO_REGION - len) / 512) * 512;
            let pat = rng.below(256) as u8;
            cmds.push(format!("write -P {pat:#04x} {off} {len}"));
            cmds.push(format!("read -P {pat:#04x} {off} {len}"));
            last = Some((off, len, pat));
        }
        let mut cmd = Command::new("qemu-io");
        cmd.args(["-f", "raw", &ctx.uri()]);
        for c in &cmds {
            cmd.args(["-c", c]);
        }
        let what = format!("{cmd:?}").replace('"', "");
        match run_tool(&mut cmd, &log, Duration::from_secs(60), &ctx.board) {
            Ok(ToolEnd::Exited(s)) => {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let bad: Vec<&str> = text
                    .lines()
                    .filter(|l| l.contains("verification failed") || l.contains("failed"))
                    .take(4)
                    .collect();
                if text.contains("Pattern verification failed") {
                    ctx.problem(Kind::Verify, format!("`{what}`: {}", bad.join(" | ")));
                } else if !s.success() || !bad.is_empty() {
                    let tail: Vec<&str> = text.lines().rev().take(3).collect();
                    ctx.problem(
                        Kind::Error,
                        format!("`{what}` failed ({}): {}", describe(s), tail.join(" | ")),
                    );
                    // Its writes may not have happened: do not re-read them.
                    last = None;
                } else {
                    ctx.count("qemu-io runs", 1);
                    ctx.count("qemu-io reads checked", (cmds.len() as u64).div_ceil(2));
                }
            }
            Ok(ToolEnd::TimedOut) => {
                ctx.problem(
                    Kind::Error,
                    format!("`{what}` not done after 60 s (killed)"),
                );
                last = None;
            }
            Ok(ToolEnd::Stopped) => break,
            Err(e) => {
                ctx.problem(Kind::Error, format!("running qemu-io: {e}"));
                ctx.board.sleep(Duration::from_secs(5));
            }
        }
        // A process start per run is most of the cost: leave the CPUs some room.
        ctx.board.sleep(Duration::from_millis(100));
    }
}

/// Keep `n` negotiated connections open; check a few a second; replace one every 5 s.
pub fn idle_pool(ctx: Ctx, n: usize) {
    let mut pool: Vec<(Nbd, Instant)> = Vec::new();
    let mut next = 0usize;
    let mut last_replace = Instant::now();
    let mut buf = vec![0u8; 4096];
    let mut tick = 0u64;
    while !ctx.board.stopped() {
        while pool.len() < n && !ctx.board.stopped() {
            match Nbd::connect(ctx.addr, IO_TIMEOUT) {
                Ok(c) => {
                    pool.push((c, Instant::now()));
                    ctx.count("idle connections opened", 1);
                }
                Err(e) => {
                    ctx.problem(Kind::Error, format!("idle pool: connect: {e}"));
                    ctx.board.sleep(Duration::from_secs(1));
                    break;
                }
            }
        }
        for _ in 0..4.min(pool.len()) {
            next = (next + 1) % pool.len();
            tick += 1;
            let off = PROBE_BASE + (tick * 4096 * 7) % PROBE_LEN;
            let (c, opened) = &mut pool[next];
            match c.read(off, &mut buf) {
                Ok(()) => {
                    if let Err(e) = check_probe(off, &buf) {
                        ctx.problem(Kind::Verify, format!("idle connection read: {e}"));
                    }
                    ctx.count("idle checks", 1);
                }
                Err(e) => {
                    let age = opened.elapsed().as_secs();
                    ctx.problem(
                        Kind::Error,
                        format!("idle connection open {age} s: read at {off} failed: {e}"),
                    );
                    pool.swap_remove(next);
                    break;
                }
            }
        }
        if last_replace.elapsed() >= Duration::from_secs(5) && !pool.is_empty() {
            last_replace = Instant::now();
            let oldest = (0..pool.len()).min_by_key(|&i| pool[i].1).unwrap();
            pool.swap_remove(oldest).0.disconnect();
            ctx.count("idle replaced", 1);
        }
        ctx.board.sleep(Duration::from_secs(1));
    }
    for (c, _) in pool {
        c.disconnect();
    }
}

/// One slowloris client, forever: alternately dripping the handshake and sending nothing.
pub fn slowloris(ctx: Ctx, k: usize) {
    let limit = ctx.handshake_timeout + Duration::from_secs(20);
    let go = nbd_client::go_bytes();
    let mut round = k;
    while !ctx.board.stopped() {
        let drip = round.is_multiple_of(2);
        round += 1;
        let mut s = match TcpStream::connect_timeout(&ctx.addr, Duration::from_secs(10)) {
            Ok(s) => s,
            Err(e) => {
                ctx.problem(Kind::Error, format!("slowloris: connect: {e}"));
                ctx.board.sleep(Duration::from_secs(1));
                continue;
            }
        };
        let t0 = Instant::now();
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
        let mut received = 0usize;
        let mut sent = 0usize;
        let mut buf = [0u8; 512];
        let closed = loop {
            if ctx.board.stopped() {
                break false;
            }
            // The greeting (18 bytes) first, then one byte of the handshake a second.
            if drip && received >= 18 && sent < go.len() {
                if s.write_all(&go[sent..sent + 1]).is_err() {
                    break true;
                }
                sent += 1;
            }
            match s.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => received += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break true,
            }
            if drip && sent == go.len() && received > 18 {
                ctx.problem(
                    Kind::Error,
                    format!(
                        "slowloris: a handshake dripped over {:.0} s was answered \
                         (--handshake-timeout {:?} not enforced)",
                        t0.elapsed().as_secs_f64(),
                        ctx.handshake_timeout
                    ),
                );
                break false;
            }
            if t0.elapsed() > limit {
                let how = if drip { "dripping" } else { "silent" };
                ctx.problem(
                    Kind::Error,
                    format!(
                        "slowloris ({how}): still open after {:.0} s (--handshake-timeout {:?})",
                        t0.elapsed().as_secs_f64(),
                        ctx.handshake_timeout
                    ),
                );
                break false;
            }
        };
        if closed {
            let tally = ctx.board.tally(Who::Nbd);
            tally.count("slowloris cut", 1);
            tally.at_least("slowloris longest hold ms", t0.elapsed().as_millis() as u64);
        }
    }
}

/// Connections that queue work and close with RST without reading the replies.
pub fn resetter(ctx: Ctx, k: usize) {
    let mut rng = Rng::new(0x4e5 + k as u64);
    let payload = vec![0x5au8; 1 << 20];
    let mut round = 0u64;
    while ctx.board.sleep(Duration::from_millis(200)) {
        let mut c = match Nbd::connect(ctx.addr, Duration::from_secs(10)) {
            Ok(c) => c,
            Err(e) => {
                ctx.problem(Kind::Error, format!("resetter: connect: {e}"));
                ctx.board.sleep(Duration::from_secs(1));
                continue;
            }
        };
        let mut off = || RESET_BASE + rng.below((RESET_LEN - (4 << 20)) / 4096) * 4096;
        let sent: std::io::Result<()> = (|| {
            match round % 3 {
                // Writes and reads in flight.
                0 => {
                    for _ in 0..8 {
                        c.send(CMD_WRITE, off(), 256 << 10, &payload[..256 << 10])?;
                        c.send(CMD_READ, off(), 1 << 20, &[])?;
                    }
                    let mut part = [0u8; 100];
                    c.stream().read_exact(&mut part)?;
                }
                // Half a write: the header promises 1 MiB, 100 KiB follow.
                1 => {
                    c.send(CMD_WRITE, off(), 1 << 20, &payload[..100 << 10])?;
                }
                // Big reads queued, one reply half read.
                _ => {
                    for _ in 0..16 {
                        c.send(CMD_READ, off(), 4 << 20, &[])?;
                    }
                    let mut part = [0u8; 1024];
                    c.stream().read_exact(&mut part)?;
                }
            }
            c.stream().flush()
        })();
        if sent.is_err() {
            ctx.count("resets (server closed first)", 1);
        }
        round += 1;
        nbd_client::reset(c.into_stream());
        ctx.count("resets", 1);
    }
}

/// One 4 KiB read every 100 ms on its own connection, into `lat`.
pub fn probe(ctx: Ctx, lat: Arc<Latency>) {
    let mut conn: Option<Nbd> = None;
    let mut buf = vec![0u8; 4096];
    let mut i = 0u64;
    let mut next = Instant::now();
    while !ctx.board.stopped() {
        next += Duration::from_millis(100);
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
        let c = match &mut conn {
            Some(c) => c,
            None => match Nbd::connect(ctx.addr, IO_TIMEOUT) {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    ctx.problem(Kind::Error, format!("probe: connect: {e}"));
                    ctx.board.sleep(Duration::from_secs(1));
                    continue;
                }
            },
        };
        i += 1;
        let off = PROBE_BASE + (i * 4096) % PROBE_LEN;
        let t0 = Instant::now();
        match c.read(off, &mut buf) {
            Ok(()) => {
                lat.record(t0.elapsed());
                if let Err(e) = check_probe(off, &buf) {
                    ctx.problem(Kind::Verify, format!("probe read: {e}"));
                }
            }
            Err(e) => {
                ctx.problem(
                    Kind::Error,
                    format!(
                        "probe: read at {off} failed after {:.1} s: {e}",
                        t0.elapsed().as_secs_f64()
                    ),
                );
                conn = None;
            }
        }
    }
    if let Some(c) = conn {
        c.disconnect();
    }
}
