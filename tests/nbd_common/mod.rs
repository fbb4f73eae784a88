//! Helpers for the NBD server tests: start `examples/nbd_server` as a child process, find
//! the external clients (qemu-img, qemu-io, nbdinfo), make temporary files, and a raw
//! protocol client written from the specification for the bad-input tests.
#![allow(dead_code)]

#[path = "../support/example_bin.rs"]
mod example_bin;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
pub const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
pub const OPT_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
pub const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;

pub const OPT_EXPORT_NAME: u32 = 1;
pub const OPT_ABORT: u32 = 2;
pub const OPT_LIST: u32 = 3;
pub const OPT_INFO: u32 = 6;
pub const OPT_GO: u32 = 7;
pub const OPT_STRUCTURED_REPLY: u32 = 8;
pub const REP_ACK: u32 = 1;
pub const REP_SERVER: u32 = 2;
pub const REP_INFO: u32 = 3;
pub const REP_ERR_UNSUP: u32 = (1 << 31) + 1;
pub const REP_ERR_INVALID: u32 = (1 << 31) + 3;
pub const REP_ERR_UNKNOWN: u32 = (1 << 31) + 6;
pub const REP_ERR_TOO_BIG: u32 = (1 << 31) + 9;

pub const CMD_READ: u16 = 0;
pub const CMD_WRITE: u16 = 1;
pub const CMD_DISC: u16 = 2;
pub const CMD_FLUSH: u16 = 3;
pub const CMD_TRIM: u16 = 4;
pub const CMD_WRITE_ZEROES: u16 = 6;
pub const CMD_FLAG_FUA: u16 = 1;

pub const EPERM: u32 = 1;
pub const EINVAL: u32 = 22;
pub const ENOSPC: u32 = 28;

/// Guards against a hung server: no test waits longer than this for one reply.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// The example's binary (see `support/example_bin.rs`).
pub fn server_bin() -> PathBuf {
    example_bin::example_bin("nbd_server", &[])
}

/// Whether `tool` is on `PATH`; if not, print why the calling test is skipped.
pub fn have(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()));
    if !found {
        eprintln!(
            "SKIP: `{tool}` is not installed (.ci/run installs qemu-utils and libnbd-bin); \
             this test needs it"
        );
    }
    found
}

/// A unique path under the system temp dir; the file is removed when the guard drops.
pub struct TempPath(pub PathBuf);

impl TempPath {
    pub fn new(tag: &str) -> TempPath {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        TempPath(std::env::temp_dir().join(format!("rl-nbd-test-{}-{tag}-{n}", std::process::id())))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A sparse file of `size` bytes at a new temp path.
pub fn sparse_file(tag: &str, size: u64) -> TempPath {
    let t = TempPath::new(tag);
    let f = std::fs::File::create(t.path()).expect("create temp image");
    f.set_len(size).expect("size temp image");
    t
}

/// Deterministic pseudo-random bytes (xorshift), so failures are reproducible.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A running `nbd_server`, killed (by PID) when dropped.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Server {
    /// Start the server with `args` (plus `--listen 127.0.0.1:0`) and wait for its first
    /// stdout line, which names the bound address.
    pub fn start(args: &[&str]) -> Server {
        let mut child = Command::new(server_bin())
            .args(["--listen", "127.0.0.1:0", "--cores", "2"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn nbd_server");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the server's first line");
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("unexpected first line from nbd_server: {line:?}")
            });
        Server { child, addr }
    }

    /// `nbd://127.0.0.1:PORT`.
    pub fn uri(&self) -> String {
        format!("nbd://{}", self.addr)
    }

    /// Stop with SIGTERM and wait (a clean stop that removes a temporary image).
    pub fn stop(mut self) {
        signal(&self.child, libc::SIGTERM);
        let _ = self.child.wait();
    }

    /// SIGKILL and wait: no chance to flush or clean anything up.
    pub fn kill_hard(mut self) {
        signal(&self.child, libc::SIGKILL);
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            signal(&self.child, libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's PID, which we have not reaped yet.
    unsafe { libc::kill(child.id() as libc::pid_t, sig) };
}

/// Run a command and return its output, panicking with its stderr if it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Run `qemu-io` commands against `uri` and check none reported a failure.
pub fn qemu_io(uri: &str, cmds: &[String]) -> String {
    let mut cmd = Command::new("qemu-io");
    cmd.args(["-f", "raw"]);
    for c in cmds {
        cmd.args(["-c", c]);
    }
    cmd.arg(uri);
    let out = run_ok(&mut cmd);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !text.contains("failed") && !text.contains("error"),
        "qemu-io reported a failure:\n{text}"
    );
    text
}

/// A client speaking the protocol by hand, for inputs real clients never send.
pub struct Raw {
    pub s: TcpStream,
}

/// A reply as the raw client sees it.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Simple {
        error: u32,
        handle: u64,
    },
    Chunk {
        flags: u16,
        kind: u16,
        handle: u64,
        payload: Vec<u8>,
    },
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_nodelay(true).unwrap();
        Raw { s }
    }

    /// Read the server's greeting and send the client flags (fixed newstyle, no zeroes).
    pub fn greet(addr: SocketAddr) -> Raw {
        let mut r = Raw::connect(addr);
        let hello = r.read_n(18);
        assert_eq!(be64(&hello[0..8]), NBDMAGIC);
        assert_eq!(be64(&hello[8..16]), IHAVEOPT);
        assert_eq!(be16(&hello[16..18]) & 1, 1, "fixed newstyle offered");
        r.send(&3u32.to_be_bytes());
        r
    }

    /// Greet, optionally negotiate structured replies, then `NBD_OPT_GO` on the default
    /// export: returns (size, transmission flags).
    pub fn ready(addr: SocketAddr, structured: bool) -> (Raw, u64, u16) {
        let mut r = Raw::greet(addr);
        if structured {
            r.option(OPT_STRUCTURED_REPLY, &[]);
            assert_eq!(r.option_reply().1, REP_ACK);
        }
        let (size, flags) = r.go();
        (r, size, flags)
    }

    /// `NBD_OPT_GO` for the default export; returns (size, flags) from `NBD_INFO_EXPORT`.
    pub fn go(&mut self) -> (u64, u16) {
        self.option(OPT_GO, &[0, 0, 0, 0, 0, 0]);
        let mut export = None;
        loop {
            let (opt, kind, data) = self.option_reply();
            assert_eq!(opt, OPT_GO);
            match kind {
                REP_INFO if be16(&data[0..2]) == 0 => {
                    export = Some((be64(&data[2..10]), be16(&data[10..12])));
                }
                REP_INFO => {}
                REP_ACK => return export.expect("NBD_INFO_EXPORT before ACK"),
                other => panic!("GO answered {other:#x}"),
            }
        }
    }

    pub fn send(&mut self, b: &[u8]) {
        self.s.write_all(b).expect("send");
    }

    pub fn read_n(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        self.s.read_exact(&mut v).expect("receive");
        v
    }

    pub fn option(&mut self, opt: u32, data: &[u8]) {
        self.option_header(opt, data.len() as u32);
        self.send(data);
    }

    pub fn option_header(&mut self, opt: u32, len: u32) {
        let mut b = Vec::new();
        b.extend_from_slice(&IHAVEOPT.to_be_bytes());
        b.extend_from_slice(&opt.to_be_bytes());
        b.extend_from_slice(&len.to_be_bytes());
        self.send(&b);
    }

    /// (option, reply type, data).
    pub fn option_reply(&mut self) -> (u32, u32, Vec<u8>) {
        let h = self.read_n(20);
        assert_eq!(be64(&h[0..8]), OPT_REPLY_MAGIC);
        let len = be32(&h[16..20]) as usize;
        (be32(&h[8..12]), be32(&h[12..16]), self.read_n(len))
    }

    pub fn request(&mut self, flags: u16, kind: u16, handle: u64, offset: u64, len: u32) {
        let mut b = Vec::with_capacity(28);
        b.extend_from_slice(&REQUEST_MAGIC.to_be_bytes());
        b.extend_from_slice(&flags.to_be_bytes());
        b.extend_from_slice(&kind.to_be_bytes());
        b.extend_from_slice(&handle.to_be_bytes());
        b.extend_from_slice(&offset.to_be_bytes());
        b.extend_from_slice(&len.to_be_bytes());
        self.send(&b);
    }

    /// One reply (simple, or one structured chunk).
    pub fn reply(&mut self) -> Reply {
        let h = self.read_n(4);
        match be32(&h) {
            SIMPLE_REPLY_MAGIC => {
                let r = self.read_n(12);
                Reply::Simple {
                    error: be32(&r[0..4]),
                    handle: be64(&r[4..12]),
                }
            }
            STRUCTURED_REPLY_MAGIC => {
                let r = self.read_n(16);
                let len = be32(&r[12..16]) as usize;
                Reply::Chunk {
                    flags: be16(&r[0..2]),
                    kind: be16(&r[2..4]),
                    handle: be64(&r[4..12]),
                    payload: self.read_n(len),
                }
            }
            m => panic!("bad reply magic {m:#x}"),
        }
    }

    /// A simple reply's (error, handle).
    pub fn simple(&mut self) -> (u32, u64) {
        match self.reply() {
            Reply::Simple { error, handle } => (error, handle),
            r => panic!("expected a simple reply, got {r:?}"),
        }
    }

    /// `WRITE` with its payload; returns the reply's error.
    pub fn write(&mut self, handle: u64, offset: u64, data: &[u8], flags: u16) -> u32 {
        self.request(flags, CMD_WRITE, handle, offset, data.len() as u32);
        self.send(data);
        let (err, h) = self.simple();
        assert_eq!(h, handle);
        err
    }

    /// `READ` without structured replies: the data, or the error.
    pub fn read(&mut self, handle: u64, offset: u64, len: u32) -> Result<Vec<u8>, u32> {
        self.request(0, CMD_READ, handle, offset, len);
        let (err, h) = self.simple();
        assert_eq!(h, handle);
        if err != 0 {
            return Err(err);
        }
        Ok(self.read_n(len as usize))
    }

    /// `NBD_CMD_DISC` and close.
    pub fn disconnect(mut self) {
        self.request(0, CMD_DISC, 0, 0, 0);
        let _ = self.s.shutdown(Shutdown::Write);
        self.expect_closed();
    }

    /// The server closes the connection: end of stream (or a reset) comes, not data.
    pub fn expect_closed(&mut self) {
        let mut b = [0u8; 64];
        match self.s.read(&mut b) {
            Ok(0) => {}
            Ok(n) => panic!("expected the server to close, got {n} more bytes"),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("expected the server to close, got {e}"),
        }
    }
}

pub fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

pub fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().unwrap())
}

pub fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().unwrap())
}

/// The server still serves: a fresh client can write and read back.
pub fn still_serves(addr: SocketAddr, offset: u64) {
    let (mut c, _, _) = Raw::ready(addr, false);
    let data = pseudo_random(4096, offset + 1);
    assert_eq!(c.write(9, offset, &data, 0), 0);
    assert_eq!(c.read(10, offset, 4096).unwrap(), data);
    c.disconnect();
}

/// Like [`have`], but a missing tool fails the test under CI (the `CI` environment variable
/// set, and not `0` or `false`): CI installs every tool the tests use (`.ci/run`), so a skip
/// there would hide a test that never ran. Elsewhere it prints why the test is skipped.
pub fn need(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()));
    if found {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    assert!(
        !ci,
        "`{tool}` is not installed, but CI is set: .ci/run installs it, so this test must run"
    );
    eprintln!("SKIP: `{tool}` is not installed (.ci/run installs it); this test needs it");
    false
}

impl TempPath {
    /// A unique path under cargo's `target/tmp` (`CARGO_TARGET_TMPDIR`): on the disk the
    /// build uses, where the system temp dir may be a tmpfs (no dirty page accounting, no
    /// writeback). Removed when the guard drops.
    pub fn on_disk(tag: &str) -> TempPath {
        let name = TempPath::new(tag).0.file_name().unwrap().to_owned();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(dir).expect("create target/tmp");
        TempPath(dir.join(name))
    }
}

/// A sparse file of `size` bytes at a new [`TempPath::on_disk`] path.
pub fn disk_file(tag: &str, size: u64) -> TempPath {
    let t = TempPath::on_disk(tag);
    let f = std::fs::File::create(t.path()).expect("create image on disk");
    f.set_len(size).expect("size image on disk");
    t
}
