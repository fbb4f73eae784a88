//! Lane frames: a protocol frame sent as several ops (a head now, data later from a lease a
//! read is still filling, or a second send after the first completed) reaches the peer
//! whole, even while other tasks and group members send on the same socket, the socket
//! buffer is full (sends resumed part by part) and leases are scarce.
//!
//! This is the shape of the NBD server's reply stream (issue 13): its writer sent a reply's
//! head, then its data, as two sends in the connection's lane, and a READ group's reply,
//! entering the lane when its read completed, went between them.

mod group_util;

use std::future::IntoFuture;
use std::io::Read;
use std::rc::Rc;
use std::thread;
use std::time::Duration;

use group_util::{TempPath, pipe, set_sndbuf, tcp_pair, ticks};
use ringleader::buf::FixedPool;
use ringleader::fs::File;
use ringleader::group::{Group, Leader, Member};
use ringleader::net::{OwnedIo, TcpStream};
use ringleader::ops::Lane;

const MAGIC: u32 = 0xf4a3_e001;
const HEAD: usize = 16;
const FILE_LEN: usize = 4 << 20;
const MAX_BODY: usize = 256 << 10;

/// The file the frames' bodies come from (deterministic bytes).
fn file_bytes() -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..FILE_LEN / 8)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect()
}

/// A frame's head: magic, id, the body's offset in the file, the body's length.
fn head(id: u32, off: usize, len: usize) -> Vec<u8> {
    [MAGIC, id, off as u32, len as u32]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

/// Frame `id`'s body: where in the file, how long (1 byte to 256 KiB).
fn body_of(id: u32) -> (usize, usize) {
    let len = 1 + (id as usize * 7919) % MAX_BODY;
    let off = (id as usize * 104_729) % (FILE_LEN - MAX_BODY);
    (off, len)
}

/// Read frames until end of stream, checking each is whole; slow enough that the sender's
/// buffer fills. Returns the ids in arrival order.
fn read_frames(mut s: std::net::TcpStream, file: &[u8]) -> Vec<u32> {
    let mut seen = Vec::new();
    let mut h = [0u8; HEAD];
    loop {
        match s.read_exact(&mut h) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return seen,
            Err(e) => panic!("read: {e}"),
        }
        let word = |i: usize| u32::from_le_bytes(h[4 * i..4 * i + 4].try_into().unwrap());
        let last = seen.last().copied();
        assert_eq!(
            word(0),
            MAGIC,
            "after {} whole frames (the last: {last:?}): no frame head here, another \
             frame's bytes came between a frame's head and its body",
            seen.len()
        );
        let (id, off, len) = (word(1), word(2) as usize, word(3) as usize);
        assert_eq!((off, len), body_of(id), "frame {id}: its own head");
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).unwrap();
        if body[..] != file[off..off + len] {
            let at = body.iter().zip(&file[off..]).position(|(a, b)| a != b);
            panic!(
                "frame {id}: body differs from byte {at:?} of {len}: another frame's bytes \
                 in the middle"
            );
        }
        seen.push(id);
        if seen.len() % 16 == 0 {
            thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Four producers on one socket and lane, 40 frames each, spawned interleaved:
///
/// - a frame whose head is sent at once and whose body is read into a lease (waited for,
///   4 slots among 80 readers) by a group whose member sends it when the read completes;
/// - a frame sent as two sends, the second after the first completed and a few ticks;
/// - a frame that is one group: head and lease in one `SENDMSG`;
/// - a frame that is one plain send.
#[test]
fn frames_of_several_ops_arrive_whole_among_other_sends() {
    let bytes = file_bytes();
    let src = TempPath::with("lane-frames-src", &bytes);
    let (sock, peer) = tcp_pair();
    let reader = thread::spawn(move || read_frames(peer, &bytes));
    let per_kind = 40u32;
    let sent = ringleader::block_on(async move {
        set_sndbuf(&sock, 64 << 10);
        let sock = Rc::new(sock);
        let file = Rc::new(File::open(&src.0).await.unwrap());
        let pool = FixedPool::new(MAX_BODY, 4).unwrap();
        let lane = Lane::new();
        let mut tasks = Vec::new();
        for i in 0..per_kind {
            for kind in 0..4u32 {
                let id = i * 4 + kind;
                let (sock, lane, file, pool) = (
                    Rc::clone(&sock),
                    lane.clone(),
                    Rc::clone(&file),
                    pool.clone(),
                );
                tasks.push(ringleader::spawn(async move {
                    let (off, len) = body_of(id);
                    match kind {
                        0 => head_then_waiting_lease(&sock, &lane, &file, &pool, id).await,
                        1 => {
                            let frame = lane.frame();
                            let (res, _) = sock.send_in(&frame, head(id, off, len)).await;
                            assert_eq!(res.unwrap(), HEAD);
                            ticks(3).await;
                            let body = src_bytes(&file, off, len).await;
                            let (res, _) = sock.send_in(&frame, body).await;
                            assert_eq!(res.unwrap(), len);
                        }
                        2 => {
                            let mut lease = pool.lease(len).await.unwrap();
                            let out = Group::new(&mut lease)
                                .leader(Leader::read_fixed(&*file, off as u64))
                                .member(
                                    Member::send_prefixed(&*sock, head(id, off, len))
                                        .in_lane(&lane),
                                )
                                .await;
                            assert!(!out.failed(), "{out:?}");
                            assert_eq!(out.members[0].as_ref().unwrap(), &(HEAD + len));
                        }
                        _ => {
                            let mut frame = head(id, off, len);
                            frame.extend_from_slice(&src_bytes(&file, off, len).await);
                            let (res, _) = sock.send_in(&lane, frame).await;
                            assert_eq!(res.unwrap(), HEAD + len);
                        }
                    }
                    id
                }));
            }
        }
        let mut sent = Vec::new();
        for t in tasks {
            sent.push(t.await.unwrap());
        }
        assert!(!lane.is_failed());
        sent
    });
    let mut seen = reader.join().unwrap();
    seen.sort_unstable();
    let mut sent = sent;
    sent.sort_unstable();
    assert_eq!(seen, sent, "every frame arrived, once");
}

/// The NBD writer's shape: the head goes into the frame now; the body follows from a lease
/// once a read has filled it. The lease is taken before the frame is opened: a frame must
/// not wait for what ops queued behind it hold.
async fn head_then_waiting_lease(
    sock: &Rc<TcpStream>,
    lane: &Lane,
    file: &File,
    pool: &FixedPool,
    id: u32,
) {
    let (off, len) = body_of(id);
    let mut lease = pool.lease(len).await.unwrap();
    let frame = lane.frame();
    let head_sent = sock.send_in(&frame, head(id, off, len));
    let body_sent = Group::new(&mut lease)
        .leader(Leader::read_fixed(file, off as u64))
        .member(Member::send(&**sock).in_lane(&frame))
        .into_future();
    // The member holds the frame open until its read completes and it takes its place.
    drop(frame);
    let ((res, _), out) = futures::join!(head_sent, body_sent);
    assert_eq!(res.unwrap(), HEAD);
    assert!(!out.failed(), "{out:?}");
    assert_eq!(out.members[0].as_ref().unwrap(), &len);
}

async fn src_bytes(file: &File, off: usize, len: usize) -> Vec<u8> {
    let (res, buf) = file.read_exact_at(vec![0u8; len], off as u64).await;
    res.unwrap();
    buf
}

/// An op submitted into the lane after a frame was made waits for the frame to close, even
/// when the frame's own ops come later; then everything goes in frame order. A frame made
/// in a frame takes its place there.
#[test]
fn later_ops_wait_for_an_open_frame() {
    let (sock, mut peer) = tcp_pair();
    peer.set_nonblocking(true).unwrap();
    ringleader::block_on(async move {
        let lane = Lane::new();
        let first = sock.send_in(&lane, b"0".to_vec());
        let frame = lane.frame();
        let after = sock.send_in(&lane, b"C".to_vec());
        let a = sock.send_in(&frame, b"A".to_vec());
        ticks(10).await;
        assert_eq!(
            arrived(&mut peer),
            b"0A",
            "the frame's op at its place; C waits"
        );
        let inner = frame.frame();
        let a2 = sock.send_in(&frame, b"a".to_vec());
        ticks(10).await;
        assert_eq!(arrived(&mut peer), b"", "a waits for the inner frame");
        let b = sock.send_in(&inner, b"B".to_vec());
        ticks(10).await;
        assert_eq!(arrived(&mut peer), b"B");
        drop(inner);
        ticks(10).await;
        assert_eq!(arrived(&mut peer), b"a", "C still waits for the frame");
        drop(frame);
        let (r0, rc, ra, ra2, rb) = futures::join!(first, after, a, a2, b);
        for (res, _) in [r0, rc, ra, ra2, rb] {
            assert_eq!(res.unwrap(), 1);
        }
        assert_eq!(arrived(&mut peer), b"C");
        assert!(!lane.is_failed());
    });
}

/// What the peer has received so far (waiting briefly for bytes already sent to land).
fn arrived(peer: &mut std::net::TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        match peer.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return out,
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// A frame whose member waits for a read that never comes holds the lane; dropping that
/// group closes the frame and the lane goes on. In a failed lane a frame's ops complete with
/// `ECANCELED`.
#[test]
fn a_frame_closes_when_its_waiting_member_is_dropped_and_fails_with_its_lane() {
    let (sock, mut peer) = tcp_pair();
    peer.set_nonblocking(true).unwrap();
    ringleader::block_on(async move {
        let (r, _w) = pipe();
        let pool = FixedPool::new(64 << 10, 1).unwrap();
        let lane = Lane::new();
        let mut lease = pool.lease(64 << 10).await.unwrap();
        let frame = lane.frame();
        let mut group = Box::pin(
            Group::new(&mut lease)
                .leader(Leader::read_fixed(&r, u64::MAX))
                .member(Member::send(&sock).in_lane(&frame))
                .into_future(),
        );
        drop(frame);
        // Submitted: the member waits for a read of an empty pipe, and holds the frame open.
        assert!(futures::poll!(group.as_mut()).is_pending());
        let next = sock.send_in(&lane, b"next".to_vec());
        ticks(10).await;
        assert_eq!(arrived(&mut peer), b"", "the lane waits for the open frame");
        drop(group);
        let (res, _) = next.await;
        assert_eq!(res.unwrap(), 4, "the lane went on");
        ticks(10).await;
        assert_eq!(arrived(&mut peer), b"next");

        // A failed lane: a frame made now, and its ops, are cancelled without reaching the
        // kernel.
        drop(peer);
        let mut failed = false;
        for _ in 0..100 {
            let (res, _) = sock.send_in(&lane, vec![1u8; 64 << 10]).await;
            if res.is_err() {
                failed = true;
                break;
            }
            ringleader::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(failed && lane.is_failed());
        let frame = lane.frame();
        assert!(frame.is_failed());
        let (res, _) = sock.send_in(&frame, b"x".to_vec()).await;
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    });
}
