//! G1: no member reaches the kernel before the leader's CQE is reaped, and all members go to
//! the kernel together, in one `io_uring_enter`, pushed by the driver (no task poll).

mod group_util;

use std::future::IntoFuture;
use std::pin::pin;

use futures::poll;
use group_util::{pipe, put, take, ticks};
use ringleader::buf::FixedPool;
use ringleader::group::{Group, Leader, Member};

#[test]
fn members_wait_for_the_leader_then_go_in_one_submit() {
    ringleader::block_on(async {
        let pool = FixedPool::new(4096, 1).unwrap();
        let (src_r, src_w) = pipe();
        let dsts: Vec<_> = (0..4).map(|_| pipe()).collect();
        let mut lease = pool.lease(4096).await.unwrap();
        let base = ringleader::runtime::stats();

        let group = Group::new(&mut lease)
            .leader(Leader::read_fixed(&src_r, u64::MAX))
            .members(dsts.iter().map(|(_, w)| Member::write_fixed(w, u64::MAX)));
        let mut group = pin!(group.into_future());
        // The leader waits on an empty pipe while the loop runs many ticks.
        for _ in 0..20 {
            assert!(poll!(group.as_mut()).is_pending());
            ticks(1).await;
        }
        let held = ringleader::runtime::stats();
        assert_eq!(
            held.sqes_pushed - base.sqes_pushed,
            1,
            "only the leader was pushed while it waits"
        );
        assert_eq!(held.group_members_pushed, base.group_members_pushed);
        assert!(
            held.submits > base.submits,
            "the leader did reach the kernel"
        );
        for (r, _) in &dsts {
            assert!(take(r).is_empty(), "no member ran");
        }

        put(&src_w, b"leader output");
        let out = group.await;
        let after = ringleader::runtime::stats();
        assert!(!out.failed(), "{out:?}");
        assert_eq!(out.leader.unwrap(), 13);
        assert_eq!(after.group_members_pushed - held.group_members_pushed, 4);
        assert_eq!(after.group_batches - held.group_batches, 1, "one batch");
        assert_eq!(
            after.sqes_pushed - held.sqes_pushed,
            4,
            "the members, nothing else"
        );
        assert_eq!(
            after.submits - held.submits,
            1,
            "the four members went to the kernel in one io_uring_enter"
        );
        for (r, _) in &dsts {
            assert_eq!(take(r), b"leader output");
        }
    });
}
