//! Acceptance (a), the canary: a lease filled by `READ_FIXED` whose op future is dropped in
//! flight is not handed out again until that op's CQE, and a later lease's contents are never
//! overwritten by the earlier op.
//!
//! Thousands of iterations, each with a random source and drop point:
//! - a pipe nobody has written yet (the read is poll-armed; the cancel usually wins), with
//!   the drop before the SQE reached the kernel, after, or after data was written;
//! - an `O_DIRECT` file read (a bio the cancel cannot stop: the data lands *after* the drop),
//!   dropped before submission or after one tick.
//!
//! After each drop every other slot is leased and filled with a canary, the pipe gets poison,
//! the runtime ticks until the victim slot comes back, and the canaries are checked. A runtime
//! that released the slot at drop time would hand it out here and the late read would
//! overwrite the canary.

#[path = "support/quarantine.rs"]
mod quarantine;
#[global_allocator]
static ALLOC: quarantine::Quarantine = quarantine::Quarantine;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::rc::Rc;

use ringleader::buf::{FixedPool, Lease};
use ringleader::lease_ops::read_fixed;

const SLOTS: usize = 4;
const SIZE: usize = 4096;
const ITERS: usize = 3000;
const FILE_BLOCKS: u64 = 64;

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A pipe: its read end as the owner a read holds, its write end as a bare fd.
fn pipe() -> (Rc<OwnedFd>, RawFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two fds.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 succeeded: `fds[0]` is a fresh fd nobody else owns.
    (Rc::new(unsafe { OwnedFd::from_raw_fd(fds[0]) }), fds[1])
}

fn write_all(fd: RawFd, data: &[u8]) {
    // SAFETY: `data` is valid for reads of its length.
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    assert_eq!(n, data.len() as isize);
}

/// Read (and discard) whatever the pipe holds, without blocking.
fn drain(fd: RawFd) {
    loop {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int.
        assert_eq!(unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) }, 0);
        if n == 0 {
            return;
        }
        let mut buf = vec![0u8; n as usize];
        // SAFETY: `buf` is valid for writes of `n` bytes; `n` bytes are ready, so no block.
        unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    }
}

/// The byte at `pos` of the test file: never 0xC0..=0xFF (canaries) nor 0xEE (poison).
fn file_byte(pos: u64) -> u8 {
    (pos.wrapping_mul(2654435761) >> 7) as u8 & 0x7f
}

/// A file of `FILE_BLOCKS` pages opened with `O_DIRECT`, or `None` if the file system
/// refuses it.
fn direct_file() -> Option<std::fs::File> {
    let path = std::env::temp_dir().join(format!("ringleader-canary-{}", std::process::id()));
    let data: Vec<u8> = (0..FILE_BLOCKS * SIZE as u64).map(file_byte).collect();
    std::fs::write(&path, &data).unwrap();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path);
    std::fs::remove_file(&path).unwrap();
    match f {
        Ok(f) => Some(f),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            eprintln!("O_DIRECT refused by the temp dir's file system; pipe sources only");
            None
        }
        Err(e) => panic!("open: {e}"),
    }
}

#[test]
fn dropped_read_fixed_slot_not_reused_until_its_cqe() {
    ringleader::block_on(async {
        let pool = FixedPool::new(SIZE, SLOTS).unwrap();
        let file = direct_file().map(|f| Rc::new(OwnedFd::from(f)));
        let (pr, pw) = pipe();
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut seen = [0usize; 7];
        for iter in 0..ITERS {
            let victim = pool
                .try_lease(SIZE)
                .expect("every slot is back at the start");
            let victim_index = victim.buf_index().unwrap();
            let use_file = file.is_some() && rng.below(2) == 0;
            let block = rng.below(FILE_BLOCKS);
            let op = match &file {
                Some(f) if use_file => read_fixed(f, victim, block * SIZE as u64),
                _ => read_fixed(&pr, victim, u64::MAX),
            };
            let point = rng.below(if use_file { 3 } else { 4 });
            seen[if use_file {
                4 + point as usize
            } else {
                point as usize
            }] += 1;
            match (use_file, point) {
                // Dropped before the SQE reached the kernel: the CQE cannot have been reaped,
                // so the slot must still be held.
                (_, 0) => {
                    drop(op);
                    assert_eq!(pool.available(), SLOTS - 1, "slot freed before its CQE");
                }
                // Pipe: submitted and poll-armed, nobody wrote yet.
                (false, 1) => {
                    ringleader::yield_now().await;
                    drop(op);
                    assert_eq!(pool.available(), SLOTS - 1, "slot freed before its CQE");
                }
                // Pipe: data written after submission but not yet reaped.
                (false, 2) => {
                    ringleader::yield_now().await;
                    write_all(pw, &[0xEE; 64]);
                    drop(op);
                    assert_eq!(pool.available(), SLOTS - 1, "slot freed before its CQE");
                }
                // Pipe: completes normally, the data is the one written.
                (false, _) => {
                    ringleader::yield_now().await;
                    let payload = [iter as u8 & 0x7f; 100];
                    write_all(pw, &payload);
                    let (r, lease) = op.await;
                    assert_eq!(r.unwrap(), payload.len());
                    assert_eq!(&lease[..], &payload[..]);
                    drop(lease);
                    continue;
                }
                // File: dropped after one tick (the read may have finished, or not).
                (true, 1) => {
                    ringleader::yield_now().await;
                    drop(op);
                    if pool.available() == SLOTS {
                        // Its CQE was reaped before the drop: the slot is legitimately free.
                        continue;
                    }
                }
                // File: completes normally with the file's bytes.
                (true, _) => {
                    let (r, lease) = op.await;
                    assert_eq!(r.unwrap(), SIZE);
                    let base = block * SIZE as u64;
                    assert!(
                        lease
                            .iter()
                            .enumerate()
                            .all(|(i, &b)| b == file_byte(base + i as u64)),
                        "READ_FIXED returned the wrong bytes"
                    );
                    drop(lease);
                    continue;
                }
            }

            // Lease every free slot and fill it with a canary.
            let canary = 0xC0 | (iter as u8 & 0x3f);
            let mut held: Vec<Lease> = Vec::new();
            while let Some(mut l) = pool.try_lease(SIZE) {
                assert_ne!(
                    l.buf_index(),
                    Some(victim_index),
                    "the victim slot was handed out while its read could be in flight"
                );
                l.set_len(SIZE);
                l.fill(canary);
                held.push(l);
            }
            // Poison for a pipe read that would still be pending.
            if !use_file {
                write_all(pw, &[0xEE; 128]);
            }
            // Tick until the victim's CQE has been reaped and its slot returned.
            let mut ticks = 0u64;
            while pool.available() == 0 {
                ringleader::yield_now().await;
                ticks += 1;
                assert!(ticks < 10_000_000, "the victim slot never came back");
            }
            let back = pool.try_lease(SIZE).unwrap();
            assert_eq!(back.buf_index(), Some(victim_index));
            for l in &held {
                assert!(
                    l.iter().all(|&b| b == canary),
                    "iteration {iter}: a later lease was overwritten by a dropped op"
                );
            }
            drop(back);
            drop(held);
            drain(pr.as_raw_fd());
        }
        assert_eq!(pool.available(), SLOTS);
        // Every drop point must have been exercised (the file ones only with O_DIRECT).
        assert!(seen[..4].iter().all(|&n| n > 0), "{seen:?}");
        if file.is_some() {
            assert!(seen[4..].iter().all(|&n| n > 0), "{seen:?}");
        }
        // SAFETY: `pw` is this test's own fd, closed once (the read end's owner closes it).
        unsafe { libc::close(pw) };
    });
    quarantine::check_all();
}

/// Under panic: the task's future is dropped while unwinding, with the read in flight; the
/// slot stays held through the unwinding and comes back only after the runtime reaped the
/// read's final CQE.
#[test]
fn a_panicking_task_keeps_the_slot_until_the_cqe() {
    struct CheckOnUnwind {
        pool: FixedPool,
        held_while_unwinding: std::rc::Rc<std::cell::Cell<Option<usize>>>,
    }
    impl Drop for CheckOnUnwind {
        fn drop(&mut self) {
            self.held_while_unwinding.set(Some(self.pool.available()));
        }
    }
    ringleader::block_on(async {
        let pool = FixedPool::new(SIZE, 1).unwrap();
        let (pr, pw) = pipe();
        let seen = std::rc::Rc::new(std::cell::Cell::new(None));
        let task = {
            let (pool, seen, pr) = (pool.clone(), seen.clone(), Rc::clone(&pr));
            ringleader::spawn(async move {
                // Dropped after `op` (reverse declaration order): it sees the pool right
                // after the in-flight op was dropped by the unwinding.
                let _check = CheckOnUnwind {
                    pool: pool.clone(),
                    held_while_unwinding: seen,
                };
                let lease = pool.lease(SIZE).await.unwrap();
                let op = read_fixed(&pr, lease, u64::MAX);
                ringleader::yield_now().await; // submitted, poll-armed on the empty pipe
                let _op = op;
                panic!("task dies with a READ_FIXED in flight");
            })
        };
        assert!(task.await.is_err(), "the panic is reported as a JoinError");
        assert_eq!(
            seen.get(),
            Some(0),
            "the slot was freed by the unwinding, before its CQE"
        );
        let mut ticks = 0u64;
        while pool.available() == 0 {
            ringleader::yield_now().await;
            ticks += 1;
            assert!(ticks < 10_000_000, "the slot never came back");
        }
        write_all(pw, b"late");
        let l = pool.try_lease(SIZE).unwrap();
        ringleader::yield_now().await;
        assert!(l.is_empty(), "the cancelled read wrote into a reused slot");
        drain(pr.as_raw_fd());
        // SAFETY: `pw` is this test's own fd, closed once (the read end's owner closes it).
        unsafe { libc::close(pw) };
    });
    quarantine::check_all();
}
