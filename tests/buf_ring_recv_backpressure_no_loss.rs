//! Acceptance (d): a buffer-select recv yields leases on buffers the kernel chose from a
//! `BufRing`; when every buffer is leased the ring is empty (the kernel answers `ENOBUFS`),
//! the recv waits, and releasing leases lets it go on, with no byte lost or reordered over a
//! 64 MiB TCP stream on 127.0.0.1 (checked byte by byte and by checksum).
//! Also: a recv dropped in flight gives its buffer back, and end of stream is `None`.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;

use ringleader::buf::{BufRing, Lease};
use ringleader::lease_ops::recv;

const TOTAL: usize = 64 << 20;
const ENTRIES: u16 = 16;
const BUF: usize = 16 << 10;

/// Byte `i` of the stream.
fn stream_byte(i: usize) -> u8 {
    let mut z = (i as u64 / 8).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    z.to_le_bytes()[i % 8]
}

fn fnv(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

const FNV0: u64 = 0xcbf2_9ce4_8422_2325;

/// A connected pair: the sending end, and the receiving end as the owner a recv holds.
fn connected_pair() -> (TcpStream, Rc<OwnedFd>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    (a, Rc::new(OwnedFd::from(b)))
}

#[test]
fn exhausted_ring_waits_and_loses_nothing_over_64_mib() {
    let (mut tx, rx) = connected_pair();
    let sender = std::thread::spawn(move || {
        let mut sum = FNV0;
        let mut chunk = vec![0u8; 256 << 10];
        let mut pos = 0;
        while pos < TOTAL {
            let n = chunk.len().min(TOTAL - pos);
            for (j, b) in chunk[..n].iter_mut().enumerate() {
                *b = stream_byte(pos + j);
            }
            tx.write_all(&chunk[..n]).unwrap();
            sum = fnv(sum, &chunk[..n]);
            pos += n;
        }
        drop(tx); // FIN: the receiver sees end of stream
        sum
    });

    let (received, sum, starved) = ringleader::block_on(async move {
        let ring = BufRing::new(ENTRIES, BUF).unwrap();
        let queue: Rc<RefCell<VecDeque<Lease>>> = Rc::default();
        let done = Rc::new(Cell::new(false));
        // The consumer releases leases only once every buffer is leased *and* the recv has
        // found the ring empty and is waiting: each cycle exhausts the ring for real.
        let consumer = {
            let (queue, done, ring) = (queue.clone(), done.clone(), ring.clone());
            ringleader::spawn(async move {
                let (mut pos, mut sum, mut seen) = (0usize, FNV0, 0u64);
                loop {
                    let full = queue.borrow().len() >= usize::from(ENTRIES);
                    if (full && ring.starved() > seen) || done.get() {
                        seen = ring.starved();
                        let batch: Vec<Lease> = queue.borrow_mut().drain(..).collect();
                        for lease in batch {
                            for (j, &b) in lease.iter().enumerate() {
                                assert_eq!(b, stream_byte(pos + j), "byte {} wrong", pos + j);
                            }
                            sum = fnv(sum, &lease);
                            pos += lease.len();
                        }
                        if done.get() && queue.borrow().is_empty() {
                            return (pos, sum);
                        }
                    }
                    ringleader::yield_now().await;
                }
            })
        };
        let mut bids_seen = [false; ENTRIES as usize];
        while let Some(lease) = recv(&rx, &ring).await.unwrap() {
            assert!(!lease.is_empty() && lease.len() <= BUF);
            assert_eq!(lease.buf_index(), None);
            bids_seen[lease.slot() as usize] = true;
            queue.borrow_mut().push_back(lease);
            assert!(ring.leased() <= usize::from(ENTRIES));
        }
        done.set(true);
        let (pos, sum) = consumer.await.unwrap();
        assert_eq!(ring.leased(), 0, "every buffer went back to the ring");
        assert!(
            bids_seen.iter().all(|&b| b),
            "the kernel chose every buffer at some point"
        );
        (pos, sum, ring.starved())
    });
    let sent = sender.join().unwrap();
    assert_eq!(received, TOTAL);
    assert_eq!(sum, sent, "checksum");
    // At least one exhaustion per full ring's worth of data.
    let cycles = (TOTAL / (usize::from(ENTRIES) * BUF)) as u64;
    assert!(
        starved >= cycles - 1,
        "the ring was exhausted {starved} times, expected >= {cycles} - 1"
    );
}

#[test]
fn dropped_recv_returns_its_buffer_and_eof_is_none() {
    let (mut tx, rx) = connected_pair();
    ringleader::block_on(async move {
        let ring = BufRing::new(2, 4096).unwrap();
        // In flight, no data yet: dropped, then cancelled.
        let r = recv(&rx, &ring);
        ringleader::yield_now().await;
        drop(r);
        // In flight with data that arrives after the drop was decided but before the
        // cancel ran: the buffer the kernel may have filled is handed back either way.
        let r = recv(&rx, &ring);
        ringleader::yield_now().await;
        tx.write_all(b"lost-or-not").unwrap();
        drop(r);
        for _ in 0..20 {
            ringleader::yield_now().await;
        }
        assert_eq!(ring.leased(), 0);
        // Drain whatever the cancelled recv did not take, then check that both buffers
        // are usable (the ring has all of them back).
        tx.write_all(b"0123456789").unwrap();
        let mut got = Vec::new();
        while !got.ends_with(b"0123456789") {
            let l = recv(&rx, &ring).await.unwrap().unwrap();
            got.extend_from_slice(&l);
        }
        let a = {
            tx.write_all(b"a").unwrap();
            recv(&rx, &ring).await.unwrap().unwrap()
        };
        tx.write_all(b"b").unwrap();
        let b = recv(&rx, &ring).await.unwrap().unwrap();
        assert_ne!(a.slot(), b.slot());
        assert_eq!((&a[..], &b[..]), (&b"a"[..], &b"b"[..]));
        drop((a, b));
        drop(tx);
        assert!(recv(&rx, &ring).await.unwrap().is_none(), "EOF");
        assert_eq!(ring.leased(), 0);
    });
}

#[test]
fn registered_ring_leases_write_fixed_from_the_kernel_chosen_buffer() {
    let (mut tx, rx) = connected_pair();
    ringleader::block_on(async move {
        let ring = BufRing::new_fixed(4, 4096).unwrap();
        let (pr, pw) = ringleader::pipe::pipe().await.unwrap();
        let pw = Rc::new(pw);
        for round in 0..10u8 {
            let msg = [b'a' + round; 100];
            tx.write_all(&msg).unwrap();
            let lease = recv(&rx, &ring).await.unwrap().unwrap();
            assert!(
                lease.buf_index().is_some(),
                "a registered ring's lease is fixed"
            );
            assert_eq!(&lease[..], &msg[..]);
            // WRITE_FIXED from inside the ring's registered memory, at the buffer the
            // kernel chose (any of the four, so the address is checked against the entry).
            let (r, lease) = ringleader::lease_ops::write_fixed(&pw, lease, u64::MAX).await;
            assert_eq!(r.unwrap(), 100);
            drop(lease);
            let mut back = [0u8; 100];
            // SAFETY: `back` is valid for 100 bytes of writes; the pipe holds 100 bytes.
            let n = unsafe { libc::read(pr.as_raw_fd(), back.as_mut_ptr().cast(), 100) };
            assert_eq!((n, back), (100, msg));
        }
        assert_eq!(ring.leased(), 0);
    });
}
