// Lease contents cannot be reached after the lease is released.
use ringleader::buf::FixedPool;

async fn stale(pool: FixedPool) {
    let lease = pool.lease(16).await.unwrap();
    let bytes: &[u8] = &lease;
    drop(lease);
    println!("{}", bytes.len());
}

fn main() {
    drop(stale);
}
