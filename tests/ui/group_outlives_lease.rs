// A group cannot outlive the lease it borrows.
use ringleader::buf::FixedPool;
use ringleader::fs::File;
use ringleader::group::{Group, Leader, Member};

async fn copy(pool: FixedPool, src: File, dst: File) {
    let group;
    {
        let mut lease = pool.lease(4096).await.unwrap();
        group = Group::new(&mut lease)
            .leader(Leader::read_fixed(&src, 0))
            .member(Member::write_fixed(&dst, 0));
    }
    let _ = group.await;
}

fn main() {
    drop(copy);
}
