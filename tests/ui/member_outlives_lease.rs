// A member op cannot outlive the lease it borrows.
use ringleader::buf::FixedPool;
use ringleader::fs::File;

async fn fan_out(pool: FixedPool, dst: File) {
    let write;
    {
        let lease = pool.lease(16).await.unwrap();
        write = dst.write_fixed_at(&lease, 0);
    }
    write.await.unwrap();
}

fn main() {
    drop(fan_out);
}
