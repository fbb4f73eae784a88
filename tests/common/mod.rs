//! Helpers shared by the integration tests: drop-counted buffers, pipes, fd counting.
#![allow(dead_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ringleader::buf::{IoBuf, IoBufMut};

/// A heap buffer that counts its drops.
pub struct CountedBuf {
    pub bytes: Vec<u8>,
    pub drops: Arc<AtomicUsize>,
}

impl CountedBuf {
    pub fn new(cap: usize, drops: &Arc<AtomicUsize>) -> Self {
        CountedBuf {
            bytes: Vec::with_capacity(cap),
            drops: Arc::clone(drops),
        }
    }
}

impl Drop for CountedBuf {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

// SAFETY: delegates to the inner Vec, whose heap bytes do not move with the struct.
unsafe impl IoBuf for CountedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.bytes.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.bytes.len()
    }
    fn bytes_total(&self) -> usize {
        self.bytes.capacity()
    }
}

// SAFETY: as above.
unsafe impl IoBufMut for CountedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.bytes.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, n: usize) {
        // SAFETY: forwarded contract.
        unsafe { self.bytes.set_init(n) }
    }
}

/// A pipe: (read end, write end), both close-on-exec.
pub fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: pipe2 returned two fresh fds that nothing else owns.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Write `data` to `fd` synchronously.
pub fn write_all(fd: &OwnedFd, data: &[u8]) {
    // SAFETY: `data` is valid for `data.len()` bytes for the duration of the call.
    let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
    assert_eq!(
        n,
        data.len() as isize,
        "write: {}",
        std::io::Error::last_os_error()
    );
}

/// Number of open fds of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// Run ticks until `cond` holds (bounded: panics after `max_ticks` yields + short sleeps).
pub async fn until(mut cond: impl FnMut() -> bool, what: &str) {
    for i in 0..20_000 {
        if cond() {
            return;
        }
        if i % 100 == 99 {
            ringleader::time::sleep(std::time::Duration::from_millis(1)).await;
        } else {
            ringleader::yield_now().await;
        }
    }
    panic!("timed out waiting for: {what}");
}

/// A tiny deterministic PRNG (xorshift64*), so randomized tests are reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

pub fn get(c: &Arc<AtomicUsize>) -> usize {
    c.load(Ordering::SeqCst)
}
