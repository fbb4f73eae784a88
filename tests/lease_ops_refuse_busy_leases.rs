//! The owned lease ops (`lease_ops::read_fixed`/`write_fixed`) take the lease by value, but a
//! forgotten op on the same lease may still be using it: they keep the lease access rule
//! too, so the kernel never writes pages another op still sends, nor reads pages another op
//! still writes.

mod common;

use std::rc::Rc;

use common::{pipe, write_all};
use ringleader::buf::FixedPool;
use ringleader::group::{self, LeaseExt};

fn panics(f: impl FnOnce()) -> String {
    let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).expect_err("refused");
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn a_lease_a_forgotten_read_still_writes_is_refused_by_owned_ops() {
    let (r, w) = pipe();
    let (r, w) = (Rc::new(r), Rc::new(w));
    ringleader::block_on(async {
        let pool = FixedPool::new(4096, 1).unwrap();
        let mut lease = pool.lease(4096).await.unwrap();
        // A read into the lease, forgotten in flight: the kernel writes it later.
        let read = group::read_fixed_at(&r, &mut lease, u64::MAX);
        ringleader::yield_now().await;
        std::mem::forget(read);
        let msg = panics(|| drop(ringleader::lease_ops::write_fixed(&w, lease, u64::MAX)));
        assert!(msg.contains("lease slot"), "a clear message, not {msg:?}");
    });
    write_all(&w, b"late");
}

#[test]
fn a_lease_a_dropped_send_still_reads_is_refused_as_a_read_target() {
    let (r, w) = pipe();
    let (r, w) = (Rc::new(r), Rc::new(w));
    ringleader::block_on(async {
        let pool = FixedPool::new(4096, 1).unwrap();
        let mut lease = pool.lease(4096).await.unwrap();
        lease.extend_from_slice(&[b'A'; 4096]);
        // A write of the lease into a pipe nobody drains past its capacity would stay in
        // flight; forgetting it leaves a kernel reader for ever.
        let send = group::write_fixed_at(&w, lease.view(..), u64::MAX);
        std::mem::forget(send);
        let msg = panics(|| drop(ringleader::lease_ops::read_fixed(&r, lease, u64::MAX)));
        assert!(msg.contains("lease slot"), "a clear message, not {msg:?}");
    });
}
