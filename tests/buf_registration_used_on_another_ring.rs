//! Registrations belong to one ring. A thread may run two runtimes (two `LocalRuntime`s, or
//! `block_on` twice), and a `FixedPool` or `BufRing` built on one must not be used through
//! the other's registrations: there the same fixed-buffer index or buffer group id names
//! another ring's buffers, or none.

mod common;

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use common::{pipe, write_all};
use ringleader::buf::{BufRing, FixedPool};

#[test]
fn a_pool_lease_read_on_another_ring_uses_its_address_not_that_rings_table() {
    let a = ringleader::Builder::new().build_local().unwrap();
    let pool_a = a.block_on(async { FixedPool::new(4096, 2).unwrap() });
    let lease = a.block_on(async { pool_a.lease(4096).await.unwrap() });
    let b = ringleader::Builder::new().build_local().unwrap();
    let (r, w) = pipe();
    let r = Rc::new(r);
    write_all(&w, b"through ring B");
    let (res, lease) = b.block_on(async {
        // Ring B has a pool of its own at the same table indices.
        let pool_b = FixedPool::new(4096, 2).unwrap();
        let _held = pool_b.lease(4096).await.unwrap();
        assert_eq!(lease.buf_index(), None, "A's index means nothing on ring B");
        ringleader::lease_ops::read_fixed(&r, lease, u64::MAX).await
    });
    assert_eq!(res.expect("the read works on ring B"), 14);
    assert_eq!(&lease[..], b"through ring B");
    // Back on ring A the lease is registered again.
    a.block_on(async { assert!(lease.buf_index().is_some()) });
}

#[test]
fn a_buffer_ring_used_on_another_ring_is_refused_with_a_clear_message() {
    let a = ringleader::Builder::new().build_local().unwrap();
    let ring_a = a.block_on(async { BufRing::new(4, 4096).unwrap() });
    let b = ringleader::Builder::new().build_local().unwrap();
    let (mut tx, rx) = UnixStream::pair().unwrap();
    tx.write_all(b"picked by whom?").unwrap();
    let rx: Rc<OwnedFd> = Rc::new(rx.into());
    let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        b.block_on(async {
            // Ring B has a buffer ring too, possibly with the same group id.
            let _ring_b = BufRing::new(4, 4096).unwrap();
            let got = ringleader::time::timeout(
                std::time::Duration::from_secs(5),
                ringleader::lease_ops::recv(&rx, &ring_a),
            )
            .await;
            panic!("not refused: the recv on ring B gave {got:?}");
        })
    }))
    .expect_err("the recv must be refused");
    let msg = refused
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| refused.downcast_ref::<&str>().copied())
        .unwrap_or("");
    assert!(
        msg.contains("not registered with"),
        "a clear message, not {msg:?}"
    );
}
