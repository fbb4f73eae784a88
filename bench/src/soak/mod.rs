//! The soak (`src/bin/soak.rs`): ringleader's example servers under a long mix of honest,
//! idle, slow, rude and bursty clients, watched for leaks, hangs and wrong data.
//!
//! # Model
//!
//! Three server processes run for the whole soak: `examples/nbd_server` on an image in the
//! soak's temporary directory, and `examples/proxy` relaying to an echo server, the
//! **upstream**: the bench's own ([`upstream`], tokio) or, on request, `examples/echo`.
//! Load runs on threads of the bench process (and in the `fio` and `qemu-io` processes they
//! start), all at once, until [`Board::stop`] is set:
//!
//! - [`nbd_load`]: `fio` with its nbd engine and `--verify=crc32c`, `qemu-io` write and
//!   read-back loops with pattern checks, a pool of idle connections, slowloris handshakes,
//!   clients that reset the connection mid-request, and a latency probe;
//! - [`net_load`]: bursts of short connections through the proxy, and latency probes to the
//!   proxy and to the upstream.
//!
//! Every client reports to the [`Board`]: wrong data is a **verification error**, anything
//! else that should not happen (a connection the server dropped, an NBD error, a tool that
//! failed or hung, a slowloris the server served) an **error**; both fail the soak, and both
//! are printed the moment they happen. Expected events (a slowloris cut off, a reset) are
//! counted. [`servers`] starts the servers, [`procs`] runs and samples processes
//! (`/proc/PID`), [`verdict`] decides whether a resource grew, [`report`] prints the 10 s
//! lines and the summary.
//!
//! # Invariants
//!
//! - The writers never share bytes of the export: each has its own [`layout`] region, so a
//!   read-back that differs from what its writer wrote is the server's fault.
//! - Every process the soak starts is killed by its PID (never by name) and reaped, and asks
//!   for `SIGKILL` if the bench dies first (`PR_SET_PDEATHSIG`); every file it writes is
//!   under one temporary directory, removed at the end.
//! - Every blocking socket call has a timeout, so a stop is seen within seconds.

pub mod nbd_client;
pub mod nbd_load;
pub mod net_load;
pub mod procs;
pub mod report;
pub mod servers;
pub mod upstream;
pub mod verdict;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What one soak does (`src/bin/soak.rs` parses it from the command line; its `--help`
/// says what each field means).
#[derive(Debug)]
pub struct Settings {
    pub duration: Duration,
    pub fio: usize,
    pub qemu_io: usize,
    pub idle: usize,
    pub slowloris: usize,
    pub resetters: usize,
    pub bursts: Vec<usize>,
    pub burst_period: Duration,
    pub proxy_mode: String,
    /// examples/echo as the upstream instead of the bench's tokio echo.
    pub ringleader_upstream: bool,
    pub nbd_args: Vec<String>,
    pub proxy_args: Vec<String>,
    pub bin_dir: PathBuf,
    pub keep_temp: bool,
}

/// Where each NBD client works in the export (bytes). The export is [`layout::EXPORT_SIZE`].
pub mod layout {
    /// Size of the image the soak exports.
    pub const EXPORT_SIZE: u64 = 1 << 30;
    /// fio worker `k` writes and verifies `[k * FIO_REGION, (k + 1) * FIO_REGION)`.
    pub const FIO_REGION: u64 = 128 << 20;
    /// Most fio workers.
    pub const MAX_FIO: usize = 2;
    /// qemu-io worker `k` uses `[QEMU_IO_BASE + k * QEMU_IO_REGION, ...)`.
    pub const QEMU_IO_BASE: u64 = 256 << 20;
    pub const QEMU_IO_REGION: u64 = 64 << 20;
    /// Most qemu-io workers.
    pub const MAX_QEMU_IO: usize = 4;
    /// Written once before the load starts ([`probe_byte`](super::probe_byte)), then only
    /// read: by the latency probe and the idle connections.
    pub const PROBE_BASE: u64 = 512 << 20;
    pub const PROBE_LEN: u64 = 1 << 20;
    /// The resetting clients write here; nobody reads it back.
    pub const RESET_BASE: u64 = 768 << 20;
    pub const RESET_LEN: u64 = 256 << 20;
}

/// The content of the probe region at absolute export offset `off`.
pub fn probe_byte(off: u64) -> u8 {
    let x = off.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> 56) as u8 ^ (off as u8)
}

/// Which server a client loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    Nbd,
    Proxy,
    /// The echo server behind the proxy.
    Upstream,
}

impl Who {
    pub const ALL: [Who; 3] = [Who::Nbd, Who::Proxy, Who::Upstream];

    pub fn name(self) -> &'static str {
        match self {
            Who::Nbd => "nbd_server",
            Who::Proxy => "proxy",
            Who::Upstream => "upstream",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Data read back differs from what was written (or echoed bytes differ).
    Verify,
    /// Anything else unexpected: a dropped connection, an NBD error, a tool that failed or
    /// hung, a limit the server did not enforce.
    Error,
}

/// Counts of one server's clients.
#[derive(Debug, Default)]
pub struct Tally {
    verify: AtomicU64,
    errors: AtomicU64,
    /// Expected events and completed work: "fio runs", "resets", ...
    counters: Mutex<BTreeMap<&'static str, u64>>,
}

impl Tally {
    pub fn verify_errors(&self) -> u64 {
        self.verify.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Add `n` to the counter `what`.
    pub fn count(&self, what: &'static str, n: u64) {
        *self.counters.lock().unwrap().entry(what).or_default() += n;
    }

    /// Raise the counter `what` to `v` if it is below (a maximum, not a sum).
    pub fn at_least(&self, what: &'static str, v: u64) {
        let mut c = self.counters.lock().unwrap();
        let e = c.entry(what).or_default();
        *e = (*e).max(v);
    }

    /// Every counter, by name.
    pub fn counters(&self) -> BTreeMap<&'static str, u64> {
        self.counters.lock().unwrap().clone()
    }
}

/// How many problem messages the board keeps for the final report.
const KEPT_MESSAGES: usize = 40;

/// What every client thread shares: the stop flag, the clock and the counts.
#[derive(Debug)]
pub struct Board {
    stop: AtomicBool,
    start: Instant,
    tallies: [Tally; 3],
    messages: Mutex<Vec<String>>,
}

impl Default for Board {
    fn default() -> Self {
        Board::new()
    }
}

impl Board {
    pub fn new() -> Board {
        Board {
            stop: AtomicBool::new(false),
            start: Instant::now(),
            tallies: Default::default(),
            messages: Mutex::new(Vec::new()),
        }
    }

    /// Tell every client to finish.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Time since the board was made.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn tally(&self, who: Who) -> &Tally {
        &self.tallies[who.index()]
    }

    /// Record a problem: counted, printed at once, kept for the summary.
    pub fn problem(&self, who: Who, kind: Kind, msg: impl AsRef<str>) {
        let tally = self.tally(who);
        let label = match kind {
            Kind::Verify => {
                tally.verify.fetch_add(1, Ordering::Relaxed);
                "VERIFICATION ERROR"
            }
            Kind::Error => {
                tally.errors.fetch_add(1, Ordering::Relaxed);
                "ERROR"
            }
        };
        let line = format!(
            "[{:>5.0}s] {label} {}: {}",
            self.elapsed().as_secs_f64(),
            who.name(),
            msg.as_ref()
        );
        println!("{line}");
        let mut kept = self.messages.lock().unwrap();
        if kept.len() < KEPT_MESSAGES {
            kept.push(line);
        }
    }

    /// The first problems recorded.
    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }

    /// Sleep for `d`, or less if the soak stops meanwhile. Returns `false` if it stopped.
    pub fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        loop {
            if self.stopped() {
                return false;
            }
            let now = Instant::now();
            if now >= end {
                return true;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(100)));
        }
    }
}

/// Round-trip times of one latency probe: the current 10 s window and the whole run.
#[derive(Debug, Default)]
pub struct Latency {
    window: Mutex<Vec<Duration>>,
    all: Mutex<Vec<Duration>>,
}

impl Latency {
    pub fn record(&self, d: Duration) {
        self.window.lock().unwrap().push(d);
        self.all.lock().unwrap().push(d);
    }

    /// The samples since the last call.
    pub fn take_window(&self) -> Vec<Duration> {
        std::mem::take(&mut *self.window.lock().unwrap())
    }

    /// Every sample of the run.
    pub fn all(&self) -> Vec<Duration> {
        self.all.lock().unwrap().clone()
    }
}

/// A small pseudo-random generator (xorshift64*): offsets, lengths and patterns.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n > 0`; the bias is negligible for the ranges used here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
