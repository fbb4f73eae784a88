//! G10: kernel-linked mode. The leader and its members go to the kernel as one
//! `IOSQE_IO_LINK` chain in one push; when the read is short the kernel breaks the chain
//! (the writes come back `ECANCELED` without running), and the runtime finishes the group
//! itself with the right lengths: no spurious failure.

mod group_util;

use group_util::{TempPath, open_rw};
use ringleader::buf::FixedPool;
use ringleader::fs::File;
use ringleader::group::{Group, Leader, Member};

#[test]
fn linked_chain_with_a_short_read_still_completes() {
    ringleader::block_on(async {
        let pool = FixedPool::new(4096, 1).unwrap();
        let src = TempPath::with("g10-src", &[b'q'; 100]);
        let src = File::open(&src.0).await.unwrap();
        let (a, b) = (TempPath::new("g10-a"), TempPath::new("g10-b"));
        let (fa, fb) = (open_rw(&a).await, open_rw(&b).await);
        let mut lease = pool.lease(4096).await.unwrap();

        let base = ringleader::runtime::stats();
        let out = Group::new(&mut lease)
            .leader(Leader::read_fixed(&src, 0))
            .member(Member::write_fixed(&fa, 0))
            .member(Member::write_fixed(&fb, 0))
            .linked()
            .await;
        let after = ringleader::runtime::stats();
        assert!(!out.failed(), "no spurious failure: {out:?}");
        assert_eq!(*out.leader.as_ref().unwrap(), 100);
        assert_eq!(*out.members[0].as_ref().unwrap(), 100);
        assert_eq!(*out.members[1].as_ref().unwrap(), 100);
        assert_eq!(a.read(), vec![b'q'; 100]);
        assert_eq!(b.read(), vec![b'q'; 100]);
        assert_eq!(lease.len(), 100);
        assert_eq!(
            after.sqes_pushed - base.sqes_pushed,
            3 + 2,
            "the chain of three, then the two writes the broken chain cancelled"
        );
        assert_eq!(
            after.group_members_pushed, base.group_members_pushed,
            "no driver batch"
        );
    });
}

#[test]
fn linked_chain_at_full_length_runs_in_the_kernel_alone() {
    ringleader::block_on(async {
        let pool = FixedPool::new(4096, 1).unwrap();
        let data: Vec<u8> = (0..4096u32).map(|i| i as u8).collect();
        let src = TempPath::with("g10f-src", &data);
        let src = File::open(&src.0).await.unwrap();
        let a = TempPath::new("g10f-a");
        let fa = open_rw(&a).await;
        let mut lease = pool.lease(4096).await.unwrap();

        let base = ringleader::runtime::stats();
        let out = Group::new(&mut lease)
            .leader(Leader::read_fixed(&src, 0))
            .member(Member::write_fixed(&fa, 0))
            .linked()
            .await;
        let after = ringleader::runtime::stats();
        assert!(!out.failed(), "{out:?}");
        assert_eq!(*out.members[0].as_ref().unwrap(), 4096);
        assert_eq!(a.read(), data);
        assert_eq!(
            after.sqes_pushed - base.sqes_pushed,
            2,
            "one chain, nothing resubmitted"
        );
        assert_eq!(
            after.submits - base.submits,
            1,
            "leader and member in one enter"
        );
    });
}

#[test]
fn linked_zero_fill_short_read_gives_full_length() {
    ringleader::block_on(async {
        let pool = FixedPool::new(4096, 1).unwrap();
        let mut old = pool.lease(4096).await.unwrap();
        old.extend_from_slice(&[0xee; 4096]);
        drop(old);
        let src = TempPath::with("g10z-src", &[b'q'; 10]);
        let src = File::open(&src.0).await.unwrap();
        let a = TempPath::new("g10z-a");
        let fa = open_rw(&a).await;
        let mut lease = pool.lease(4096).await.unwrap();
        let out = Group::new(&mut lease)
            .leader(Leader::read_fixed(&src, 0))
            .member(Member::write_fixed(&fa, 0))
            .zero_fill()
            .linked()
            .await;
        assert!(!out.failed(), "{out:?}");
        assert_eq!(*out.members[0].as_ref().unwrap(), 4096);
        let w = a.read();
        assert_eq!(&w[..10], &[b'q'; 10]);
        assert!(w[10..].iter().all(|&b| b == 0));
    });
}

#[test]
fn linked_mode_refuses_a_recv_leader() {
    ringleader::block_on(async {
        let pool = FixedPool::new(4096, 1).unwrap();
        let (sock, _peer) = group_util::tcp_pair();
        let mut lease = pool.lease(64).await.unwrap();
        let out = Group::new(&mut lease)
            .leader(Leader::recv(&sock))
            .linked()
            .await;
        assert_eq!(
            out.leader.unwrap_err().kind(),
            std::io::ErrorKind::InvalidInput
        );
    });
}
