//! G6: a short leader (a read that hits end of file) gives members exactly the bytes it
//! produced; in zero-fill mode members get the full length, the unread tail zeroed, so the
//! slot's stale bytes from an earlier lease never leak.

mod group_util;

use group_util::{TempPath, open_rw};
use ringleader::buf::FixedPool;
use ringleader::fs::File;
use ringleader::group::{Group, Leader, Member};

const STALE: u8 = 0xaa;

/// Leave stale bytes in the pool's only slot, as a previous user would.
async fn dirty(pool: &FixedPool) {
    let mut old = pool.lease(4096).await.unwrap();
    old.extend_from_slice(&[STALE; 4096]);
}

#[test]
fn short_leader_gives_members_exactly_the_bytes_read() {
    ringleader::block_on(async {
        let pool = FixedPool::new(4096, 1).unwrap();
        let src = TempPath::with("g6-src", &[b'x'; 100]);
        let src = File::open(&src.0).await.unwrap();
        let (a, b) = (TempPath::new("g6-a"), TempPath::new("g6-b"));
        let (fa, fb) = (open_rw(&a).await, open_rw(&b).await);

        dirty(&pool).await;
        let mut lease = pool.lease(4096).await.unwrap();
        let out = Group::new(&mut lease)
            .leader(Leader::read_fixed(&src, 0))
            .member(Member::write_fixed(&fa, 0))
            .member(Member::write(&fb, 0).at(40..))
            .await;
        assert!(!out.failed(), "{out:?}");
        assert_eq!(*out.leader.as_ref().unwrap(), 100);
        assert_eq!(*out.members[0].as_ref().unwrap(), 100);
        assert_eq!(
            *out.members[1].as_ref().unwrap(),
            60,
            "bytes 40..100 of the 100 read"
        );
        assert_eq!(a.read(), vec![b'x'; 100]);
        assert_eq!(b.read(), vec![b'x'; 60]);
        assert_eq!(lease.len(), 100);
    });
}

#[test]
fn zero_fill_gives_full_length_with_zeroed_tail() {
    ringleader::block_on(async {
        let pool = FixedPool::new(4096, 1).unwrap();
        let src = TempPath::with("g6z-src", &[b'x'; 100]);
        let src = File::open(&src.0).await.unwrap();
        let a = TempPath::new("g6z-a");
        let fa = open_rw(&a).await;

        dirty(&pool).await;
        let mut lease = pool.lease(4096).await.unwrap();
        let out = Group::new(&mut lease)
            .leader(Leader::read_fixed(&src, 0))
            .member(Member::write_fixed(&fa, 0))
            .zero_fill()
            .await;
        assert!(!out.failed(), "{out:?}");
        assert_eq!(*out.leader.as_ref().unwrap(), 100, "the leader's own count");
        assert_eq!(*out.members[0].as_ref().unwrap(), 4096, "full length");
        let written = a.read();
        assert_eq!(written.len(), 4096);
        assert_eq!(&written[..100], &[b'x'; 100]);
        assert!(
            written[100..].iter().all(|&b| b == 0),
            "tail zeroed, no stale byte"
        );
        assert_eq!(lease.len(), 4096);
        assert!(lease[100..].iter().all(|&b| b == 0));
    });
}
