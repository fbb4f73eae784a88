//! G10 for FUSE over io_uring (`examples/fuse_passthrough`, `ringleader::cmd_slot`'s
//! `commit_linked`): a READ's `READ_FIXED`s and its `COMMIT_AND_FETCH` go to the kernel as
//! one linked chain, the reply header written first with the full length. A short read
//! (EOF, a file truncated meanwhile) breaks the chain, the kernel cancels the commit, and the
//! server re-reads or replies the length it really got.
//!
//! The reads run on CPU 0, so the kernel routes them to queue 0, whose commit fits a 64-byte
//! SQE (the only kind the executor links). Files of many sizes are read across their end,
//! and a file whose backing copy is shrunk and rewritten all the time is read through the
//! mount: every byte read must be the file's byte at that offset (a commit that claimed
//! bytes no read produced would show another request's bytes, left in the payload), and
//! every length at most what was asked. The server's counts must show linked commits and
//! chains broken by a short read and finished.

mod fuse_common;
mod fuse_uring_support;

use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use fuse_common::{pseudo_random, server_bin};
use fuse_uring_support::{UringEnabled, UringServer};

fn pin_to_cpu(cpu: usize) {
    // SAFETY: `set` is plain data, zeroed then filled by CPU_SET; sched_setaffinity only
    // reads it, for the calling thread (pid 0).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0,
            "pin to CPU {cpu}"
        );
    }
}

/// Drop the mount's cached pages of `f`, so the next read is a READ request.
fn drop_cache(f: &std::fs::File) {
    // SAFETY: an open fd; fadvise takes plain integers.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

/// The byte of the truncated file at `offset`: never 0, never 0xee (the filler file).
fn pattern(offset: usize) -> u8 {
    (offset % 251) as u8 + 1
}

fn counts(stderr: &str) -> (u64, u64) {
    let mut linked = 0;
    let mut broken = 0;
    for l in stderr.lines() {
        let Some(rest) = l.split(" committed ").nth(1) else {
            continue;
        };
        let mut words = rest.split(' ');
        linked += words.next().unwrap().parse::<u64>().unwrap();
        let after = rest.split(", ").nth(1).unwrap();
        broken += after.split(' ').next().unwrap().parse::<u64>().unwrap();
    }
    (linked, broken)
}

#[test]
fn linked_read_commits_exact_bytes_across_eof_and_truncation() {
    let _on = match UringEnabled::acquire() {
        Ok(g) => g,
        Err(why) => {
            eprintln!("SKIP: {why}");
            return;
        }
    };
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("SKIP: needs two CPUs");
        return;
    }
    let s = UringServer::start(&server_bin(), "linked");
    pin_to_cpu(0);

    // Across EOF: whole files of sizes around page, stripe (256 KiB) and payload (1 MiB)
    // boundaries, and a positioned read that crosses the end.
    for (i, len) in [1usize, 4095, 4097, 300_000, (1 << 20) + 5, 3_000_017]
        .into_iter()
        .enumerate()
    {
        let data = pseudo_random(len, i as u64 + 7);
        let name = format!("eof{i}");
        std::fs::write(s.backing(&name), &data).unwrap();
        assert_eq!(
            std::fs::read(s.at(&name)).unwrap(),
            data,
            "{name}: read back"
        );
        let f = std::fs::File::open(s.at(&name)).unwrap();
        drop_cache(&f);
        let mut buf = vec![0u8; 8192];
        let at = len.saturating_sub(3);
        let n = f.read_at(&mut buf, at as u64).unwrap();
        assert_eq!(n, len - at, "{name}: a read across the end is short");
        assert_eq!(&buf[..n], &data[at..], "{name}: the bytes before the end");
    }

    // A file shrunk and rewritten on the backing side while it is read through the mount,
    // beside a filler file of 0xee bytes read through the same queue.
    const LEN: usize = 2 << 20;
    let full: Vec<u8> = (0..LEN).map(pattern).collect();
    std::fs::write(s.backing("shrinking"), &full).unwrap();
    std::fs::write(s.backing("filler"), vec![0xeeu8; LEN]).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let truncator = {
        let stop = Arc::clone(&stop);
        let path = s.backing("shrinking");
        let full = full.clone();
        std::thread::spawn(move || {
            pin_to_cpu(1);
            let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            while !stop.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let cut = (x % LEN as u64) as usize;
                f.set_len(cut as u64).unwrap();
                f.write_all_at(&full[cut..], cut as u64).unwrap();
            }
        })
    };
    let filler = std::fs::File::open(s.at("filler")).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut short = 0;
    for round in 0..400 {
        drop_cache(&filler);
        let mut fill = vec![0u8; 1 << 20];
        let n = filler.read_at(&mut fill, 0).unwrap();
        assert!(fill[..n].iter().all(|&b| b == 0xee), "filler bytes");
        // A new open each round: the mount's cached size is refreshed.
        let f = std::fs::File::open(s.at("shrinking")).unwrap();
        drop_cache(&f);
        let off = (round * 77_777) % LEN;
        let want = buf.len().min(LEN - off);
        let n = match f.read_at(&mut buf[..want], off as u64) {
            Ok(n) => n,
            Err(e) => panic!("round {round}: read at {off}: {e}"),
        };
        assert!(n <= want, "round {round}: {n} bytes for a read of {want}");
        if n < want {
            short += 1;
        }
        for (k, &b) in buf[..n].iter().enumerate() {
            assert_eq!(
                b,
                pattern(off + k),
                "round {round}: byte {k} of a {n}-byte read at {off} is not the file's"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    truncator.join().unwrap();
    drop(filler);

    let err = s.stop();
    let (linked, broken) = counts(&err);
    eprintln!("linked {linked}, broken and finished {broken}, short reads seen {short}");
    assert!(linked > 0, "no READ was committed in a linked chain: {err}");
    assert!(
        broken > 0,
        "no chain was broken by a short read and finished: {err}"
    );
}
