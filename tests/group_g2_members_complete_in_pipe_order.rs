//! G2: members run concurrently; the group imposes no order among them. Three members each
//! read a different pipe into their own stripe of a bare lease; they complete in the order
//! the pipes are written (last, first, middle), not the order they were listed. A runtime
//! that ran members in list order would leave the first member blocked on its empty pipe and
//! the second and third never submitted, and this test would time out waiting.

mod group_util;

use std::future::IntoFuture;
use std::pin::pin;

use futures::poll;
use group_util::{pending, pipe, put, until};
use ringleader::buf::FixedPool;
use ringleader::group::{Group, Leader, Member};

#[test]
fn members_complete_in_the_order_their_pipes_are_written() {
    ringleader::block_on(async {
        let pool = FixedPool::new(4096, 1).unwrap();
        let pipes: Vec<_> = (0..3).map(|_| pipe()).collect();
        let mut lease = pool.lease(48).await.unwrap();
        let base = ringleader::runtime::stats();

        let group = Group::new(&mut lease).leader(Leader::nop()).members(
            pipes
                .iter()
                .enumerate()
                .map(|(k, (r, _))| Member::read_fixed(r, u64::MAX).at(k * 16..(k + 1) * 16)),
        );
        let mut group = pin!(group.into_future());
        assert!(poll!(group.as_mut()).is_pending());
        let in_flight =
            |n: u64| move || ringleader::runtime::stats().ops_in_flight == base.ops_in_flight + n;
        until(in_flight(3), "the NOP leader done, three members in flight").await;

        // Write the pipes in the order 2, 0, 1; after each, exactly that member completes
        // while the others stay blocked.
        for (step, k) in [2usize, 0, 1].into_iter().enumerate() {
            put(&pipes[k].1, &[b'a' + k as u8; 16]);
            until(in_flight(2 - step as u64), "one more member completed").await;
            assert_eq!(pending(&pipes[k].0), 0, "member {k} consumed its pipe");
            for (j, (r, _)) in pipes.iter().enumerate() {
                if j != k {
                    assert!(pending(r) == 0, "no other pipe holds data");
                }
            }
            if step < 2 {
                assert!(
                    poll!(group.as_mut()).is_pending(),
                    "group waits for the rest"
                );
            }
        }
        let out = group.await;
        assert!(!out.failed(), "{out:?}");
        assert_eq!(
            out.members
                .iter()
                .map(|r| *r.as_ref().unwrap())
                .collect::<Vec<_>>(),
            [16; 3]
        );
        lease.set_len(48);
        assert_eq!(&lease[..16], &[b'a'; 16]);
        assert_eq!(&lease[16..32], &[b'b'; 16]);
        assert_eq!(&lease[32..], &[b'c'; 16]);
    });
}
