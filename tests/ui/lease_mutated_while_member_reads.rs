// The lease cannot be mutated while a member that reads it (a write) is in flight.
use ringleader::buf::FixedPool;
use ringleader::fs::File;

async fn write(pool: FixedPool, dst: File) {
    let mut lease = pool.lease(16).await.unwrap();
    lease.extend_from_slice(b"first");
    let write = dst.write_fixed_at(&lease, 0);
    lease.extend_from_slice(b"second");
    write.await.unwrap();
}

fn main() {
    drop(write);
}
