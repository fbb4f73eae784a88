//! G4: when the leader fails, no member is submitted, every member's result is `ECANCELED`,
//! and the group's error is the leader's. The failure is injected as a read on an fd that is
//! not open for reading (a pipe's write end): `EBADF`.

mod group_util;

use group_util::{TempPath, open_rw, pipe, take};
use ringleader::buf::FixedPool;
use ringleader::group::{Group, Leader, Member};

#[test]
fn failed_leader_cancels_every_member_unsubmitted() {
    ringleader::block_on(async {
        let pool = FixedPool::new(4096, 1).unwrap();
        let (_src_r, src_w) = pipe();
        let dsts: Vec<_> = (0..3).map(|_| pipe()).collect();
        let file = TempPath::new("g4");
        let dst_file = open_rw(&file).await;
        let mut lease = pool.lease(4096).await.unwrap();
        lease.extend_from_slice(b"untouched");
        let base = ringleader::runtime::stats();

        let out = Group::new(&mut lease)
            .leader(Leader::read_fixed(&src_w, u64::MAX))
            .members(dsts.iter().map(|(_, w)| Member::write_fixed(w, u64::MAX)))
            .member(Member::write(&dst_file, 0))
            .await;

        let after = ringleader::runtime::stats();
        assert_eq!(
            out.leader.as_ref().unwrap_err().raw_os_error(),
            Some(libc::EBADF)
        );
        assert_eq!(out.members.len(), 4);
        for m in &out.members {
            assert_eq!(
                m.as_ref().unwrap_err().raw_os_error(),
                Some(libc::ECANCELED)
            );
        }
        assert!(out.failed());
        assert_eq!(
            out.check().unwrap_err().raw_os_error(),
            Some(libc::EBADF),
            "the group's error is the leader's"
        );
        assert_eq!(
            after.sqes_pushed - base.sqes_pushed,
            1,
            "only the leader was pushed"
        );
        assert_eq!(after.group_members_pushed, base.group_members_pushed);
        for (r, _) in &dsts {
            assert!(take(r).is_empty());
        }
        assert!(file.read().is_empty());
        assert_eq!(
            &lease[..],
            b"untouched",
            "a failed leader leaves the lease as it was"
        );
        assert_eq!(
            after.slots_occupied, base.slots_occupied,
            "no op slot left behind"
        );
    });
}
