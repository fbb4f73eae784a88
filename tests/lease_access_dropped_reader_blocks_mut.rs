//! The lease access rule, readers: dropping a zero-copy send of a lease ends the shared
//! borrow at once, but the kernel keeps reading the lease's pages until its notification.
//! Until then the lease must refuse `&mut` access (reading stays allowed), so its owner
//! cannot change what the peer receives; after the notification it is the owner's again.
//! Shown for a plain `send_zc_lease` (dropped, or dropped by a panic unwinding through its
//! owner) and for a `Group`'s `send_zc` member, over a loopback TCP connection whose peer
//! does not read while the send is dropped.

mod group_util;

use std::future::IntoFuture;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};

use futures::poll;
use group_util::{ticks, until};
use ringleader::buf::FixedPool;
use ringleader::group::{Group, Member};
use ringleader::net::TcpStream;

const SIZE: usize = 1 << 20;

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

/// Bytes queued on a socket, not yet acknowledged by the peer (`SIOCOUTQ`).
fn outq(fd: i32) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one int into `n`.
    assert_eq!(unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) }, 0);
    n as usize
}

/// A loopback connection whose receiver has a small window: (ringleader sender, std peer).
fn connection() -> (TcpStream, std::net::TcpStream) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    set_int(l.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, 4096);
    let a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    (TcpStream::from_std(a).unwrap(), b)
}

#[derive(Clone, Copy, Debug)]
enum How {
    /// `TcpStream::send_zc_lease` on the lease.
    Plain,
    /// A `Group` on the lease with a `Member::send_zc`.
    Member,
    /// `send_zc_lease`, its future dropped by a panic unwinding through its owner.
    Panic,
}

fn dropped_send_zc_keeps_the_lease_from_its_owner(how: How) {
    ringleader::block_on(async {
        let pool = FixedPool::new(SIZE, 1).unwrap();
        let (tx, mut peer) = connection();
        let mut lease = pool.lease(SIZE).await.unwrap();
        lease.extend_from_slice(&vec![b'A'; SIZE]);

        // The send is in the kernel, its first bytes queued, the rest waiting for a peer that
        // does not read, when its future is dropped.
        match how {
            How::Plain => {
                let mut send = tx.send_zc_lease(&lease);
                assert!(poll!(&mut send).is_pending());
                until(|| outq(tx.as_raw_fd()) > 0, "the send started").await;
                ticks(20).await;
                drop(send);
            }
            How::Panic => {
                let mut send = tx.send_zc_lease(&lease);
                assert!(poll!(&mut send).is_pending());
                until(|| outq(tx.as_raw_fd()) > 0, "the send started").await;
                ticks(20).await;
                let task = catch_unwind(AssertUnwindSafe(move || {
                    let _send = send;
                    panic!("the task owning the send failed");
                }));
                assert!(task.is_err());
            }
            How::Member => {
                let mut group = Group::new(&mut lease)
                    .member(Member::send_zc(&tx))
                    .into_future();
                assert!(poll!(&mut group).is_pending());
                until(|| outq(tx.as_raw_fd()) > 0, "the send started").await;
                ticks(20).await;
                drop(group);
            }
        }

        // The borrow has ended; the kernel still reads the pages. Writing them now would
        // change what the peer receives: refused. (Reading them is fine.)
        match lease.try_as_mut_slice() {
            Ok(bytes) => bytes.fill(b'B'),
            Err(busy) => {
                assert_eq!((busy.slot(), busy.writers(), busy.readers()), (0, 0, 1));
                assert!(busy.for_write());
                assert_eq!(lease.readers(), 1);
                assert!(lease.iter().all(|&x| x == b'A'), "reading is allowed");
                assert!(lease.check_readable().is_ok() && lease.check_writable().is_err());
                assert!(lease.try_spare_mut().is_err());
                let fill = catch_unwind(AssertUnwindSafe(|| lease.fill(b'B')));
                let msg = *fill.unwrap_err().downcast::<String>().unwrap();
                assert!(
                    msg.contains("lease slot 0")
                        && msg.contains("1 kernel reader(s)")
                        && msg.contains("SEND_ZC: its notification"),
                    "{msg}"
                );
                // Nor may a new op write into it.
                let err = tx.recv_lease(&mut lease).await.unwrap_err();
                assert_eq!(err.kind(), std::io::ErrorKind::ResourceBusy, "{err}");
            }
        }

        // The peer reads everything the kernel sends; the notification follows.
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            peer.read_to_end(&mut got).unwrap();
            got
        });
        until(|| lease.readers() == 0, "the SEND_ZC notification").await;

        // Now the lease is the owner's again.
        lease.try_as_mut_slice().unwrap().fill(b'B');
        drop(tx);
        let got = reader.join().unwrap();
        assert!(!got.is_empty() && got.len() <= SIZE, "{} bytes", got.len());
        let b = got.iter().filter(|&&x| x == b'B').count();
        assert_eq!(
            b,
            0,
            "{how:?}: the peer received {} 'A' and {b} 'B' bytes: the owner changed the lease \
             while the kernel was sending it",
            got.len() - b
        );
        assert!(got.iter().all(|&x| x == b'A'));
    });
}

#[test]
fn owned_read_into_a_lease_a_dropped_send_still_reads_is_refused() {
    ringleader::block_on(async {
        let pool = FixedPool::new(SIZE, 1).unwrap();
        let (tx, mut peer) = connection();
        let mut lease = pool.lease(SIZE).await.unwrap();
        lease.extend_from_slice(&vec![b'A'; SIZE]);
        let mut send = tx.send_zc_lease(&lease);
        assert!(poll!(&mut send).is_pending());
        until(|| outq(tx.as_raw_fd()) > 0, "the send started").await;
        drop(send);
        assert_eq!(lease.readers(), 1);

        // An op that owns the lease and reads into it would change what the kernel sends:
        // it panics while being built, nothing submitted (unwinding drops the lease).
        let path = group_util::TempPath::with("lease-access-owned-read", &[b'B'; 4096]);
        let file = group_util::open_rw(&path).await;
        let watch = lease.keep_alive();
        let read = catch_unwind(AssertUnwindSafe(|| file.read_at(lease, 0)));
        let msg = *read.unwrap_err().downcast::<String>().unwrap();
        assert!(msg.contains("cannot be written now"), "{msg}");

        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            peer.read_to_end(&mut got).unwrap();
            got
        });
        until(|| watch.readers() == 0, "the SEND_ZC notification").await;
        drop((watch, tx));
        let got = reader.join().unwrap();
        assert!(!got.is_empty() && got.iter().all(|&x| x == b'A'));
        assert_eq!(pool.available(), 1);
    });
}

#[test]
fn dropped_send_zc_lease_keeps_the_lease_from_its_owner() {
    dropped_send_zc_keeps_the_lease_from_its_owner(How::Plain);
}

#[test]
fn dropped_send_zc_member_keeps_the_lease_from_its_owner() {
    dropped_send_zc_keeps_the_lease_from_its_owner(How::Member);
}

#[test]
fn send_zc_lease_dropped_by_a_panic_keeps_the_lease_from_its_owner() {
    dropped_send_zc_keeps_the_lease_from_its_owner(How::Panic);
}
