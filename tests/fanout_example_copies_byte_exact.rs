//! Acceptance "fanout" of the groups issue, through the real example binary: `examples/fanout`
//! copies a 256 MiB file of pseudo-random bytes to 3 destinations byte-exact (length and
//! checksum), also when the size is not a multiple of the block (buffered and `O_DIRECT`), and
//! a missing source fails with a non-zero exit and a message naming the path.

#[path = "support/example_bin.rs"]
mod example_bin;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MIB: usize = 1 << 20;

/// The example's binary (see `support/example_bin.rs`).
fn example_binary() -> PathBuf {
    example_bin::example_bin("fanout", &[])
}

/// A scratch directory in the temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rl-fanout-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Write `len` pseudo-random bytes (xorshift64*) to `path`, returning their checksum.
fn write_random(path: &Path, len: usize, seed: u64) -> (u64, u64) {
    let mut f = std::io::BufWriter::with_capacity(MIB, std::fs::File::create(path).unwrap());
    let mut x = seed | 1;
    let mut sum = Checksum::new();
    let mut chunk = vec![0u8; MIB];
    let mut left = len;
    while left > 0 {
        let n = left.min(MIB);
        for word in chunk[..n].chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            word.copy_from_slice(&v[..word.len()]);
        }
        sum.update(&chunk[..n]);
        f.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    f.flush().unwrap();
    (len as u64, sum.finish())
}

/// FNV-1a over 8-byte words (a tail byte-wise), folded with the length: enough to catch a
/// misplaced, missing or stale block.
struct Checksum(u64);

impl Checksum {
    fn new() -> Self {
        Checksum(0xcbf2_9ce4_8422_2325)
    }
    fn update(&mut self, data: &[u8]) {
        // Callers feed whole MiB chunks except at the end, so word boundaries line up.
        let mut words = data.chunks_exact(8);
        for w in &mut words {
            self.0 ^= u64::from_le_bytes(w.try_into().unwrap());
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        for &b in words.remainder() {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn finish(self) -> u64 {
        self.0
    }
}

/// Length and checksum of a file, read in 1 MiB chunks.
fn file_sum(path: &Path) -> (u64, u64) {
    let mut f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut buf = vec![0u8; MIB];
    let mut sum = Checksum::new();
    let mut len = 0u64;
    loop {
        // Fill whole chunks so word boundaries match `write_random`'s.
        let mut got = 0;
        while got < buf.len() {
            match f.read(&mut buf[got..]).unwrap() {
                0 => break,
                n => got += n,
            }
        }
        if got == 0 {
            break;
        }
        sum.update(&buf[..got]);
        len += got as u64;
        if got < buf.len() {
            break;
        }
    }
    (len, sum.finish())
}

fn run(args: &[&std::ffi::OsStr]) -> Output {
    let out = Command::new(example_binary())
        .args(args)
        .output()
        .expect("running the fanout example");
    eprintln!(
        "fanout {args:?}: {}\nstdout: {}stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Copy `len` random bytes to 3 destinations with `extra` flags and check each copy.
fn fan_out(tag: &str, len: usize, extra: &[&str]) {
    let dir = TempDir::new(tag);
    let src = dir.0.join("src");
    let expect = write_random(&src, len, 0x9e37_79b9_7f4a_7c15 ^ len as u64);
    let dsts: Vec<PathBuf> = (0..3).map(|i| dir.0.join(format!("dst{i}"))).collect();
    // A stale, longer destination must come out truncated to the source's size.
    std::fs::write(&dsts[2], vec![0xAB; len + 12345]).unwrap();

    let mut args: Vec<&std::ffi::OsStr> = extra.iter().map(|s| s.as_ref()).collect();
    args.push(src.as_os_str());
    args.extend(dsts.iter().map(|d| d.as_os_str()));
    let out = run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if extra.contains(&"--direct") && !out.status.success() && stderr.contains("Invalid argument") {
        eprintln!("skipping: the temp dir's file system refuses O_DIRECT");
        return;
    }
    assert!(out.status.success(), "fanout failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("MiB/s"), "prints throughput: {stdout}");
    assert!(
        stdout.contains(&format!("copied {len} bytes")),
        "prints bytes copied: {stdout}"
    );
    for d in &dsts {
        assert_eq!(
            file_sum(d),
            expect,
            "{} differs from the source",
            d.display()
        );
    }
}

#[test]
fn copies_256_mib_to_three_destinations_byte_exact() {
    fan_out("256m", 256 * MIB, &[]);
}

#[test]
fn size_not_a_multiple_of_the_block() {
    // 37 MiB + 12345 bytes in 1 MiB blocks (default), then in odd 100K blocks, deep.
    fan_out("odd-default", 37 * MIB + 12345, &[]);
    fan_out(
        "odd-100k",
        5 * MIB + 777,
        &["--block", "100K", "--depth", "7"],
    );
}

#[test]
fn size_not_a_multiple_of_the_block_direct() {
    fan_out(
        "odd-direct",
        9 * MIB + 4097,
        &["--direct", "--block", "256K"],
    );
}

#[test]
fn missing_source_names_the_path() {
    let dir = TempDir::new("missing");
    let src = dir.0.join("no-such-source");
    let dst = dir.0.join("dst");
    let out = run(&[src.as_os_str(), dst.as_os_str()]);
    assert!(!out.status.success(), "a missing SRC fails");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&*src.to_string_lossy()),
        "the message names the path: {stderr}"
    );
    assert!(
        !dst.exists(),
        "no destination is created when SRC is missing"
    );

    // Usage errors exit 2.
    let out = run(&[src.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
}
