//! `buffers`: registered (fixed) buffers against unregistered ones, and how a core gets its
//! fixed-buffer table, in one run.
//!
//! 1. Reads through ringleader at queue depth 1 and 32 (QD tasks, each awaiting its reads
//!    one after another): 64 KiB `O_DIRECT`, 4 KiB `O_DIRECT` and 4 KiB buffered (page cache
//!    hot), each with a `FixedPool` lease (`READ_FIXED`) and with an unregistered
//!    `AlignedBuf` (`READ`), side by side. Every task keeps one buffer and reuses it, so
//!    both columns do the same work apart from the buffer registration.
//! 2. Per-core registration: the time for a fresh ring to register N MiB of 64 KiB buffers
//!    itself (sparse table + `IORING_REGISTER_BUFFERS_UPDATE`) against cloning another
//!    ring's table (`IORING_REGISTER_CLONE_BUFFERS`, Linux 6.12).
//!
//! Every row runs once to warm up, then `--runs` times; cells are median [min .. max]. The
//! thread is pinned to one CPU first. See `bench/README.md`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use io_uring::IoUring;
use ringleader::buf::{AlignedBuf, FixedPool};
use ringleader::{Builder, runtime::LocalRuntime};
use ringleader_bench::measure::{Summary, repeat};
use ringleader_bench::pin;
use ringleader_bench::table::{Table, ratio, si};

const USAGE: &str = "\
usage: buffers [--runs R] [--quick] [--cpu N] [--file PATH] [--reads N] [--only io|register]

Fixed (registered) buffers against unregistered ones on 64 KiB O_DIRECT reads and 4 KiB
reads (O_DIRECT and page-cache hot) at queue depth 1 and 32, and a fresh ring registering
its own buffer table against cloning another ring's (IORING_REGISTER_CLONE_BUFFERS).

  --runs R       timed runs per row, after one warm-up run (default 5)
  --quick        fewer reads and smaller registrations, for smoke tests
  --cpu N        pin the benchmark thread to CPU N (default: the last allowed CPU)
  --file PATH    the test file (default /var/tmp/ringleader-bench-buffers, 256 MiB,
                 created if missing or short; must be on a file system with O_DIRECT)
  --reads N      reads per run and row (default 8192)
  --only SUITE   run only `io` or only `register`
  -h, --help     this text";

const FILE_LEN: u64 = 256 << 20;
/// The part of the file that the buffered 4 KiB reads use (kept in the page cache).
const HOT_LEN: u64 = 64 << 20;
const DEPTHS: [usize; 2] = [1, 32];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Suite {
    All,
    Io,
    Register,
}

#[derive(Debug)]
struct Args {
    runs: usize,
    cpu: Option<usize>,
    file: PathBuf,
    reads: u64,
    register_mib: Vec<usize>,
    suite: Suite,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut args = Args {
        runs: 5,
        cpu: None,
        file: PathBuf::from("/var/tmp/ringleader-bench-buffers"),
        reads: 8192,
        register_mib: vec![16, 64, 256],
        suite: Suite::All,
    };
    let mut reads = None;
    let mut quick = false;
    fn value<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        v.parse().map_err(|_| format!("{flag}: cannot parse {v:?}"))
    }
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--quick" => quick = true,
            "--runs" => args.runs = value("--runs", it.next())?,
            "--cpu" => args.cpu = Some(value("--cpu", it.next())?),
            "--file" => args.file = PathBuf::from(value::<String>("--file", it.next())?),
            "--reads" => reads = Some(value("--reads", it.next())?),
            "--only" => {
                args.suite = match it.next().as_deref() {
                    Some("io") => Suite::Io,
                    Some("register") => Suite::Register,
                    other => return Err(format!("--only takes `io` or `register`, not {other:?}")),
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if quick {
        args.reads = 512;
        args.register_mib = vec![16];
    }
    args.reads = reads.unwrap_or(args.reads);
    let max_qd = DEPTHS[DEPTHS.len() - 1] as u64;
    args.reads -= args.reads % max_qd;
    if args.runs == 0 || args.reads == 0 {
        return Err("--runs and --reads (at least 32) must be positive".to_owned());
    }
    Ok(Some(args))
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("buffers: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("buffers: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> io::Result<()> {
    let cpus = pin::allowed_cpus()?;
    let cpu = match args.cpu {
        Some(c) => c,
        None => *cpus
            .last()
            .ok_or_else(|| io::Error::other("no CPU allowed"))?,
    };
    pin::pin_to_cpu(cpu)?;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!(
        "ringleader bench `buffers`: Linux {}, thread pinned to CPU {cpu} ({} CPUs allowed), \
         {} timed runs per row after 1 warm-up; cells are median [min .. max]",
        kernel.trim(),
        cpus.len(),
        args.runs,
    );
    if args.suite != Suite::Register {
        io_suite(args)?;
    }
    if args.suite != Suite::Io {
        register_suite(args)?;
    }
    Ok(())
}

/// One read workload.
#[derive(Clone, Copy, Debug)]
struct Workload {
    name: &'static str,
    len: usize,
    direct: bool,
}

const WORKLOADS: [Workload; 3] = [
    Workload {
        name: "64 KiB O_DIRECT",
        len: 64 << 10,
        direct: true,
    },
    Workload {
        name: "4 KiB O_DIRECT",
        len: 4 << 10,
        direct: true,
    },
    Workload {
        name: "4 KiB buffered (cached)",
        len: 4 << 10,
        direct: false,
    },
];

fn io_suite(args: &Args) -> io::Result<()> {
    prepare_file(&args.file)?;
    let direct = open(&args.file, true)?;
    let buffered = open(&args.file, false)?;
    warm_cache(&buffered)?;
    let rt = Builder::new().build_local()?;
    let n = args.reads;
    println!();
    println!(
        "## Reads, fixed (FixedPool lease, READ_FIXED) vs unregistered (AlignedBuf, READ)\n\
         {n} reads per run at random aligned offsets of {} ({} MiB; buffered reads stay in the \
         first {} MiB, kept in the page cache). QD = tasks, each with its own buffer.\n\
         ratio: fixed throughput / unregistered throughput (above 1 = fixed is faster)",
        args.file.display(),
        FILE_LEN >> 20,
        HOT_LEN >> 20,
    );
    let mut table = Table::new([
        "workload",
        "QD",
        "fixed MB/s",
        "fixed IOPS",
        "unregistered MB/s",
        "unregistered IOPS",
        "fixed/unreg",
    ]);
    for w in WORKLOADS {
        let file = if w.direct { &direct } else { &buffered };
        let span = if w.direct { FILE_LEN } else { HOT_LEN };
        for qd in DEPTHS {
            let pool = rt.block_on(async { FixedPool::new(w.len, qd) })?;
            let fixed = repeat(args.runs, || reads(&rt, file, w, span, qd, n, Some(&pool)));
            let plain = repeat(args.runs, || reads(&rt, file, w, span, qd, n, None));
            let bytes = n * w.len as u64;
            table.row([
                w.name.to_owned(),
                qd.to_string(),
                mbs_cell(&fixed, bytes),
                iops_cell(&fixed, n),
                mbs_cell(&plain, bytes),
                iops_cell(&plain, n),
                ratio(fixed.rate(n).0 / plain.rate(n).0),
            ]);
        }
    }
    print!("{table}");
    Ok(())
}

/// `qd` tasks doing `n / qd` reads each; the time from the first spawn to the last join.
fn reads(
    rt: &LocalRuntime,
    file: &File,
    w: Workload,
    span: u64,
    qd: usize,
    n: u64,
    pool: Option<&FixedPool>,
) -> Duration {
    // The owner every read holds until its CQE (a dup of `file`, made before the clock).
    let fd = Rc::new(OwnedFd::from(file.try_clone().expect("dup the file's fd")));
    let blocks = span / w.len as u64;
    let per_task = n / qd as u64;
    rt.block_on(async move {
        // Buffers are set up before the clock starts, like the pool's registration.
        let mut leases = Vec::new();
        let mut bufs = Vec::new();
        for _ in 0..qd {
            match pool {
                Some(p) => leases.push(p.try_lease(w.len).expect("one slot per task")),
                None => bufs.push(AlignedBuf::new(w.len, 4096)),
            }
        }
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(qd);
        for t in 0..qd {
            let mut rng =
                0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let mut next_off = move || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                (rng % blocks) * w.len as u64
            };
            let len = w.len;
            let fd = Rc::clone(&fd);
            if let Some(mut lease) = leases.pop() {
                tasks.push(ringleader::spawn(async move {
                    for _ in 0..per_task {
                        let (r, l) =
                            ringleader::lease_ops::read_fixed(&fd, lease, next_off()).await;
                        assert_eq!(r.expect("READ_FIXED failed"), len);
                        lease = l;
                    }
                }));
            } else {
                let mut buf = bufs.pop().expect("one buffer per task");
                tasks.push(ringleader::spawn(async move {
                    for _ in 0..per_task {
                        buf.set_len(0);
                        let (r, b) = ringleader::fd::read(&fd, buf, next_off()).await;
                        assert_eq!(r.expect("READ failed"), len);
                        buf = b;
                    }
                }));
            }
        }
        for t in tasks {
            t.await.expect("read task panicked");
        }
        start.elapsed()
    })
}

fn mbs_cell(s: &Summary, bytes: u64) -> String {
    let (m, lo, hi) = s.rate(bytes);
    format!("{:.0} [{:.0} .. {:.0}]", m / 1e6, lo / 1e6, hi / 1e6)
}

fn iops_cell(s: &Summary, n: u64) -> String {
    let (m, lo, hi) = s.rate(n);
    format!("{} [{} .. {}]", si(m), si(lo), si(hi))
}

fn open(path: &PathBuf, direct: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true);
    if direct {
        o.custom_flags(libc::O_DIRECT);
    }
    o.open(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("open {} (O_DIRECT: {direct}): {e}", path.display()),
        )
    })
}

/// Create the file with pseudo-random contents if it is missing or short.
fn prepare_file(path: &PathBuf) -> io::Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() >= FILE_LEN) {
        return Ok(());
    }
    let mut f = File::create(path)?;
    let mut chunk = vec![0u8; 1 << 20];
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..FILE_LEN >> 20 {
        for b in chunk.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&chunk)?;
    }
    f.sync_all()
}

/// Read the hot part once so that buffered reads hit the page cache.
fn warm_cache(f: &File) -> io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0;
    while off < HOT_LEN {
        // SAFETY: `buf` is valid for writes of its length.
        let n = unsafe {
            libc::pread(
                f.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                off as i64,
            )
        };
        if n <= 0 {
            return Err(io::Error::last_os_error());
        }
        off += n as u64;
    }
    Ok(())
}

fn register_suite(args: &Args) -> io::Result<()> {
    println!();
    println!(
        "## Per-core registration: a fresh ring gets N MiB of 64 KiB fixed buffers\n\
         own: register_buffers_sparse + one REGISTER_BUFFERS_UPDATE of every buffer (pins the \
         pages; what FixedPool does).\n\
         clone: IORING_REGISTER_CLONE_BUFFERS from a ring that already registered them (no \
         pinning; the rings then share the buffers).\n\
         Times per fresh ring, ms; ring creation and teardown are outside the timed part."
    );
    let mut table = Table::new(["N MiB", "buffers", "own ms", "clone ms", "own/clone"]);
    for &mib in &args.register_mib {
        let len = mib << 20;
        let buf = 64 << 10;
        let mem = Mapping::new(len)?;
        let iovecs: Vec<libc::iovec> = (0..len / buf)
            .map(|i| libc::iovec {
                // SAFETY: `i * buf < len`: inside the mapping.
                iov_base: unsafe { mem.ptr.add(i * buf) }.cast(),
                iov_len: buf,
            })
            .collect();
        let source = IoUring::new(8)?;
        register_own(&source, &iovecs)?;
        let mut err = None;
        let own = repeat(args.runs, || {
            timed_ring(|r| register_own(r, &iovecs)).unwrap_or_else(|e| {
                err.get_or_insert(e);
                Duration::MAX
            })
        });
        let src_fd = source.as_raw_fd();
        let clone = repeat(args.runs, || {
            timed_ring(|r| r.submitter().register_buffers_clone(src_fd)).unwrap_or_else(|e| {
                err.get_or_insert(e);
                Duration::MAX
            })
        });
        if let Some(e) = err {
            return Err(io::Error::new(e.kind(), format!("registration: {e}")));
        }
        let ms = |s: &Summary| {
            let f = |d: Duration| d.as_secs_f64() * 1e3;
            format!(
                "{:.3} [{:.3} .. {:.3}]",
                f(s.median()),
                f(s.min()),
                f(s.max())
            )
        };
        table.row([
            mib.to_string(),
            iovecs.len().to_string(),
            ms(&own),
            ms(&clone),
            ratio(own.median().as_secs_f64() / clone.median().as_secs_f64()),
        ]);
        drop(source);
        drop(mem);
    }
    print!("{table}");
    Ok(())
}

/// Create a ring, time `f` on it, drop it.
fn timed_ring(f: impl FnOnce(&IoUring) -> io::Result<()>) -> io::Result<Duration> {
    let ring = IoUring::new(8)?;
    let start = Instant::now();
    f(&ring)?;
    let t = start.elapsed();
    drop(ring);
    Ok(t)
}

fn register_own(ring: &IoUring, iovecs: &[libc::iovec]) -> io::Result<()> {
    let s = ring.submitter();
    s.register_buffers_sparse(iovecs.len() as u32)?;
    // SAFETY: the iovecs describe a mapping that outlives every ring of this suite (it is
    // dropped after them).
    unsafe { s.register_buffers_update(0, iovecs, None) }
}

/// A populated anonymous mapping.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> io::Result<Mapping> {
        // SAFETY: a fresh private anonymous mapping; plain arguments.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr: p.cast(), len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping made in `new`; no ring uses it any more.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}
