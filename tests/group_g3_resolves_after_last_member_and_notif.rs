//! G3: a group completes after its last member's last CQE — for `SEND_ZC`, the kernel's
//! notification — and delivers the leader's result then, with every member's. And the lease
//! slot is not released before that notification, even if the group is dropped.
//!
//! To hold a notification back, the receiver's window is filled first (a small receive
//! buffer nobody reads): the zero-copy send is then accepted into the sender's queue (its
//! result CQE arrives) but cannot be transmitted, so its pages stay referenced and the
//! notification waits until the receiver reads.

mod group_util;

use std::future::IntoFuture;
use std::os::fd::AsRawFd;
use std::pin::pin;

use futures::poll;
use group_util::{pipe, put, take, ticks, until};
use ringleader::buf::FixedPool;
use ringleader::group::{Group, Leader, Member};

#[test]
fn group_resolves_only_after_its_last_member() {
    ringleader::block_on(async {
        let pool = FixedPool::new(4096, 1).unwrap();
        let (in_r, in_w) = pipe();
        let (out_r, out_w) = pipe();
        let mut lease = pool.lease(64).await.unwrap();
        lease.extend_from_slice(b"data");
        let base = ringleader::runtime::stats();
        let group = Group::new(&mut lease)
            .leader(Leader::nop())
            .member(Member::write_fixed(&out_w, u64::MAX))
            .member(Member::read_fixed(&in_r, u64::MAX).at(32..64));
        let mut group = pin!(group.into_future());
        assert!(poll!(group.as_mut()).is_pending());
        until(
            || ringleader::runtime::stats().group_members_pushed == base.group_members_pushed + 2,
            "leader completed, members pushed",
        )
        .await;
        until(|| !take(&out_r).is_empty(), "the write member completed").await;
        for _ in 0..10 {
            ticks(1).await;
            assert!(
                poll!(group.as_mut()).is_pending(),
                "leader and one member done: the group still waits for the last member"
            );
        }
        put(&in_w, &[7; 32]);
        let out = group.await;
        assert_eq!(
            out.leader.unwrap(),
            0,
            "the leader's result, delivered last"
        );
        assert_eq!(out.members[0].as_ref().unwrap(), &4);
        assert_eq!(out.members[1].as_ref().unwrap(), &32);
    });
}

fn set_int(fd: i32, level: i32, opt: i32, v: i32) {
    // SAFETY: `v` is a valid int for the call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&v as *const i32).cast(),
            std::mem::size_of::<i32>() as u32,
        )
    };
    assert_eq!(r, 0, "setsockopt: {}", std::io::Error::last_os_error());
}

fn outq(fd: i32) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one int into `n`.
    assert_eq!(unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) }, 0);
    n as usize
}

/// A TCP connection whose receiver has a tiny, full window and a sender with a roomy queue.
fn stalled_connection() -> (ringleader::net::TcpStream, std::net::TcpStream, usize) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    set_int(l.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, 4096);
    let a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    set_int(a.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, 1 << 20);
    let (b, _) = l.accept().unwrap();
    // Fill the receiver's window; the rest waits in the sender's queue.
    let filler = vec![0u8; 64 << 10];
    let mut sent = 0;
    while sent < filler.len() {
        // SAFETY: `filler` is valid for its length; MSG_DONTWAIT never blocks.
        let n = unsafe {
            libc::send(
                a.as_raw_fd(),
                filler[sent..].as_ptr().cast(),
                filler.len() - sent,
                libc::MSG_DONTWAIT,
            )
        };
        assert!(
            n > 0,
            "filling the window: {}",
            std::io::Error::last_os_error()
        );
        sent += n as usize;
    }
    (ringleader::net::TcpStream::from_std(a).unwrap(), b, sent)
}

/// Read from `b` until `total` bytes have arrived; returns the last 4096.
fn drain(b: &mut std::net::TcpStream, total: usize) -> Vec<u8> {
    let mut all = group_util::read_n(b, total);
    all.split_off(total - 4096)
}

#[test]
fn send_zc_member_holds_group_and_slot_until_its_notification() {
    ringleader::block_on(async {
        let pool = FixedPool::new(4096, 1).unwrap();

        // 1. The group waits for the notification.
        let (tx, mut rx, filled) = stalled_connection();
        let mut lease = pool.lease(4096).await.unwrap();
        lease.extend_from_slice(&[0x5a; 4096]);
        let group = Group::new(&mut lease).member(Member::send_zc(&tx));
        let mut group = pin!(group.into_future());
        assert!(poll!(group.as_mut()).is_pending());
        until(|| outq(tx.as_raw_fd()) >= 4096, "the zero-copy send queued").await;
        for _ in 0..20 {
            ticks(1).await;
            assert!(
                poll!(group.as_mut()).is_pending(),
                "sent, but the pages are still referenced: no notification, no completion"
            );
        }
        assert_eq!(pool.available(), 0);
        let tail = std::thread::spawn(move || (drain(&mut rx, filled + 4096), rx));
        let out = group.await;
        assert!(!out.failed(), "{out:?}");
        assert_eq!(out.members[0].as_ref().unwrap(), &4096);
        let (tail, _rx) = tail.join().unwrap();
        assert_eq!(tail, vec![0x5a; 4096]);
        drop(lease);
        assert_eq!(pool.available(), 1);

        // 2. Dropping the group and the lease between the send's CQE and its notification:
        //    the slot stays out of the pool until the notification.
        let (tx, mut rx, filled) = stalled_connection();
        let mut lease = pool.lease(4096).await.unwrap();
        lease.extend_from_slice(&[0xa5; 4096]);
        {
            let group = Group::new(&mut lease).member(Member::send_zc(&tx));
            let mut group = pin!(group.into_future());
            assert!(poll!(group.as_mut()).is_pending());
            until(|| outq(tx.as_raw_fd()) >= 4096, "the zero-copy send queued").await;
            ticks(10).await;
        } // the group is dropped here
        drop(lease);
        for _ in 0..20 {
            ticks(1).await;
            assert_eq!(
                pool.available(),
                0,
                "slot held until the SEND_ZC notification"
            );
        }
        let tail = std::thread::spawn(move || drain(&mut rx, filled + 4096));
        until(|| pool.available() == 1, "notification released the slot").await;
        assert_eq!(
            tail.join().unwrap(),
            vec![0xa5; 4096],
            "the bytes sent were not reused"
        );
        drop(tx);
    });
}
