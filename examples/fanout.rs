//! Copy one file to N destinations, one lease per block: each block is a group whose leader
//! `READ_FIXED`s it from the source into a `FixedPool` slot and whose members `WRITE_FIXED`
//! that same slot to every destination at the same offset. No byte passes through user space.
//!
//! Run: `cargo run --release --example fanout -- SRC DST [DST...] [--block 1M] [--depth 4]
//! [--direct]`

use std::cell::Cell;
use std::io;
use std::path::PathBuf;
use std::process::exit;
use std::rc::Rc;
use std::time::Instant;

use ringleader::buf::FixedPool;
use ringleader::fs::File;
use ringleader::group::{Group, Leader, Member};

const USAGE: &str = "fanout: copy one file to several destinations, zero-copy, with io_uring groups

USAGE: fanout [OPTIONS] SRC DST [DST...]

Each block is read once into a registered buffer (the group's leader, READ_FIXED) and written
from that same buffer to every destination (the members, WRITE_FIXED). Destinations are
created or truncated.

OPTIONS:
  --block SIZE  block size, with an optional K, M or G suffix (powers of 1024) [default: 1M]
  --depth N     blocks in flight, each with its own lease [default: 4]
  --direct      open every file with O_DIRECT (the block must be a multiple of 4096)
  -h, --help    this text";

/// The alignment asked of `--direct` blocks and leases: a page, which covers every common
/// logical block size.
const DIRECT_ALIGN: usize = 4096;

#[derive(Debug)]
struct Args {
    src: PathBuf,
    dsts: Vec<PathBuf>,
    block: usize,
    depth: usize,
    direct: bool,
}

fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let (digits, mult) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (t, 1usize),
        Some((i, _)) => {
            let mult = match t[i..].to_ascii_uppercase().as_str() {
                "K" | "KB" | "KIB" => 1 << 10,
                "M" | "MB" | "MIB" => 1 << 20,
                "G" | "GB" | "GIB" => 1 << 30,
                _ => return Err(format!("bad size {s:?} (expected e.g. 4096, 64K, 1M)")),
            };
            (&t[..i], mult)
        }
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("bad size {s:?} (expected e.g. 4096, 64K, 1M)"))?;
    n.checked_mul(mult)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("bad size {s:?}: must be > 0 and fit in memory"))
}

fn parse() -> Result<Option<Args>, String> {
    let mut block = 1 << 20;
    let mut depth = 4;
    let mut direct = false;
    let mut paths = Vec::new();
    // `--flag=value` as well as `--flag value` (up to a `--`, after which all are paths).
    let mut args = Vec::new();
    let mut raw = std::env::args_os().skip(1);
    for a in raw.by_ref() {
        match a.to_str() {
            Some("--") => {
                args.push(a);
                break;
            }
            Some(s) if s.starts_with("--") => match s.split_once('=') {
                Some((flag, value)) => args.extend([flag.into(), value.into()]),
                None => args.push(a),
            },
            _ => args.push(a),
        }
    }
    args.extend(raw);
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("-h" | "--help") => return Ok(None),
            Some("--direct") => direct = true,
            Some(flag @ ("--block" | "--depth")) => {
                let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
                let v = v
                    .to_str()
                    .ok_or_else(|| format!("{flag}: not UTF-8: {v:?}"))?;
                if flag == "--block" {
                    block = parse_size(v).map_err(|e| format!("--block: {e}"))?;
                } else {
                    depth = v.parse().ok().filter(|&d: &usize| d > 0).ok_or_else(|| {
                        format!("--depth: expected a positive integer, got {v:?}")
                    })?;
                }
            }
            Some("--") => paths.extend(it.by_ref().map(PathBuf::from)),
            Some(s) if s.starts_with('-') && s.len() > 1 => {
                return Err(format!("unknown option {s:?} (try --help)"));
            }
            _ => paths.push(PathBuf::from(arg)),
        }
    }
    if block > 1 << 30 {
        return Err("--block: at most 1G (the kernel's limit on one registered buffer)".into());
    }
    if direct && block % DIRECT_ALIGN != 0 {
        return Err(format!(
            "--direct needs a block that is a multiple of {DIRECT_ALIGN} (got {block})"
        ));
    }
    if paths.len() < 2 {
        return Err("expected SRC and at least one DST (try --help)".into());
    }
    let src = paths.remove(0);
    Ok(Some(Args {
        src,
        dsts: paths,
        block,
        depth,
        direct,
    }))
}

fn with_path(what: &str, path: &std::path::Path, e: io::Error) -> io::Error {
    // Errors from `ringleader::fs` already name the path; other ones get it here.
    let msg = e.to_string();
    if msg.contains(&*path.to_string_lossy()) {
        e
    } else {
        io::Error::new(e.kind(), format!("{what} {}: {msg}", path.display()))
    }
}

/// What a copy did.
struct Report {
    bytes: u64,
    secs: f64,
}

async fn copy(args: &Args) -> io::Result<Report> {
    let flags = if args.direct { libc::O_DIRECT } else { 0 };
    let src = File::options()
        .read(true)
        .custom_flags(flags)
        .open(&args.src)
        .await
        .map_err(|e| with_path("open", &args.src, e))?;
    let meta = src
        .metadata()
        .await
        .map_err(|e| with_path("stat", &args.src, e))?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a regular file", args.src.display()),
        ));
    }
    let size = meta.len();
    let mut dsts = Vec::with_capacity(args.dsts.len());
    for d in &args.dsts {
        let f = File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(flags)
            .open(d)
            .await
            .map_err(|e| with_path("create", d, e))?;
        dsts.push(f);
    }

    let pool = FixedPool::new(args.block, args.depth)?;
    let src = Rc::new(src);
    let dsts = Rc::new(dsts);
    let next = Rc::new(Cell::new(0u64));
    let stop = Rc::new(Cell::new(false));
    let start = Instant::now();
    let mut workers = Vec::with_capacity(args.depth);
    for _ in 0..args.depth {
        let (pool, src, dsts, next, stop) = (
            pool.clone(),
            Rc::clone(&src),
            Rc::clone(&dsts),
            Rc::clone(&next),
            Rc::clone(&stop),
        );
        let (block, direct) = (args.block as u64, args.direct);
        workers.push(ringleader::spawn(async move {
            let r = worker(&pool, &src, &dsts, &next, &stop, size, block, direct).await;
            if r.is_err() {
                stop.set(true);
            }
            r
        }));
    }
    let mut first_err = None;
    for w in workers {
        let r = w
            .await
            .unwrap_or_else(|e| Err(io::Error::other(format!("copy task failed: {e}"))));
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    // Direct I/O wrote the last block rounded up to the alignment: cut every copy back to
    // the source's size (for buffered copies this only confirms it).
    for (f, d) in dsts.iter().zip(&args.dsts) {
        f.set_len(size)
            .await
            .map_err(|e| with_path("truncate", d, e))?;
    }
    Ok(Report {
        bytes: size,
        secs: start.elapsed().as_secs_f64(),
    })
}

/// Claim blocks until none is left: one lease, reused for every block this worker copies.
#[allow(clippy::too_many_arguments)]
async fn worker(
    pool: &FixedPool,
    src: &File,
    dsts: &[File],
    next: &Cell<u64>,
    stop: &Cell<bool>,
    size: u64,
    block: u64,
    direct: bool,
) -> io::Result<()> {
    let mut lease = pool.lease(block as usize).await?;
    if direct && lease.as_ptr() as usize % DIRECT_ALIGN != 0 {
        return Err(io::Error::other(format!(
            "lease at {:p} is not {DIRECT_ALIGN}-aligned for O_DIRECT",
            lease.as_ptr()
        )));
    }
    while !stop.get() {
        let off = next.get();
        if off >= size {
            break;
        }
        next.set(off + block);
        let end = (off + block).min(size);
        let mut pos = off;
        // A regular file reads short only at EOF; loop anyway so a short read elsewhere
        // (a file changing under us) cannot leave a hole.
        while pos < end {
            let want = (end - pos) as usize;
            // O_DIRECT needs aligned lengths: read the block rounded up; in zero-fill mode the
            // members write the slot's whole (aligned) capacity, zeros past EOF, and
            // `set_len` cuts every copy back at the end.
            let len = if direct {
                want.next_multiple_of(DIRECT_ALIGN)
            } else {
                want
            };
            lease.set_len(len);
            let mut g = Group::new(&mut lease)
                .leader(Leader::read_fixed(src, pos))
                .members(dsts.iter().map(|d| {
                    // Buffered writes (ext4, tmpfs) always go to io-wq; forcing them there
                    // lets io-wq run the copies on several workers at once (one otherwise):
                    // 1 GiB to 4 tmpfs files at depth 8, 380 -> 800 MiB/s (bench fanout).
                    let m = Member::write_fixed(d, pos);
                    if direct { m } else { m.force_async() }
                }));
            if direct {
                g = g.zero_fill();
            }
            let out = g.await.check()?;
            let n = out.leader? as u64;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("source shrank: EOF at {pos}, expected {size} bytes"),
                ));
            }
            // Zero-fill mode writes the slot's whole capacity, at least `len`.
            let expect = if direct { len } else { n as usize };
            for m in out.members {
                let w = m?;
                if w < expect || (!direct && w != expect) {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("short write at {pos}: {w} of {expect} bytes"),
                    ));
                }
            }
            if direct && pos + n < end && n % DIRECT_ALIGN as u64 != 0 {
                return Err(io::Error::other(format!(
                    "unaligned short direct read at {pos}: {n} bytes"
                )));
            }
            pos += n;
        }
    }
    Ok(())
}

fn main() {
    let args = match parse() {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("fanout: {e}");
            exit(2);
        }
    };
    match ringleader::block_on(copy(&args)) {
        Ok(r) => {
            let mib = r.bytes as f64 / (1 << 20) as f64;
            let rate = if r.secs > 0.0 { mib / r.secs } else { 0.0 };
            println!(
                "copied {} bytes to {} destination(s) in {:.3} s: {:.1} MiB/s read, {:.1} MiB/s written",
                r.bytes,
                args.dsts.len(),
                r.secs,
                rate,
                rate * args.dsts.len() as f64,
            );
            println!(
                "block {} B, depth {}, {}; bytes copied in user space: 0",
                args.block,
                args.depth,
                if args.direct { "O_DIRECT" } else { "buffered" }
            );
        }
        Err(e) => {
            eprintln!("fanout: {e}");
            exit(1);
        }
    }
}
