//! fsx in miniature: thousands of random writes, reads, truncates (down and up), hole
//! punches, fsyncs, reopens, and reads and writes through a shared mmap on one file
//! through the mount, each checked against an in-memory model of what the file must hold;
//! at the end the backing file equals the model. A lost or misplaced write, a stale page
//! after a truncate, a short read before the end or a wrong size after any step fails the
//! test at that step, with the seed and step number to replay it.

mod fuse_common;

use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use fuse_common::*;

const OPS: usize = 3000;
const MAX_SIZE: u64 = 2 << 20;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn open(m: &Mount) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.at("f"))
        .unwrap()
}

fn check_read(f: &std::fs::File, model: &[u8], off: u64, len: u64, step: usize, seed: u64) {
    let mut buf = vec![0xEEu8; len as usize];
    let mut got = 0;
    loop {
        let n = f.read_at(&mut buf[got..], off + got as u64).unwrap();
        if n == 0 {
            break;
        }
        got += n;
        if got == buf.len() {
            break;
        }
    }
    let start = (off as usize).min(model.len());
    let end = (off as usize + len as usize).min(model.len());
    let want = &model[start..end];
    assert_eq!(
        got,
        want.len(),
        "seed {seed} step {step}: read {len} at {off}: length"
    );
    if let Some(i) = (0..got).find(|&i| buf[i] != want[i]) {
        panic!(
            "seed {seed} step {step}: read {len} at {off}: byte {} is {:#x}, the model says {:#x}",
            off + i as u64,
            buf[i],
            want[i]
        );
    }
}

fn run(seed: u64) {
    let m = Mount::start("fsx", &[]);
    std::fs::write(m.at("f"), b"").unwrap();
    let mut f = open(&m);
    let mut model: Vec<u8> = Vec::new();
    let mut rng = Rng(seed);
    for step in 0..OPS {
        match rng.below(100) {
            0..=39 => {
                let off = rng.below(MAX_SIZE);
                let big = rng.below(4) == 0;
                let len = 1 + rng.below(if big { 256 << 10 } else { 8 << 10 });
                let len = len.min(MAX_SIZE - off);
                let data = pseudo_random(len as usize, rng.next());
                f.write_all_at(&data, off).unwrap();
                let end = (off + len) as usize;
                if model.len() < end {
                    model.resize(end, 0);
                }
                model[off as usize..end].copy_from_slice(&data);
            }
            40..=69 => {
                let off = rng.below(model.len() as u64 + 4096);
                let len = 1 + rng.below(128 << 10);
                check_read(&f, &model, off, len, step, seed);
            }
            70..=79 => {
                let size = rng.below(MAX_SIZE);
                f.set_len(size).unwrap();
                model.resize(size as usize, 0);
            }
            80..=84 if !model.is_empty() => {
                let off = rng.below(model.len() as u64);
                let len = 1 + rng.below(model.len() as u64 - off);
                let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
                // SAFETY: `f` is open; plain integer arguments.
                let r = unsafe { libc::fallocate(f.as_raw_fd(), mode, off as i64, len as i64) };
                assert_eq!(r, 0, "punch hole: {}", std::io::Error::last_os_error());
                model[off as usize..(off + len) as usize].fill(0);
            }
            85..=89 => {
                f.sync_data().unwrap();
                f = open(&m);
            }
            90..=94 if !model.is_empty() => {
                // A shared map sees the same bytes (the page cache path); some steps also
                // write through it, and msync sends the dirty pages to the server.
                let len = model.len();
                let write = rng.below(2) == 0;
                let off = rng.below(len as u64) as usize;
                let n = (1 + rng.below(4096) as usize).min(len - off);
                let data = pseudo_random(n, rng.next());
                let prot = libc::PROT_READ | if write { libc::PROT_WRITE } else { 0 };
                // SAFETY: a fresh shared mapping of `len` bytes of a file open for reading
                // and writing, of at least that size; only this thread touches the file
                // while it is mapped, and it is unmapped before the next step.
                let same = unsafe {
                    let p = libc::mmap(
                        std::ptr::null_mut(),
                        len,
                        prot,
                        libc::MAP_SHARED,
                        f.as_raw_fd(),
                        0,
                    );
                    assert_ne!(
                        p,
                        libc::MAP_FAILED,
                        "mmap: {}",
                        std::io::Error::last_os_error()
                    );
                    let mapped = std::slice::from_raw_parts_mut(p as *mut u8, len);
                    let same = mapped == &model[..];
                    if write {
                        mapped[off..off + n].copy_from_slice(&data);
                        assert_eq!(libc::msync(p, len, libc::MS_SYNC), 0);
                    }
                    libc::munmap(p, len);
                    same
                };
                assert!(
                    same,
                    "seed {seed} step {step}: the mapping differs from the model"
                );
                if write {
                    model[off..off + n].copy_from_slice(&data);
                }
            }
            _ => {
                let size = f.metadata().unwrap().len();
                assert_eq!(size, model.len() as u64, "seed {seed} step {step}: size");
            }
        }
    }
    drop(f);
    let back = std::fs::read(m.backing("f")).unwrap();
    assert_eq!(
        back.len(),
        model.len(),
        "seed {seed}: the backing file's size"
    );
    assert!(
        back == model,
        "seed {seed}: the backing file differs from the model"
    );
}

#[test]
fn random_ops_seed_1() {
    if can_mount() {
        run(0x9E37_79B9_7F4A_7C15);
    }
}

#[test]
fn random_ops_seed_2() {
    if can_mount() {
        run(0xD1B5_4A32_D192_ED03);
    }
}
