// A split half cannot be given to two members that write into it: views are not `Copy`.
use ringleader::buf::FixedPool;
use ringleader::fs::File;
use ringleader::group::LeaseExt;

async fn striped(pool: FixedPool, src: File) {
    let mut lease = pool.lease(4096).await.unwrap();
    let (head, _tail) = lease.view_mut(..).split_at_mut(2048);
    let (ra, rb) = futures::join!(src.read_fixed_at(head, 0), src.read_fixed_at(head, 2048));
    ra.unwrap();
    rb.unwrap();
}

fn main() {
    drop(striped);
}
