//! G5: one member fails (a write to a pipe's read end: `EBADF`); the others complete, the
//! group is marked failed, the leader's result is kept, each member's result is reported.
//! A group chained after the failed group does not start.

mod group_util;

use group_util::{TempPath, open_rw, pipe, read_n, take, tcp_pair};
use ringleader::buf::FixedPool;
use ringleader::fs::File;
use ringleader::group::{Group, Leader, Member};

#[test]
fn failed_member_fails_only_itself_and_stops_the_chain() {
    ringleader::block_on(async {
        let pool = FixedPool::new(4096, 1).unwrap();
        let src = TempPath::with("g5-src", b"block of the source file");
        let src = File::open(&src.0).await.unwrap();
        let (ok_r, ok_w) = pipe();
        let (bad_r, _bad_w) = pipe();
        let (sock, mut peer) = tcp_pair();
        let next = TempPath::new("g5-next");
        let next_file = open_rw(&next).await;
        let mut lease = pool.lease(4096).await.unwrap();

        let base = ringleader::runtime::stats();
        let outs = Group::new(&mut lease)
            .leader(Leader::read_fixed(&src, 0))
            .member(Member::write_fixed(&ok_w, u64::MAX))
            .member(Member::write_fixed(&bad_r, u64::MAX))
            .member(Member::send(&sock))
            .then(|lease| {
                Group::new(lease)
                    .leader(Leader::read_fixed(&src, 0))
                    .member(Member::write_fixed(&next_file, 0))
            })
            .await;
        let after = ringleader::runtime::stats();

        assert_eq!(outs.len(), 1, "the chained group did not start");
        let out = &outs[0];
        assert!(out.failed());
        assert_eq!(
            *out.leader.as_ref().unwrap(),
            24,
            "the leader's result is kept"
        );
        assert_eq!(*out.members[0].as_ref().unwrap(), 24);
        assert_eq!(
            out.members[1].as_ref().unwrap_err().raw_os_error(),
            Some(libc::EBADF)
        );
        assert_eq!(*out.members[2].as_ref().unwrap(), 24);
        assert_eq!(take(&ok_r), b"block of the source file");
        assert_eq!(read_n(&mut peer, 24), b"block of the source file");
        assert_eq!(
            after.sqes_pushed - base.sqes_pushed,
            4,
            "the first group's four ops, none of the second's"
        );
        assert!(next.read().is_empty());

        // The same rule with `?`: `check` gives the failed member's error.
        let first = Group::new(&mut lease)
            .leader(Leader::read_fixed(&src, 0))
            .member(Member::write_fixed(&bad_r, u64::MAX))
            .await;
        assert_eq!(first.check().unwrap_err().raw_os_error(), Some(libc::EBADF));
    });
}
