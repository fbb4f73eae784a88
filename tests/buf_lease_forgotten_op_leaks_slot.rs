//! Acceptance (b): `mem::forget` of a future whose op holds a lease leaks the slot: it is
//! never handed out again (pool counters prove it) and the kernel's late write into it
//! corrupts no other lease.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use ringleader::buf::FixedPool;
use ringleader::lease_ops::read_fixed;

const SLOTS: usize = 4;
const SIZE: usize = 4096;

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

async fn ticks(n: usize) {
    for _ in 0..n {
        ringleader::yield_now().await;
    }
}

#[test]
fn forgotten_read_fixed_leaks_its_slot_and_corrupts_nothing() {
    ringleader::block_on(async {
        let pool = FixedPool::new(SIZE, SLOTS).unwrap();
        let (r1, w1) = pipe();
        let (r2, w2) = pipe();

        // One op forgotten before it reached the kernel, one after it was submitted.
        let a = pool.lease(SIZE).await.unwrap();
        let b = pool.lease(SIZE).await.unwrap();
        let leaked = [a.buf_index().unwrap(), b.buf_index().unwrap()];
        std::mem::forget(read_fixed(&r1, a, u64::MAX));
        let op = read_fixed(&r2, b, u64::MAX);
        ticks(2).await;
        std::mem::forget(op);
        assert_eq!(pool.available(), SLOTS - 2);

        // The kernel now completes both reads into the leaked slots.
        write_all(w1, &[0xEE; SIZE]);
        write_all(w2, &[0xEE; SIZE]);
        ticks(50).await;
        assert_eq!(
            pool.available(),
            SLOTS - 2,
            "a forgotten op's slot came back"
        );

        // Every other slot can be leased, none is a leaked one, and nothing more is free.
        let mut held = Vec::new();
        while let Some(mut l) = pool.try_lease(SIZE) {
            assert!(
                !leaked.contains(&l.buf_index().unwrap()),
                "leaked slot reused"
            );
            l.set_len(SIZE);
            l.fill(0xC5);
            held.push(l);
        }
        assert_eq!(held.len(), SLOTS - 2);
        assert!(pool.try_lease(1).is_none());

        // More data for any read that could still target the pool: nothing changes.
        write_all(w1, &[0xEE; 512]);
        write_all(w2, &[0xEE; 512]);
        ticks(50).await;
        for l in &held {
            assert!(l.iter().all(|&x| x == 0xC5), "a held lease was overwritten");
        }
        drop(held);
        ticks(10).await;
        assert_eq!(pool.available(), SLOTS - 2, "leaked slots stay leaked");

        // A lease() that would need a leaked slot waits rather than reusing one.
        let all: Vec<_> = (0..SLOTS - 2)
            .map(|_| pool.try_lease(SIZE).unwrap())
            .collect();
        let mut wait = std::pin::pin!(pool.lease(SIZE));
        assert!(futures::poll!(wait.as_mut()).is_pending());
        drop(all);
        let l = wait.await.unwrap();
        assert!(!leaked.contains(&l.buf_index().unwrap()));
        // The read ends stay open: the forgotten ops leaked references to them.
        // SAFETY: closing fds this test opened (the forgotten ops' reads have completed).
        unsafe {
            for fd in [w1, w2] {
                libc::close(fd);
            }
        }
    });
}
