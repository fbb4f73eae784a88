//! A vectored member (`IORING_OP_WRITEV_FIXED`, Linux 6.15): several lease ranges written in
//! one op, each cut to the bytes a short leader produced (G6), in the default mode, in
//! zero-fill mode and in kernel-linked mode.

mod group_util;

use group_util::{TempPath, open_rw};
use ringleader::buf::FixedPool;
use ringleader::fs::File;
use ringleader::group::{Group, Leader, Member};

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 200) as u8 + 1).collect()
}

#[test]
fn vectored_member_follows_a_short_leader() {
    ringleader::block_on(async {
        let pool = FixedPool::new(4096, 1).unwrap();
        let src_data = data(100);
        let src = TempPath::with("vec-src", &src_data);
        let src = File::open(&src.0).await.unwrap();
        let ranges = [50..80, 0..10, 90..200];
        for (mode, linked, zero) in [
            ("default", false, false),
            ("linked", true, false),
            ("zero", false, true),
        ] {
            let dst = TempPath::new(&format!("vec-dst-{mode}"));
            let dst_file = open_rw(&dst).await;
            let mut lease = pool.lease(4096).await.unwrap();
            let mut group = Group::new(&mut lease)
                .leader(Leader::read_fixed(&src, 0))
                .member(Member::writev_fixed(&dst_file, 0, ranges.clone()));
            if linked {
                group = group.linked();
            }
            if zero {
                group = group.zero_fill();
            }
            let out = group.await;
            assert!(!out.failed(), "{mode}: {out:?}");
            let mut want = [&src_data[50..80], &src_data[0..10], &src_data[90..100]].concat();
            if zero {
                want.resize(30 + 10 + 110, 0);
            }
            assert_eq!(*out.members[0].as_ref().unwrap(), want.len(), "{mode}");
            assert_eq!(dst.read(), want, "{mode}");
        }
    });
}

#[test]
fn vectored_member_ranges_are_checked() {
    ringleader::block_on(async {
        let pool = FixedPool::new(4096, 1).unwrap();
        let (r, w) = group_util::pipe();
        let mut lease = pool.lease(100).await.unwrap();
        let out = Group::new(&mut lease)
            .member(Member::writev_fixed(&w, u64::MAX, [0..10, 90..101]))
            .await;
        assert_eq!(
            out.leader.unwrap_err().kind(),
            std::io::ErrorKind::InvalidInput
        );
        // A striped read inside a vectored reader's extent (its whole span) is refused too.
        let out = Group::new(&mut lease)
            .member(Member::writev_fixed(&w, u64::MAX, [0..10, 50..60]))
            .member(Member::read_fixed(&r, u64::MAX).at(20..30))
            .await;
        assert_eq!(
            out.leader.unwrap_err().kind(),
            std::io::ErrorKind::InvalidInput
        );
    });
}
