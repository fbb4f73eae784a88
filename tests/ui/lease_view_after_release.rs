// A view of a lease cannot be given to an op after the lease is released.
use ringleader::buf::FixedPool;
use ringleader::fs::File;
use ringleader::group::LeaseExt;

async fn stale(pool: FixedPool, dst: File) {
    let lease = pool.lease(16).await.unwrap();
    let view = lease.view(..);
    drop(lease);
    dst.write_fixed_at(view, 0).await.unwrap();
}

fn main() {
    drop(stale);
}
