//! G6 in kernel-linked mode (G10): a zero-fill group whose short leader has no member after
//! it still zeroes the tail, so no byte of the slot's previous use shows through the lease.

use std::os::fd::OwnedFd;
use std::rc::Rc;

use ringleader::buf::FixedPool;
use ringleader::group::{Group, Leader};

#[test]
fn linked_zero_fill_with_no_member_zeroes_the_tail() {
    ringleader::block_on(async {
        let pool = FixedPool::new(4096, 1).unwrap();
        {
            let mut old = pool.lease(4096).await.unwrap();
            old.extend_from_slice(&[0xaa; 4096]);
        }
        let (r, w) = ringleader::pipe::pipe().await.unwrap();
        let (r, w): (Rc<OwnedFd>, Rc<OwnedFd>) = (Rc::new(r), Rc::new(w));
        ringleader::fd::write(&w, b"hello".to_vec(), u64::MAX)
            .await
            .0
            .unwrap();
        let mut lease = pool.lease(4096).await.unwrap();
        let out = Group::new(&mut lease)
            .leader(Leader::read_fixed(&r, u64::MAX))
            .zero_fill()
            .linked()
            .await;
        assert_eq!(out.leader.unwrap(), 5);
        assert_eq!(lease.len(), 4096);
        assert_eq!(&lease[..5], b"hello");
        let stale = lease[5..].iter().filter(|&&b| b != 0).count();
        assert_eq!(
            stale, 0,
            "stale bytes of the slot's previous use in the tail"
        );
    });
}
