//! A `writev_fixed` member writes exactly the bytes its leader produced in each of its
//! ranges (G6), however short the leader: ranges the leader did not reach (and empty ranges)
//! get no iovec, since the kernel refuses a zero-length iovec in `WRITEV_FIXED` with `EFAULT`
//! (which used to fail the member, G5, and write nothing).

mod group_util;

use group_util::{pipe, put, take};
use ringleader::buf::FixedPool;
use ringleader::group::{Group, Leader, Member};

#[test]
fn short_leaders_of_every_length_are_written_exactly() {
    ringleader::block_on(async {
        let pool = FixedPool::new(256, 1).unwrap();
        for n in [0usize, 10, 63, 64, 65, 100, 128, 129, 200, 256] {
            let (ir, iw) = pipe();
            let (or, ow) = pipe();
            let input: Vec<u8> = (0..n).map(|i| i as u8).collect();
            put(&iw, &input);
            drop(iw); // n == 0: the leader reads EOF.
            let mut lease = pool.lease(256).await.unwrap();
            lease.extend_from_slice(&[0xee; 256]);
            let out = Group::new(&mut lease)
                .leader(Leader::read_fixed(&ir, u64::MAX))
                .member(Member::writev_fixed(&ow, u64::MAX, [0..64, 128..256]))
                .await;
            assert_eq!(out.leader.as_ref().copied().unwrap(), n, "leader of {n}");
            let want: Vec<u8> = input
                .iter()
                .enumerate()
                .filter(|&(i, _)| !(64..128).contains(&i))
                .map(|(_, &b)| b)
                .collect();
            let wrote = out.members[0].as_ref().copied();
            assert_eq!(wrote.ok(), Some(want.len()), "member after a leader of {n}");
            assert_eq!(take(&or), want, "bytes after a leader of {n}");
        }
    });
}

#[test]
fn empty_ranges_are_skipped_not_refused() {
    ringleader::block_on(async {
        let pool = FixedPool::new(256, 1).unwrap();
        let (or, ow) = pipe();
        let mut lease = pool.lease(256).await.unwrap();
        lease.extend_from_slice(&[3u8; 256]);
        for (ranges, want) in [
            ([0..64, 128..128], 64),
            ([0..0, 128..130], 2),
            ([5..5, 9..9], 0),
        ] {
            let out = Group::new(&mut lease)
                .member(Member::writev_fixed(&ow, u64::MAX, ranges.clone()))
                .await;
            assert_eq!(
                out.members[0].as_ref().copied().ok(),
                Some(want),
                "ranges {ranges:?}"
            );
            assert_eq!(take(&or).len(), want, "ranges {ranges:?}");
        }
    });
}
