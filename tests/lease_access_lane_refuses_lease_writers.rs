//! Lanes order the sends of a stream socket; a group member that writes into the lease
//! (`Member::recv`, `Member::read_fixed`) has no place in one. Such a group is refused at
//! build time with an `InvalidInput` (`EINVAL`) error naming the member, nothing submitted,
//! like the G7 layout errors; a member that sends the lease in a lane is still accepted.

mod group_util;

use std::io::Write;

use group_util::{pipe, put, take, tcp_pair};
use ringleader::buf::FixedPool;
use ringleader::group::{Group, Leader, Member};
use ringleader::ops::Lane;

#[test]
fn lease_writing_member_in_a_lane_refuses_the_group() {
    ringleader::block_on(async {
        let pool = FixedPool::new(4096, 1).unwrap();
        let (sock, mut peer) = tcp_pair();
        let (r, w) = pipe();
        let lane = Lane::new();
        // Data for the members, so that a group wrongly accepted completes rather than
        // waiting.
        peer.write_all(b"for the recv member").unwrap();
        put(&w, b"for the read member");
        let mut lease = pool.lease(4096).await.unwrap();
        let base = ringleader::runtime::stats();

        for (name, member) in [
            ("recv", Member::recv(&sock).at(0..100)),
            ("read_fixed", Member::read_fixed(&r, u64::MAX).at(100..200)),
        ] {
            let out = Group::new(&mut lease)
                .member(Member::send(&sock).at(300..310).in_lane(&lane))
                .member(member.in_lane(&lane))
                .await;
            let err = out.leader.as_ref().unwrap_err();
            assert_eq!(
                err.kind(),
                std::io::ErrorKind::InvalidInput,
                "{name}: {err}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains("EINVAL")
                    && msg.contains("member 1")
                    && msg.contains(name)
                    && msg.contains("lane"),
                "{msg}"
            );
            assert!(
                out.members
                    .iter()
                    .all(|m| { m.as_ref().unwrap_err().raw_os_error() == Some(libc::ECANCELED) })
            );
        }
        assert_eq!(
            ringleader::runtime::stats().sqes_pushed,
            base.sqes_pushed,
            "nothing submitted"
        );
        assert!(!lane.is_failed());
        assert_eq!(take(&r), b"for the read member", "nothing read");

        // A member that reads the lease may join the lane.
        let (out_r, out_w) = pipe();
        put(&w, b"in the lane");
        let out = Group::new(&mut lease)
            .leader(Leader::read_fixed(&r, u64::MAX))
            .member(Member::write(&out_w, u64::MAX).in_lane(&lane))
            .await;
        assert_eq!(out.check().unwrap().members[0].as_ref().unwrap(), &11);
        assert_eq!(take(&out_r), b"in the lane");
    });
}
