//! Lanes: sends of many tasks and group members on one TCP socket reach the peer whole and
//! never interleaved, chained in one push per burst; a failure or an in-flight drop fails
//! the lane, a queued drop does not.

mod group_util;

use std::io::Read;
use std::rc::Rc;
use std::thread;
use std::time::Duration;

use group_util::{TempPath, set_sndbuf, tcp_pair};
use ringleader::buf::FixedPool;
use ringleader::fs::File;
use ringleader::group::{Group, Leader, Member};
use ringleader::net::OwnedIo;
use ringleader::ops::Lane;

/// A frame: `id` (u32 LE), `len` (u32 LE), then `len` bytes of `byte(id, i)`.
fn byte(id: u32, i: usize) -> u8 {
    (id as u8) ^ (i as u8).wrapping_mul(31) ^ ((i >> 8) as u8)
}

fn frame(id: u32, len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + len);
    f.extend_from_slice(&id.to_le_bytes());
    f.extend_from_slice(&(len as u32).to_le_bytes());
    f.extend((0..len).map(|i| byte(id, i)));
    f
}

/// Read frames until EOF, checking every byte; slow enough that the sender's buffer fills.
fn read_frames(mut s: std::net::TcpStream) -> Vec<(u32, usize)> {
    let mut seen = Vec::new();
    let mut head = [0u8; 8];
    let mut n = 0usize;
    loop {
        match s.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return seen,
            Err(e) => panic!("read: {e}"),
        }
        let id = u32::from_le_bytes(head[..4].try_into().unwrap());
        let len = u32::from_le_bytes(head[4..].try_into().unwrap()) as usize;
        assert!(
            len <= 1 << 20,
            "frame {id}: bad length {len}: frames interleaved"
        );
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).unwrap();
        for (i, &b) in body.iter().enumerate() {
            assert_eq!(
                b,
                byte(id, i),
                "frame {id} byte {i}: another frame's bytes in the middle"
            );
        }
        seen.push((id, len));
        n += 1;
        if n % 16 == 0 {
            thread::sleep(Duration::from_millis(1));
        }
    }
}

#[test]
fn concurrent_sends_from_many_tasks_never_interleave() {
    let (sock, peer) = tcp_pair();
    let reader = thread::spawn(move || read_frames(peer));
    let sent = ringleader::block_on(async move {
        set_sndbuf(&sock, 16 << 10);
        let sock = Rc::new(sock);
        let lane = Lane::new();
        let before = ringleader::runtime::stats();
        let mut tasks = Vec::new();
        for id in 0..200u32 {
            let (sock, lane) = (Rc::clone(&sock), lane.clone());
            // Sizes from 1 byte to ~300 KiB: many sends meet a full socket buffer.
            let len = 1 + (id as usize * 7919) % (300 << 10);
            tasks.push(ringleader::spawn(async move {
                let f = frame(id, len);
                let (res, _) = sock.send_in(&lane, f).await;
                assert_eq!(res.unwrap(), 8 + len, "frame {id} sent whole");
                (id, len)
            }));
        }
        let mut sent = Vec::new();
        for t in tasks {
            sent.push(t.await.unwrap());
        }
        let after = ringleader::runtime::stats();
        assert_eq!(after.lane_ops - before.lane_ops, 200);
        assert!(
            after.lane_chains - before.lane_chains < 200,
            "queued sends are chained: {} chains for 200 sends",
            after.lane_chains - before.lane_chains
        );
        assert!(!lane.is_failed());
        sent
    });
    let seen = reader.join().unwrap();
    assert_eq!(seen.len(), sent.len());
    // Tasks queue in the order they first ran: the lane keeps that order on the wire.
    assert_eq!(seen, sent);
}

#[test]
fn group_members_in_a_lane_send_header_and_lease_whole_among_other_sends() {
    let data: Vec<u8> = (0..(256u32 << 10)).map(|i| byte(7, i as usize)).collect();
    let src = TempPath::with("lane-src", &data);
    let (sock, peer) = tcp_pair();
    let reader = thread::spawn(move || read_frames(peer));
    let groups = 24u32;
    ringleader::block_on(async move {
        set_sndbuf(&sock, 16 << 10);
        let sock = Rc::new(sock);
        let file = Rc::new(File::open(&src.0).await.unwrap());
        let pool = FixedPool::new(256 << 10, groups as usize).unwrap();
        let lane = Lane::new();
        let mut tasks = Vec::new();
        for g in 0..groups {
            let (gsock, glane, file, pool) = (
                Rc::clone(&sock),
                lane.clone(),
                Rc::clone(&file),
                pool.clone(),
            );
            tasks.push(ringleader::spawn(async move {
                // A group: read the file into a lease, then one member sends a header and
                // the lease in the lane. Frame id 7 + 256*g keeps `byte` matching the file.
                let id = 7 + 256 * g;
                let len = (64 << 10) + (g as usize * 4099) % (192 << 10);
                let mut lease = pool.lease(len).await.unwrap();
                let mut head = id.to_le_bytes().to_vec();
                head.extend_from_slice(&(len as u32).to_le_bytes());
                let out = Group::new(&mut lease)
                    .leader(Leader::read_fixed(&*file, 0))
                    .member(Member::send_prefixed(&*gsock, head).in_lane(&glane))
                    .await;
                assert!(!out.failed(), "{out:?}");
                assert_eq!(out.members[0].as_ref().unwrap(), &(8 + len));
            }));
            // Plain sends of other tasks go through the same lane between the groups.
            let (sock2, lane2) = (Rc::clone(&sock), lane.clone());
            tasks.push(ringleader::spawn(async move {
                let id = 1000 + g;
                let (res, _) = sock2.send_in(&lane2, frame(id, 3000 + g as usize)).await;
                res.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(!lane.is_failed());
    });
    let seen = reader.join().unwrap();
    assert_eq!(seen.len(), 2 * groups as usize, "every frame arrived whole");
}

#[test]
fn failed_send_fails_the_lane_and_cancels_what_follows() {
    let (sock, peer) = tcp_pair();
    ringleader::block_on(async move {
        let lane = Lane::new();
        // The peer is gone: the first send that notices fails (EPIPE/ECONNRESET).
        drop(peer);
        let mut first_err = None;
        for _ in 0..100 {
            let (res, _) = sock.send_in(&lane, vec![1u8; 64 << 10]).await;
            if let Err(e) = res {
                first_err = Some(e);
                break;
            }
            ringleader::time::sleep(Duration::from_millis(2)).await;
        }
        let e = first_err.expect("a send to a closed peer fails");
        assert_ne!(e.raw_os_error(), Some(libc::ECANCELED), "{e}");
        assert!(lane.is_failed());
        let (res, buf) = sock.send_in(&lane, vec![2u8; 10]).await;
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
        assert_eq!(buf.len(), 10, "the buffer comes back");
    });
}

#[test]
fn dropping_a_queued_op_keeps_the_lane_dropping_an_inflight_one_fails_it() {
    let (sock, mut peer) = tcp_pair();
    ringleader::block_on(async move {
        set_sndbuf(&sock, 16 << 10);
        let lane = Lane::new();
        let slots = ringleader::runtime::stats().slots_occupied;
        // A send far bigger than the socket buffers stays in flight while nobody reads.
        let big = sock.send_in(&lane, vec![9u8; 8 << 20]);
        // Let the ring push it; ops submitted now wait in the lane behind it.
        ringleader::time::sleep(Duration::from_millis(20)).await;
        let queued = sock.send_in(&lane, vec![8u8; 100]);
        let third = sock.send_in(&lane, vec![7u8; 100]);
        ringleader::time::sleep(Duration::from_millis(5)).await;
        drop(queued); // never submitted: the lane goes on
        assert!(!lane.is_failed());
        drop(big); // in flight: part of it may be on the wire
        assert!(lane.is_failed(), "an in-flight drop fails the lane");
        let (res, _) = third.await;
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
        drop(lane);
        // Every slot comes back once the cancelled send's CQE is reaped.
        for _ in 0..100 {
            if ringleader::runtime::stats().slots_occupied == slots {
                break;
            }
            ringleader::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(ringleader::runtime::stats().slots_occupied, slots);
        peer.set_nonblocking(true).unwrap();
        let mut sink = vec![0u8; 1 << 20];
        let mut got = 0;
        while let Ok(n) = peer.read(&mut sink) {
            if n == 0 {
                break;
            }
            assert!(
                sink[..n].iter().all(|&b| b == 9),
                "only the big send's bytes"
            );
            got += n;
        }
        assert!(got < 8 << 20);
    });
}
