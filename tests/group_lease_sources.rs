//! Every lease source of docs/design.md §4 feeding members zero-copy: a `FixedPool` slot filled by
//! `READ_FIXED` from a file and from a socket, a `BufRing` buffer chosen by a buffer-select
//! recv (members `WRITE_FIXED`, `SEND_ZC` fixed and a plain `WRITE` of part of the buffer), a
//! `PipeLease` filled by `SPLICE` (members `TEE`, then a draining `SPLICE`), and a bare lease
//! whose members fill disjoint stripes.

mod group_util;

use std::os::fd::AsRawFd;
use std::rc::Rc;

use group_util::{TempPath, open_rw, pipe, put, read_n, take, tcp_pair};
use ringleader::buf::{BufRing, FixedPool, PipeLease};
use ringleader::fs::File;
use ringleader::group::{Group, Leader, Member, PipeGroup, RecvGroup};
use ringleader::net::UnixStream;

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + 3) as u8).collect()
}

#[test]
fn fixed_pool_slot_filled_from_a_file_and_from_a_socket() {
    ringleader::block_on(async {
        let pool = FixedPool::new(8192, 2).unwrap();
        let data = pattern(8192);
        let src = TempPath::with("src-file", &data);
        let src = File::open(&src.0).await.unwrap();
        let dst = TempPath::new("src-file-dst");
        let dst_file = open_rw(&dst).await;
        let (sock, mut peer) = tcp_pair();

        let mut lease = pool.lease(8192).await.unwrap();
        let out = Group::new(&mut lease)
            .leader(Leader::read_fixed(&src, 0))
            .member(Member::write_fixed(&dst_file, 0))
            .member(Member::send_zc(&sock))
            .await
            .check()
            .unwrap();
        assert_eq!(
            out.members
                .iter()
                .map(|r| *r.as_ref().unwrap())
                .collect::<Vec<_>>(),
            [8192; 2]
        );
        assert_eq!(dst.read(), data);
        assert_eq!(read_n(&mut peer, 8192), data);

        // From a socket: READ_FIXED at the socket's position.
        use std::io::Write;
        peer.write_all(b"from the wire").unwrap();
        let (r, w) = pipe();
        let out = Group::new(&mut lease)
            .leader(Leader::read_fixed(&sock, u64::MAX))
            .member(Member::write_fixed(&w, u64::MAX))
            .await;
        assert_eq!(*out.leader.as_ref().unwrap(), 13);
        assert_eq!(take(&r), b"from the wire");
        assert_eq!(&lease[..], b"from the wire");
    });
}

#[test]
fn buffer_ring_buffer_chosen_by_recv() {
    ringleader::block_on(async {
        let ring = BufRing::new_fixed(4, 4096).unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        let (sock, mut peer) = tcp_pair();
        let (out_r, out_w) = pipe();
        let dst = TempPath::new("ring-dst");
        let dst_file = open_rw(&dst).await;

        for round in 0..6u8 {
            let msg = vec![round; 1000 + usize::from(round)];
            put(&a, &msg);
            let (out, lease) = RecvGroup::new(&b, &ring)
                .member(Member::write_fixed(&dst_file, 0))
                .member(Member::send_zc(&sock))
                .member(Member::write(&out_w, u64::MAX).at(10..20))
                .await;
            let n = msg.len();
            assert!(!out.failed(), "{out:?}");
            assert_eq!(*out.leader.as_ref().unwrap(), n);
            assert_eq!(
                out.members
                    .iter()
                    .map(|r| *r.as_ref().unwrap())
                    .collect::<Vec<_>>(),
                [n, n, 10]
            );
            let lease = lease.unwrap();
            assert_eq!(&lease[..], &msg[..]);
            assert_eq!(
                ring.leased(),
                1,
                "the buffer stays out of the ring while leased"
            );
            drop(lease);
            assert_eq!(ring.leased(), 0, "and returns when the lease ends");
            assert_eq!(&dst.read()[..n], &msg[..]);
            assert_eq!(read_n(&mut peer, n), msg);
            assert_eq!(take(&out_r), &msg[10..20]);
        }
        // End of stream: members see 0 bytes, no buffer.
        drop(a);
        let (out, lease) = RecvGroup::new(&b, &ring)
            .member(Member::write(&out_w, u64::MAX))
            .await;
        assert_eq!(*out.leader.as_ref().unwrap(), 0);
        assert_eq!(*out.members[0].as_ref().unwrap(), 0);
        assert!(lease.is_none());
        assert_eq!(ring.leased(), 0);
    });
}

#[test]
fn buffer_ring_empty_waits_for_a_buffer() {
    ringleader::block_on(async {
        let ring = BufRing::new(1, 64).unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        let (out_r, out_w) = pipe();
        put(&a, b"first");
        let (_, held) = RecvGroup::new(&b, &ring)
            .member(Member::write(&out_w, u64::MAX))
            .await;
        let held = held.unwrap();
        put(&a, b"second");
        let second = ringleader::spawn(
            RecvGroup::new(&b, &ring)
                .member(Member::write(&out_w, u64::MAX))
                .into_future(),
        );
        group_util::until(
            || ring.starved() > 0,
            "the second group found the ring empty",
        )
        .await;
        drop(held);
        let (out, lease) = second.await.unwrap();
        assert!(!out.failed(), "ENOBUFS never reaches the caller: {out:?}");
        assert_eq!(&lease.unwrap()[..], b"second");
        assert_eq!(take(&out_r), b"firstsecond");
    });
}

#[test]
fn pipe_lease_filled_by_splice_teed_and_drained() {
    ringleader::block_on(async {
        let data = pattern(50_000);
        let src = TempPath::with("pipe-src", &data);
        let src = File::open(&src.0).await.unwrap();
        let dst = TempPath::new("pipe-dst");
        let dst_file = open_rw(&dst).await;
        let mut pipe_lease = PipeLease::new(1 << 16).unwrap();
        let tees: Vec<_> = (0..2).map(|_| pipe()).collect();
        for (r, _) in &tees {
            // Room for the whole block in each destination pipe.
            // SAFETY: F_SETPIPE_SZ takes an int.
            unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 16) };
        }
        let out = PipeGroup::new(&mut pipe_lease)
            .splice_from(&src, Some(0), 1 << 16)
            .tee_to(&tees[0].1)
            .tee_to(&tees[1].1)
            .drain_to(&dst_file, Some(0))
            .await;
        assert!(!out.failed(), "{out:?}");
        assert_eq!(*out.leader.as_ref().unwrap(), data.len());
        for r in &out.members {
            assert_eq!(*r.as_ref().unwrap(), data.len());
        }
        assert_eq!(pipe_lease.len().unwrap(), 0, "drained after the tees");
        for (r, _) in &tees {
            assert_eq!(take(r), data);
        }
        assert_eq!(dst.read(), data);
    });
}

#[test]
fn bare_lease_filled_by_disjoint_striped_reads() {
    ringleader::block_on(async {
        let pool = FixedPool::new(16384, 1).unwrap();
        let data = pattern(16384);
        let src = TempPath::with("stripes", &data);
        let src = Rc::new(File::open(&src.0).await.unwrap());
        let mut lease = pool.lease(16384).await.unwrap();
        let out = Group::new(&mut lease)
            .leader(Leader::nop())
            .members((0..4).map(|k| {
                Member::read_fixed(src.as_ref(), (k * 4096) as u64).at(k * 4096..(k + 1) * 4096)
            }))
            .await;
        assert!(!out.failed(), "{out:?}");
        lease.set_len(16384);
        assert_eq!(&lease[..], &data[..]);
    });
}
