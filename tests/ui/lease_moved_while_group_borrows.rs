// The lease cannot be moved (here: handed to another task) while a group borrows it.
use ringleader::buf::{FixedPool, Lease};
use ringleader::fs::File;
use ringleader::group::{Group, Leader, Member};

fn keep(_lease: Lease) {}

async fn copy(pool: FixedPool, src: File, dst: File) {
    let mut lease = pool.lease(4096).await.unwrap();
    let group = Group::new(&mut lease)
        .leader(Leader::read_fixed(&src, 0))
        .member(Member::write_fixed(&dst, 0));
    keep(lease);
    let _ = group.await;
}

fn main() {
    drop(copy);
}
