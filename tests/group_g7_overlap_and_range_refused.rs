//! G7 at run time: group members that write into the lease need ranges no other member
//! touches, and every range must lie inside the lease. A violation refuses the group with a
//! clear `InvalidInput` (`EINVAL`) error naming the members, before anything is submitted.
//! (The compile-time half, for views, is in `group_compile_fail.rs`.)

mod group_util;

use group_util::pipe;
use ringleader::buf::FixedPool;
use ringleader::group::{Group, Leader, Member};

#[test]
fn overlapping_or_out_of_range_members_refuse_the_group() {
    ringleader::block_on(async {
        let pool = FixedPool::new(4096, 1).unwrap();
        let (r, w) = pipe();
        let mut lease = pool.lease(1024).await.unwrap();
        let base = ringleader::runtime::stats();

        // Two striped reads whose ranges overlap.
        let out = Group::new(&mut lease)
            .member(Member::read_fixed(&r, u64::MAX).at(0..600))
            .member(Member::read_fixed(&r, u64::MAX).at(512..1024))
            .await;
        let err = out.leader.as_ref().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        let msg = err.to_string();
        assert!(
            msg.contains("EINVAL") && msg.contains("member 0") && msg.contains("member 1"),
            "{msg}"
        );
        assert!(
            out.members
                .iter()
                .all(|m| m.as_ref().unwrap_err().raw_os_error() == Some(libc::ECANCELED))
        );

        // A reader of the lease overlapping a member that writes into it.
        let out = Group::new(&mut lease)
            .leader(Leader::nop())
            .member(Member::write_fixed(&w, u64::MAX).at(0..100))
            .member(Member::read_fixed(&r, u64::MAX).at(50..150))
            .await;
        assert_eq!(
            out.leader.unwrap_err().kind(),
            std::io::ErrorKind::InvalidInput
        );

        // Out of range.
        let out = Group::new(&mut lease)
            .leader(Leader::read_fixed(&r, u64::MAX))
            .member(Member::write_fixed(&w, u64::MAX).at(1000..1025))
            .await;
        let msg = out.leader.unwrap_err().to_string();
        assert!(msg.contains("1000..1025") && msg.contains("1024"), "{msg}");

        assert_eq!(
            ringleader::runtime::stats().sqes_pushed,
            base.sqes_pushed,
            "nothing submitted"
        );

        // Readers may share bytes; disjoint writers are fine.
        let mut lease = lease;
        lease.extend_from_slice(&[1; 8]);
        let out = Group::new(&mut lease)
            .member(Member::write_fixed(&w, u64::MAX).at(0..8))
            .member(Member::write_fixed(&w, u64::MAX).at(4..8))
            .await;
        assert!(!out.failed(), "{out:?}");
    });
}
