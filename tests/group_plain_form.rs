//! The plain form: single ops on borrowed lease views, composed with `join!` — lifetimes
//! alone keep it right (the compile-fail half is `group_compile_fail.rs`).

mod group_util;

use group_util::{TempPath, open_rw, read_n, tcp_pair};
use ringleader::buf::FixedPool;
use ringleader::fs::File;
use ringleader::group::LeaseExt;

#[test]
fn read_then_fan_out_from_one_lease() {
    ringleader::block_on(async {
        let pool = FixedPool::new(4096, 1).unwrap();
        let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let src = TempPath::with("plain-src", &data);
        let src = File::open(&src.0).await.unwrap();
        let dst = TempPath::new("plain-dst");
        let dst_file = open_rw(&dst).await;
        let (sock, mut peer) = tcp_pair();

        let mut lease = pool.lease(4096).await.unwrap();
        assert_eq!(src.read_fixed_at(&mut lease, 0).await.unwrap(), 3000);
        assert_eq!(lease.len(), 3000);
        let (w, s, s2) = futures::join!(
            dst_file.write_fixed_at(&lease, 0),
            sock.send_zc_lease(&lease),
            sock.send_lease(lease.view(..100)),
        );
        assert_eq!((w.unwrap(), s.unwrap(), s2.unwrap()), (3000, 3000, 100));
        assert_eq!(dst.read(), data);
        let got = read_n(&mut peer, 3100);
        assert_eq!(&got[..3000], &data[..]);
        assert_eq!(&got[3000..], &data[..100]);
    });
}

#[test]
fn striped_read_into_split_views() {
    ringleader::block_on(async {
        let pool = FixedPool::new(4096, 1).unwrap();
        let data: Vec<u8> = (0..4096u32).map(|i| (i / 16) as u8).collect();
        let src = TempPath::with("plain-stripes", &data);
        let src = File::open(&src.0).await.unwrap();
        let mut lease = pool.lease(4096).await.unwrap();
        {
            let (head, tail) = lease.view_mut(..).split_at_mut(1000);
            let (a, b) = futures::join!(src.read_fixed_at(head, 0), src.read_fixed_at(tail, 1000));
            assert_eq!((a.unwrap(), b.unwrap()), (1000, 3096));
        }
        lease.set_len(4096);
        assert_eq!(&lease[..], &data[..]);
    });
}

#[test]
fn dropped_read_into_lease_settles_before_its_borrow_ends() {
    ringleader::block_on(async {
        let pool = FixedPool::new(4096, 1).unwrap();
        let (r, w) = group_util::pipe();
        let mut lease = pool.lease(64).await.unwrap();
        lease.extend_from_slice(b"canary");
        let base = ringleader::runtime::stats();
        let read = ringleader::group::read_fixed_at(&r, lease.view_mut(..), u64::MAX);
        // Let the read reach the kernel and park on the empty pipe.
        ringleader::yield_now().await;
        ringleader::yield_now().await;
        assert_eq!(
            ringleader::runtime::stats().ops_in_flight,
            base.ops_in_flight + 1
        );
        drop(read);
        // The drop returned only after the kernel finished with the op: nothing in flight,
        // so no kernel write can reach the lease now that the borrow has ended.
        assert_eq!(
            ringleader::runtime::stats().ops_in_flight,
            base.ops_in_flight
        );
        {
            use std::io::Write;
            use std::os::fd::AsRawFd;
            // SAFETY: a plain write(2) through a borrowed, open fd.
            let mut f = std::mem::ManuallyDrop::new(unsafe {
                <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(w.as_raw_fd())
            });
            f.write_all(b"late data").unwrap();
        }
        for _ in 0..5 {
            ringleader::yield_now().await;
        }
        assert_eq!(
            &lease[..],
            b"canary",
            "no write reached the lease after the drop"
        );
        drop(lease);
        assert_eq!(
            pool.available(),
            1,
            "the slot is back once the lease is gone"
        );
    });
}

#[test]
fn sendv_sends_several_leases_in_order_and_a_dropped_one_keeps_their_slots() {
    ringleader::block_on(async {
        let pool = FixedPool::new(256 << 10, 3).unwrap();
        let (sock, mut peer) = tcp_pair();
        let mut leases = Vec::new();
        for k in 0..3u8 {
            let mut l = pool.lease(256 << 10).await.unwrap();
            l.extend_from_slice(&vec![k + 1; 256 << 10]);
            leases.push(l);
        }
        // In order, in one op (the peer reads concurrently).
        let reader = std::thread::spawn(move || {
            let got = read_n(&mut peer, 3 * (256 << 10) - 10);
            (got, peer)
        });
        let views = [leases[0].view(10..), leases[1].view(..), leases[2].view(..)];
        let n = ringleader::group::sendv(&sock, views, libc::MSG_WAITALL)
            .await
            .unwrap();
        assert_eq!(n, 3 * (256 << 10) - 10);
        let (got, mut peer) = reader.join().unwrap();
        assert!(got[..(256 << 10) - 10].iter().all(|&b| b == 1));
        assert!(
            got[(256 << 10) - 10..(512 << 10) - 10]
                .iter()
                .all(|&b| b == 2)
        );
        assert!(got[(512 << 10) - 10..].iter().all(|&b| b == 3));

        // Nobody reads now: 24 MiB of sends stays in flight; drop the future and the leases.
        let views: Vec<_> = (0..32)
            .flat_map(|_| leases.iter().map(|l| l.view(..)))
            .collect();
        let op = ringleader::group::sendv(&sock, views, libc::MSG_WAITALL);
        ringleader::time::sleep(std::time::Duration::from_millis(20)).await;
        drop(op);
        drop(leases);
        assert_eq!(
            pool.available(),
            0,
            "the kernel may still read the slots: none may be reused"
        );
        // Drain the peer so the cancelled send finishes; then every slot comes back.
        peer.set_nonblocking(true).unwrap();
        let mut sink = vec![0u8; 1 << 20];
        for _ in 0..2000 {
            if pool.available() == 3 {
                break;
            }
            while matches!(std::io::Read::read(&mut peer, &mut sink), Ok(n) if n > 0) {}
            ringleader::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert_eq!(pool.available(), 3);
    });
}
