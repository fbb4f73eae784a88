//! `fanout`: copy one file to 4 files in 1 MiB blocks, on tmpfs and on disk, six ways:
//!
//! 1. **ringleader groups**: per block, a group whose leader `READ_FIXED`s the block into a
//!    `FixedPool` lease and whose 4 members `WRITE_FIXED` that lease (no memcpy in user space),
//!    each with `Member::force_async`: buffered writes are punted to io-wq anyway, and only
//!    forced work makes io-wq start a second worker while one runs (measured on tmpfs,
//!    depth 8: ~380 MiB/s on one worker, ~800 with the flag);
//! 2. **ringleader, no groups**: `read_at` into a `Vec`, then 3 clones (+ the original) written
//!    concurrently with `write_all_at` (the owned-buffer API needs one buffer per in-flight
//!    write, so the block is memcpy'd 3 times in user space);
//! 3. **std::fs plain copy**: one thread, `pread` then 4 × `pwrite` from the same buffer;
//! 4. **tokio** (`tokio::fs`, current-thread runtime): per block, seek + `read_exact`, then
//!    seek + `write_all` on each destination; every call runs on tokio's blocking pool;
//! 5. **monoio**: `read_at`, then `write_all_at` × 4 from the same (returned) buffer;
//! 6. **ringleader groups, O_DIRECT**: path 1 with every file opened `O_DIRECT`: the
//!    device moves the bytes straight to and from the registered lease (no CPU copy at all,
//!    not even the kernel's page-cache copies). Not comparable for durability-free runs on
//!    a large page cache: the buffered rows finish when the page cache holds the data, this
//!    one when the device does. Shown so the trade-off is measured, not ranked.
//!
//! The async paths keep `--depth` blocks in flight (one task per block slot). Destinations are
//! truncated before each run (untimed); the timed part is the copy, buffered, without fsync, so
//! on disk it measures the page cache under writeback pressure rather than the device. Each row
//! runs once to warm up, then `--runs` times; cells are the median.

use std::cell::Cell;
use std::future::Future;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use ringleader::buf::{FixedPool, IoBuf};
use ringleader::group::{Group, Leader, Member};
use ringleader_bench::measure::Summary;
use ringleader_bench::table::{Table, ratio};

const USAGE: &str = "\
usage: fanout [--size SIZE] [--quick] [--runs R] [--depth N] [--dir PATH]...

Fan-out of one file to 4 files in 1 MiB blocks: ringleader groups (one lease per block, read
once, written 4 times, zero memcpy) against ringleader without groups (read into a Vec, write
4 copies), a std::fs plain copy (pread + 4 pwrite), tokio::fs and monoio (read_at, then
write_all_at x4); plus ringleader groups with O_DIRECT files.

  --size SIZE   source size, K/M/G suffixes (default 1G)
  --quick       --size 128M
  --runs R      timed runs per row after one warm-up (default 3)
  --depth N     blocks in flight for the async paths (default 8)
  --dir PATH    a directory to run in; repeatable (default /dev/shm and /var/tmp)
  --only A,B    only the rows whose name contains A or B (e.g. groups,monoio)
  -h, --help    this text";

const BLOCK: usize = 1 << 20;
const COPIES: usize = 4;

#[derive(Debug)]
struct Args {
    size: u64,
    runs: usize,
    depth: usize,
    dirs: Vec<PathBuf>,
    /// Only the rows whose name contains one of these.
    only: Vec<String>,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_uppercase();
    let (num, mult) = match t.as_bytes().last() {
        Some(b'K') => (&t[..t.len() - 1], 1u64 << 10),
        Some(b'M') => (&t[..t.len() - 1], 1 << 20),
        Some(b'G') => (&t[..t.len() - 1], 1 << 30),
        _ => (&t[..], 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("bad size {s:?}"))
}

fn parse() -> Result<Option<Args>, String> {
    let mut a = Args {
        size: 1 << 30,
        runs: 3,
        depth: 8,
        dirs: Vec::new(),
        only: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--size" => a.size = parse_size(&val("--size")?)?,
            "--quick" => a.size = 128 << 20,
            "--runs" => {
                a.runs = val("--runs")?
                    .parse::<usize>()
                    .map_err(|e| format!("--runs: {e}"))?
                    .max(1)
            }
            "--depth" => {
                a.depth = val("--depth")?
                    .parse::<usize>()
                    .map_err(|e| format!("--depth: {e}"))?
                    .max(1)
            }
            "--dir" => a.dirs.push(PathBuf::from(val("--dir")?)),
            "--only" => a.only = val("--only")?.split(',').map(str::to_owned).collect(),
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if a.dirs.is_empty() {
        a.dirs = vec!["/dev/shm".into(), "/var/tmp".into()];
    }
    Ok(Some(a))
}

/// The files of one directory: a source and `COPIES` destinations, removed on drop.
struct Files {
    src: PathBuf,
    dsts: Vec<PathBuf>,
}

impl Files {
    fn create(dir: &Path, size: u64) -> io::Result<Files> {
        let tag = std::process::id();
        let src = dir.join(format!("ringleader-bench-fanout-{tag}-src"));
        let dsts = (0..COPIES)
            .map(|i| dir.join(format!("ringleader-bench-fanout-{tag}-dst{i}")))
            .collect();
        let files = Files { src, dsts };
        let mut w = io::BufWriter::with_capacity(BLOCK, std::fs::File::create(&files.src)?);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut chunk = vec![0u8; BLOCK];
        let mut left = size;
        while left > 0 {
            for word in chunk.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                word.copy_from_slice(&x.to_le_bytes());
            }
            let n = left.min(BLOCK as u64) as usize;
            w.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        w.flush()?;
        Ok(files)
    }

    /// Truncate every destination (untimed, before a run).
    fn reset(&self) -> io::Result<()> {
        for d in &self.dsts {
            std::fs::File::create(d)?;
        }
        Ok(())
    }

    /// Spot-check the copies: length and the first and last 64 KiB.
    fn verify(&self, size: u64) -> io::Result<()> {
        let src = std::fs::File::open(&self.src)?;
        let n = 64 << 10;
        let mut want = vec![0u8; n];
        let mut got = vec![0u8; n];
        for d in &self.dsts {
            let f = std::fs::File::open(d)?;
            let len = f.metadata()?.len();
            if len != size {
                return Err(io::Error::other(format!(
                    "{}: {len} bytes, expected {size}",
                    d.display()
                )));
            }
            for pos in [0, size.saturating_sub(n as u64)] {
                let m = (n as u64).min(size) as usize;
                src.read_exact_at(&mut want[..m], pos)?;
                f.read_exact_at(&mut got[..m], pos)?;
                if want[..m] != got[..m] {
                    return Err(io::Error::other(format!(
                        "{} differs at {pos}",
                        d.display()
                    )));
                }
            }
        }
        Ok(())
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.src);
        for d in &self.dsts {
            let _ = std::fs::remove_file(d);
        }
    }
}

/// Await every future; a minimal `join_all` (bench/ has no `futures` crate).
async fn join_all<F: Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut outs: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(outs.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *o = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outs.into_iter().map(Option::unwrap).collect()
}

/// Next block to copy, shared by a path's tasks.
fn claim(next: &Cell<u64>, size: u64) -> Option<(u64, usize)> {
    let off = next.get();
    if off >= size {
        return None;
    }
    next.set(off + BLOCK as u64);
    Some((off, (size - off).min(BLOCK as u64) as usize))
}

async fn rl_open(
    files: &Files,
) -> io::Result<(Rc<ringleader::fs::File>, Rc<Vec<ringleader::fs::File>>)> {
    let src = ringleader::fs::File::open(&files.src).await?;
    let mut dsts = Vec::new();
    for d in &files.dsts {
        dsts.push(ringleader::fs::File::options().write(true).open(d).await?);
    }
    Ok((Rc::new(src), Rc::new(dsts)))
}

/// ringleader groups: one lease per block slot, leader READ_FIXED, 4 members WRITE_FIXED
/// forced to io-wq (see the module docs).
fn ringleader_groups(files: &Files, size: u64, depth: usize) -> io::Result<Duration> {
    ringleader::block_on(async {
        let (src, dsts) = rl_open(files).await?;
        copy_in_groups(src, dsts, size, depth, true).await
    })
}

/// The groups copy loop: `depth` tasks, each claiming blocks and running one group per block
/// on its own pool lease (`force_async` members or not).
async fn copy_in_groups(
    src: Rc<ringleader::fs::File>,
    dsts: Rc<Vec<ringleader::fs::File>>,
    size: u64,
    depth: usize,
    force_async: bool,
) -> io::Result<Duration> {
    let pool = FixedPool::new(BLOCK, depth)?;
    let next = Rc::new(Cell::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..depth)
        .map(|_| {
            let (src, dsts, next, pool) = (src.clone(), dsts.clone(), next.clone(), pool.clone());
            ringleader::spawn(async move {
                let mut lease = pool.lease(BLOCK).await?;
                while let Some((off, len)) = claim(&next, size) {
                    lease.set_len(len);
                    let member = |d| {
                        let m = Member::write_fixed(d, off);
                        if force_async { m.force_async() } else { m }
                    };
                    let out = Group::new(&mut lease)
                        .leader(Leader::read_fixed(&*src, off))
                        .members(dsts.iter().map(member))
                        .await
                        .check()?;
                    let n = out.leader?;
                    for m in out.members {
                        if m? != n || n != len {
                            return Err(io::Error::other("short read or write"));
                        }
                    }
                }
                io::Result::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await.map_err(|e| io::Error::other(e.to_string()))??;
    }
    Ok(start.elapsed())
}

/// ringleader without groups: read into a Vec, write the original and 3 clones concurrently.
fn ringleader_vec(files: &Files, size: u64, depth: usize) -> io::Result<Duration> {
    ringleader::block_on(async {
        let (src, dsts) = rl_open(files).await?;
        let next = Rc::new(Cell::new(0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..depth)
            .map(|_| {
                let (src, dsts, next) = (src.clone(), dsts.clone(), next.clone());
                ringleader::spawn(async move {
                    let mut buf = Vec::with_capacity(BLOCK);
                    while let Some((off, len)) = claim(&next, size) {
                        buf.clear();
                        let (r, b) = src.read_exact_at(buf.slice(..len), off).await;
                        r?;
                        let block: Vec<u8> = b.into_inner();
                        let mut copies: Vec<Vec<u8>> =
                            (1..dsts.len()).map(|_| block.clone()).collect();
                        copies.push(block);
                        let writes = dsts.iter().zip(copies).map(|(d, c)| d.write_all_at(c, off));
                        let mut back = None;
                        for (r, c) in join_all(writes.collect()).await {
                            r?;
                            back = Some(c);
                        }
                        buf = back.unwrap();
                    }
                    io::Result::Ok(())
                })
            })
            .collect();
        for t in tasks {
            t.await.map_err(|e| io::Error::other(e.to_string()))??;
        }
        Ok(start.elapsed())
    })
}

/// std::fs, one thread: pread, then pwrite the same buffer to every destination.
fn std_plain(files: &Files, size: u64) -> io::Result<Duration> {
    let src = std::fs::File::open(&files.src)?;
    let dsts = files
        .dsts
        .iter()
        .map(|d| std::fs::OpenOptions::new().write(true).open(d))
        .collect::<io::Result<Vec<_>>>()?;
    let mut buf = vec![0u8; BLOCK];
    let start = Instant::now();
    let mut off = 0;
    while off < size {
        let len = (size - off).min(BLOCK as u64) as usize;
        src.read_exact_at(&mut buf[..len], off)?;
        for d in &dsts {
            d.write_all_at(&buf[..len], off)?;
        }
        off += len as u64;
    }
    Ok(start.elapsed())
}

/// ringleader groups with every file `O_DIRECT` (leases are page-aligned pool slots).
fn ringleader_groups_direct(files: &Files, size: u64, depth: usize) -> io::Result<Duration> {
    use std::os::unix::fs::OpenOptionsExt;
    if !size.is_multiple_of(4096) {
        return Err(io::Error::other(
            "O_DIRECT row needs a size that is a multiple of 4096",
        ));
    }
    ringleader::block_on(async {
        let open = |p: &Path, write: bool| {
            std::fs::OpenOptions::new()
                .read(!write)
                .write(write)
                .custom_flags(libc::O_DIRECT)
                .open(p)
                .map(ringleader::fs::File::from_std)
        };
        let src = Rc::new(open(&files.src, false)?);
        let dsts = Rc::new(
            files
                .dsts
                .iter()
                .map(|d| open(d, true))
                .collect::<io::Result<Vec<_>>>()?,
        );
        // O_DIRECT writes are not punted: members stay inline.
        copy_in_groups(src, dsts, size, depth, false).await
    })
}

/// tokio::fs on a current-thread runtime, `depth` tasks, each with its own handles (a
/// `tokio::fs::File` has one position): seek + read_exact, then seek + write_all x4.
fn tokio_fs(files: &Files, size: u64, depth: usize) -> io::Result<Duration> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    rt.block_on(async {
        let next = Rc::new(Cell::new(0));
        let mut handles = Vec::new();
        for _ in 0..depth {
            let src = tokio::fs::File::open(&files.src).await?;
            let mut dsts = Vec::new();
            for d in &files.dsts {
                dsts.push(tokio::fs::OpenOptions::new().write(true).open(d).await?);
            }
            handles.push((src, dsts));
        }
        let start = Instant::now();
        let local = tokio::task::LocalSet::new();
        let tasks: Vec<_> = handles
            .into_iter()
            .map(|(mut src, mut dsts)| {
                let next = next.clone();
                local.spawn_local(async move {
                    let mut buf = vec![0u8; BLOCK];
                    while let Some((off, len)) = claim(&next, size) {
                        src.seek(io::SeekFrom::Start(off)).await?;
                        src.read_exact(&mut buf[..len]).await?;
                        for d in &mut dsts {
                            d.seek(io::SeekFrom::Start(off)).await?;
                            d.write_all(&buf[..len]).await?;
                            d.flush().await?;
                        }
                    }
                    io::Result::Ok(())
                })
            })
            .collect();
        local
            .run_until(async {
                for t in tasks {
                    t.await.map_err(|e| io::Error::other(e.to_string()))??;
                }
                io::Result::Ok(())
            })
            .await?;
        Ok(start.elapsed())
    })
}

/// monoio: read_at, then write_all_at x4 from the same (returned) buffer, `depth` tasks.
fn monoio_copy(files: &Files, size: u64, depth: usize) -> io::Result<Duration> {
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new().build()?;
    rt.block_on(async {
        let src = Rc::new(monoio::fs::File::open(&files.src).await?);
        let mut dsts = Vec::new();
        for d in &files.dsts {
            dsts.push(monoio::fs::OpenOptions::new().write(true).open(d).await?);
        }
        let dsts = Rc::new(dsts);
        let next = Rc::new(Cell::new(0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..depth)
            .map(|_| {
                let (src, dsts, next) = (src.clone(), dsts.clone(), next.clone());
                monoio::spawn(async move {
                    let mut buf = vec![0u8; BLOCK];
                    while let Some((off, len)) = claim(&next, size) {
                        buf.truncate(len);
                        let (r, b) = src.read_exact_at(buf, off).await;
                        r?;
                        buf = b;
                        for d in dsts.iter() {
                            let (r, b) = d.write_all_at(buf, off).await;
                            r?;
                            buf = b;
                        }
                    }
                    io::Result::Ok(())
                })
            })
            .collect();
        for t in tasks {
            t.await?;
        }
        Ok(start.elapsed())
    })
}

struct Path_ {
    name: &'static str,
    copy_based: bool,
    /// Bytes memcpy'd in user space per source byte.
    memcpy_per_byte: u64,
    run: fn(&Files, u64, usize) -> io::Result<Duration>,
}

const PATHS: [Path_; 6] = [
    Path_ {
        name: "ringleader groups (READ_FIXED -> 4x WRITE_FIXED)",
        copy_based: false,
        memcpy_per_byte: 0,
        run: ringleader_groups,
    },
    Path_ {
        name: "ringleader no groups (Vec + 3 clones, 4x write_all_at)",
        copy_based: true,
        memcpy_per_byte: (COPIES - 1) as u64,
        run: ringleader_vec,
    },
    Path_ {
        name: "std::fs plain copy (pread + 4x pwrite, 1 thread)",
        copy_based: true,
        memcpy_per_byte: 0,
        run: |f, s, _| std_plain(f, s),
    },
    Path_ {
        name: "tokio::fs (seek + read_exact, 4x seek + write_all)",
        copy_based: true,
        // tokio::fs::File stages every read and write in its own buffer: 1 + 4 copies.
        memcpy_per_byte: 1 + COPIES as u64,
        run: tokio_fs,
    },
    Path_ {
        name: "monoio (read_exact_at + 4x write_all_at)",
        copy_based: true,
        memcpy_per_byte: 0,
        run: monoio_copy,
    },
    Path_ {
        name: "ringleader groups, O_DIRECT files (device <-> lease)",
        copy_based: false,
        memcpy_per_byte: 0,
        run: ringleader_groups_direct,
    },
];

fn bench_dir(dir: &Path, args: &Args) -> io::Result<()> {
    let files = Files::create(dir, args.size)?;
    let mib = args.size as f64 / (1 << 20) as f64;
    let mut rates = Vec::new();
    let paths: Vec<&Path_> = PATHS
        .iter()
        .filter(|p| args.only.is_empty() || args.only.iter().any(|o| p.name.contains(o.as_str())))
        .collect();
    for p in &paths {
        let mut times = Vec::new();
        for i in 0..=args.runs {
            files.reset()?;
            let t = (p.run)(&files, args.size, args.depth)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.name)))?;
            if i == 0 {
                files.verify(args.size)?;
            } else {
                times.push(t);
            }
        }
        let s = Summary::new(times);
        rates.push((
            mib / s.median().as_secs_f64(),
            mib / s.max().as_secs_f64(),
            mib / s.min().as_secs_f64(),
        ));
    }
    let best_peer = paths
        .iter()
        .zip(&rates)
        .filter(|(p, _)| p.copy_based)
        .map(|(_, r)| r.0)
        .fold(0.0, f64::max);
    let mut t = Table::new([
        "path",
        "MiB/s read (median [min..max])",
        "MiB/s written",
        "vs best copy-based",
        "user-space memcpy",
    ]);
    for (p, r) in paths.iter().zip(&rates) {
        t.row([
            p.name.to_string(),
            format!("{:.0} [{:.0}..{:.0}]", r.0, r.1, r.2),
            format!("{:.0}", r.0 * COPIES as f64),
            ratio(r.0 / best_peer),
            format!("{} MiB", mib as u64 * p.memcpy_per_byte),
        ]);
    }
    println!(
        "\n{}: {} MiB -> {COPIES} files, {} KiB blocks, depth {}, median of {} runs",
        dir.display(),
        mib,
        BLOCK >> 10,
        args.depth,
        args.runs
    );
    print!("{t}");
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("fanout: {e}");
            return ExitCode::from(2);
        }
    };
    for dir in &args.dirs {
        if let Err(e) = bench_dir(dir, &args) {
            eprintln!("fanout: {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
