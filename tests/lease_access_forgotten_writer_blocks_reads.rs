//! The lease access rule, writers: a read into a borrowed lease whose future is
//! `mem::forget`-ed ends the borrow, but not the kernel's write. The lease must then refuse
//! every access to its bytes (a `try_` form returns `LeaseBusy`, `&lease[..]` panics) rather
//! than hand out a `&[u8]` the kernel changes later; and since a forgotten op never releases
//! its count, it stays so, and its slot is never reused. The same for a `Group` whose
//! zero-filling leader the driver completes after the group future is forgotten, and for a
//! `recv_lease` on a socket. A dropped read, by contrast, gives the lease back at its final
//! CQE.

mod group_util;

use std::future::IntoFuture;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};

use futures::poll;
use group_util::{TempPath, open_rw, pending, pipe, put, take, tcp_pair, ticks, until};
use ringleader::buf::{FixedPool, IoBuf, Lease, LeaseBusy};
use ringleader::group::{self, Group, Leader, LeaseExt, Member};

const SIZE: usize = 4096;
const KERNEL: &[u8] = b"KERNEL-WROTE-HERE, UNDER A LIVE &[u8]";

/// The message of the panic `f` raised, or `None` if it returned. The expected panics (the
/// lease's refusals) are not printed; any other is, by the default hook.
fn panic_message<R>(f: impl FnOnce() -> R) -> Option<String> {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let refusal = info
                .payload()
                .downcast_ref::<String>()
                .is_some_and(|m| m.starts_with("ringleader: lease slot"));
            if !refusal {
                default(info);
            }
        }));
    });
    let p = catch_unwind(AssertUnwindSafe(f)).err()?;
    Some(match p.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => p
            .downcast_ref::<&str>()
            .map_or(String::new(), |s| s.to_string()),
    })
}

/// A lease of `SIZE` bytes of `b'A'`.
async fn lease_of_a(pool: &FixedPool) -> Lease {
    let mut lease = pool.lease(SIZE).await.unwrap();
    lease.extend_from_slice(&[b'A'; SIZE]);
    lease
}

/// What a `&[u8]` taken while the kernel could still write holds now: it must be what it
/// was (`b'A'`s); the bytes changing under it is the failure this file guards against.
fn assert_unchanged(bytes: &Result<&[u8], LeaseBusy>) {
    if let Ok(b) = bytes {
        assert!(
            b.iter().all(|&x| x == b'A'),
            "a live &[u8] of the lease changed under it: it now starts with {:?}",
            String::from_utf8_lossy(&b[..KERNEL.len()])
        );
    }
}

/// Every accessor of the bytes refuses a lease with `writers` kernel writers and `readers`
/// kernel readers in flight, naming the slot, the counts and the cause; what does not touch
/// the bytes still works.
fn assert_refused(lease: &mut Lease, writers: usize, readers: usize) {
    let slot = lease.slot();
    let busy = lease.try_as_slice().unwrap_err();
    assert_eq!(
        (busy.slot(), busy.writers(), busy.readers()),
        (slot, writers, readers)
    );
    assert!(!busy.for_write());
    assert_eq!((lease.writers(), lease.readers()), (writers, readers));
    let msg = panic_message(|| lease[0]).expect("&lease[..] must panic");
    assert!(
        msg.contains(&format!("lease slot {slot}"))
            && msg.contains(&format!("{writers} kernel writer(s)"))
            && msg.contains("dropped or forgotten"),
        "{msg}"
    );
    assert!(lease.try_as_mut_slice().unwrap_err().for_write());
    assert!(lease.try_spare_mut().is_err());
    assert!(lease.try_extend_from_slice(b"x").is_err());
    assert!(lease.check_readable().is_err() && lease.check_writable().is_err());
    assert!(
        panic_message(|| lease.fill(b'B')).is_some(),
        "&mut lease[..]"
    );
    assert!(panic_message(|| lease.extend_from_slice(b"x")).is_some());
    assert!(
        panic_message(|| lease.view(..)[0]).is_some(),
        "a LeaseSlice"
    );
    assert!(lease.view(..).try_as_slice().is_err());
    // A mutable view made now notes the busy slot: its bytes are refused too.
    assert!(
        panic_message(|| lease.view_mut(..)[0]).is_some(),
        "a LeaseSliceMut"
    );
    let (mut head, tail) = lease.view_mut(..).split_at_mut(10);
    assert!(head.try_as_mut_slice().is_err() && tail.try_as_slice().is_err());
    // Touching no byte is fine.
    let len = lease.len();
    lease.set_len(0);
    lease.clear();
    lease.set_len(len);
    assert_eq!(lease.capacity(), SIZE);
    assert!(!lease.as_ptr().is_null());
}

#[test]
fn forgotten_read_leaves_the_lease_unreadable_and_its_slot_leaked() {
    ringleader::block_on(async {
        let pool = FixedPool::new(SIZE, 2).unwrap();
        let (r, w) = pipe();
        let mut lease = lease_of_a(&pool).await;
        let slot = lease.slot();

        // The read reaches the kernel and waits there (the pipe is empty) when forgotten.
        let mut read = group::read_fixed_at(&r, &mut lease, u64::MAX);
        assert!(poll!(&mut read).is_pending());
        ticks(5).await;
        std::mem::forget(read);

        // The borrow has ended; the kernel's write has not even started. A `&[u8]` now would
        // change under its holder when the kernel writes: it is refused.
        let bytes = lease.try_as_slice();
        put(&w, KERNEL);
        until(|| pending(&r) == 0, "the forgotten read took the data").await;
        ticks(5).await;
        assert_unchanged(&bytes);
        let busy = bytes.expect_err("bytes handed out while a kernel writer was in flight");
        assert_eq!((busy.slot(), busy.writers(), busy.readers()), (slot, 1, 0));

        // The read has completed, but a forgotten op never releases its count: busy forever.
        assert_refused(&mut lease, 1, 0);

        // A `Slice<Lease>` reaches the bytes through `IoBuf`: refused too.
        let s = lease.slice(..);
        assert!(panic_message(|| s[0]).is_some(), "Slice<Lease> deref");
        let mut lease = s.into_inner();

        // New ops on the lease are refused, not submitted.
        let (r2, w2) = pipe();
        let err = group::read_fixed_at(&r2, &mut lease, u64::MAX)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ResourceBusy, "{err}");
        assert!(err.to_string().contains("kernel writer"), "{err}");
        let err = group::write_fixed_at(&w2, &lease, u64::MAX)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ResourceBusy);
        let out = Group::new(&mut lease)
            .leader(Leader::read_fixed(&r2, u64::MAX))
            .member(Member::write_fixed(&w2, u64::MAX))
            .await;
        assert_eq!(
            out.leader.unwrap_err().kind(),
            std::io::ErrorKind::ResourceBusy
        );
        put(&w2, b"never read");
        ticks(5).await;
        assert_eq!(take(&r2), b"never read", "nothing was submitted");

        // Nor does an owned op take it: sending it would send bytes being changed. (The
        // refusal panics while the op is being built, nothing submitted; the unwinding drops
        // the lease.)
        let file = open_rw(&TempPath::new("lease-access-owned-write")).await;
        let sent = panic_message(|| file.write_at(lease, 0));
        assert!(sent.unwrap().contains("cannot be read now"));

        // The slot is never reused: dropping the lease does not return it.
        ticks(10).await;
        assert_eq!(pool.available(), 1);
        let other = pool.try_lease(SIZE).unwrap();
        assert_ne!(other.slot(), slot);
        assert!(pool.try_lease(1).is_none(), "the leaked slot stays leaked");
    });
}

#[test]
fn forgotten_zero_fill_group_leaves_the_lease_unreadable() {
    ringleader::block_on(async {
        let pool = FixedPool::new(SIZE, 2).unwrap();
        let (r, w) = pipe();
        let (sink_r, sink_w) = pipe();
        let mut lease = lease_of_a(&pool).await;
        let slot = lease.slot();
        let base = ringleader::runtime::stats();

        // Zero-fill mode: at the leader's CQE the driver itself writes zeroes after the bytes
        // read, then pushes the member (which sends the whole lease on).
        let mut group = Group::new(&mut lease)
            .leader(Leader::read_fixed(&r, u64::MAX))
            .member(Member::write(&sink_w, u64::MAX))
            .zero_fill()
            .into_future();
        assert!(poll!(&mut group).is_pending());
        ticks(5).await;
        std::mem::forget(group);

        let bytes = lease.try_as_slice();
        put(&w, KERNEL);
        until(
            || ringleader::runtime::stats().group_members_pushed == base.group_members_pushed + 1,
            "the leader's CQE was reaped (zero fill done, member pushed)",
        )
        .await;
        until(|| pending(&sink_r) == SIZE, "the member wrote the lease").await;
        assert_unchanged(&bytes);
        let busy = bytes.expect_err("bytes handed out while the group's leader was in flight");
        assert_eq!(busy.slot(), slot);
        assert_eq!(busy.writers(), 1, "the leader's reference, leaked");

        // The member's reference (a kernel reader) is leaked with the group too.
        assert_refused(&mut lease, 1, 1);
        let mut sent = take(&sink_r);
        assert!(sent.starts_with(KERNEL));
        sent.drain(..KERNEL.len());
        assert!(sent.iter().all(|&x| x == 0), "zero-filled tail");

        drop(lease);
        ticks(10).await;
        assert_eq!(pool.available(), 1, "the slot is leaked, never reused");
    });
}

#[test]
fn forgotten_recv_lease_leaves_the_lease_unreadable() {
    ringleader::block_on(async {
        let pool = FixedPool::new(SIZE, 1).unwrap();
        let (sock, mut peer) = tcp_pair();
        let mut lease = lease_of_a(&pool).await;

        let mut recv = sock.recv_lease(&mut lease);
        assert!(poll!(&mut recv).is_pending());
        ticks(5).await;
        std::mem::forget(recv);

        let bytes = lease.try_as_slice();
        peer.write_all(KERNEL).unwrap();
        until(|| pending(&sock) == 0, "the forgotten recv took the data").await;
        ticks(5).await;
        assert_unchanged(&bytes);
        assert!(bytes.is_err());
        assert_refused(&mut lease, 1, 0);
    });
}

#[test]
fn dropped_read_gives_the_lease_back_at_its_final_cqe() {
    ringleader::block_on(async {
        let pool = FixedPool::new(SIZE, 1).unwrap();
        let (r, w) = pipe();
        let mut lease = lease_of_a(&pool).await;

        let mut read = group::read_fixed_at(&r, &mut lease, u64::MAX);
        assert!(poll!(&mut read).is_pending());
        ticks(5).await;
        drop(read);
        until(|| lease.writers() == 0, "the cancelled read's final CQE").await;

        // Nothing in the kernel writes the lease any more: its bytes are the owner's again,
        // unchanged, and the data that arrives later stays in the pipe.
        assert!(lease.try_as_slice().unwrap().iter().all(|&x| x == b'A'));
        put(&w, KERNEL);
        ticks(10).await;
        assert!(lease.iter().all(|&x| x == b'A'));
        lease.fill(b'C');
        assert_eq!(take(&r), KERNEL);
        // And it takes new ops.
        put(&w, b"next");
        let n = group::read_fixed_at(&r, &mut lease, u64::MAX).await;
        assert_eq!((n.unwrap(), &lease[..]), (4, &b"next"[..]));
    });
}

#[test]
fn striped_read_leaves_the_other_stripe_to_its_owner() {
    ringleader::block_on(async {
        let pool = FixedPool::new(SIZE, 1).unwrap();
        let (r, w) = pipe();
        let mut lease = lease_of_a(&pool).await;

        // The counts are per slot, but a view made on a free lease meets only the ops of its
        // own splits, which cover other bytes: its stripe stays usable while the other is
        // being read into.
        let (head, mut tail) = lease.view_mut(..).split_at_mut(100);
        let mut read = group::read_fixed_at(&r, head, u64::MAX);
        assert!(poll!(&mut read).is_pending());
        ticks(5).await;
        tail.fill(b'T');
        assert!(tail.try_as_slice().unwrap().iter().all(|&x| x == b'T'));
        put(&w, &[b'H'; 100]);
        assert_eq!(read.await.unwrap(), 100);
        assert_eq!(&lease[..100], &[b'H'; 100][..]);
        assert!(lease[100..].iter().all(|&x| x == b'T'));
    });
}
