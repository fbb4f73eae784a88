// Two members that write into the lease cannot have overlapping views.
use ringleader::buf::FixedPool;
use ringleader::fs::File;
use ringleader::group::LeaseExt;

async fn striped(pool: FixedPool, src: File) {
    let mut lease = pool.lease(4096).await.unwrap();
    let a = lease.view_mut(0..2048);
    let b = lease.view_mut(1024..4096);
    let (ra, rb) = futures::join!(src.read_fixed_at(a, 0), src.read_fixed_at(b, 1024));
    ra.unwrap();
    rb.unwrap();
}

fn main() {
    drop(striped);
}
