//! A reader of a file that another client truncates gets short reads, never stale bytes.
//!
//! The file starts as 4 MiB of 0xAB. A truncater, through the mount, shrinks it to an
//! ever smaller size and grows it back to 4 MiB (the regrown tail reads as zeros), and
//! publishes the smallest size so far once each shrink has returned. Readers, on their own
//! file descriptors, read the whole file over and over: any 0xAB at or beyond the size
//! published before the read began is a stale byte (it was cut off and never written
//! again). A read past the current end is short; the test counts those.

mod fuse_common;

use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use fuse_common::*;

const SIZE: u64 = 4 << 20;
const ROUNDS: u64 = 120;

#[test]
fn readers_never_see_bytes_a_truncate_removed() {
    if !can_mount() {
        return;
    }
    let m = Mount::start("trunc", &[]);
    let path = m.at("f");
    std::fs::write(&path, vec![0xABu8; SIZE as usize]).unwrap();
    let floor = Arc::new(AtomicU64::new(SIZE));
    let done = Arc::new(AtomicBool::new(false));
    let short = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (path, floor, done, short) =
                (path.clone(), floor.clone(), done.clone(), short.clone());
            std::thread::spawn(move || {
                let f = std::fs::File::open(&path).unwrap();
                let mut buf = vec![0u8; SIZE as usize];
                let mut reads = 0;
                while !done.load(Ordering::Acquire) || reads < 4 {
                    let limit = floor.load(Ordering::Acquire);
                    let mut got = 0;
                    loop {
                        let n = f.read_at(&mut buf[got..], got as u64).unwrap();
                        if n == 0 {
                            break;
                        }
                        got += n;
                    }
                    if (got as u64) < SIZE {
                        short.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some(p) = buf[limit.min(got as u64) as usize..got]
                        .iter()
                        .position(|&b| b == 0xAB)
                    {
                        panic!(
                            "stale byte 0xAB at {} (file cut to {limit} before this read began)",
                            limit + p as u64
                        );
                    }
                    reads += 1;
                }
            })
        })
        .collect();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    for round in 1..=ROUNDS {
        let cut = SIZE - round * (SIZE / (ROUNDS + 8)) - (round * 4099) % 4096;
        f.set_len(cut).unwrap();
        floor.store(cut, Ordering::Release);
        std::thread::yield_now();
        f.set_len(SIZE).unwrap();
    }
    done.store(true, Ordering::Release);
    for r in readers {
        r.join().expect("a reader saw a stale byte");
    }
    // The file as the server left it: 0xAB up to the smallest cut, zeros after.
    let data = std::fs::read(m.backing("f")).unwrap();
    let cut = floor.load(Ordering::Acquire) as usize;
    assert_eq!(data.len() as u64, SIZE);
    assert!(data[..cut].iter().all(|&b| b == 0xAB));
    assert!(data[cut..].iter().all(|&b| b == 0));
    eprintln!("short reads seen: {}", short.load(Ordering::Relaxed));
}
