// The lease cannot be read while a group, which may be writing into it, borrows it.
use ringleader::buf::FixedPool;
use ringleader::fs::File;
use ringleader::group::{Group, Leader, Member};

async fn peek(pool: FixedPool, src: File, dst: File) {
    let mut lease = pool.lease(4096).await.unwrap();
    let group = Group::new(&mut lease)
        .leader(Leader::read_fixed(&src, 0))
        .member(Member::write_fixed(&dst, 0));
    let first = lease[0];
    let _ = group.await;
    drop(first);
}

fn main() {
    drop(peek);
}
