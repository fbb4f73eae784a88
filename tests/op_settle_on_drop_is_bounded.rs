//! Dropping an op that waits for the kernel on drop (`settle_on_drop`, used by reads into
//! lent memory) is bounded: an op the kernel cannot cancel (a linked SQE that has not
//! started: `ASYNC_CANCEL` finds nothing) no longer blocks the core; its resources stay parked
//! in its slot and are released at its final CQE.

mod common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use common::{CountedBuf, counter, get, pipe, until};
use io_uring::{opcode, types};
use ringleader::ops::{Completable, Cqe, Lane, Op, Orphan};

/// An op's resources: a counted buffer and the fd its SQE names.
struct Io {
    _buf: CountedBuf,
    _fd: Rc<OwnedFd>,
}

impl Orphan for Io {}

impl Completable for Io {
    type Output = i32;
    fn complete(self, cqe: Cqe) -> i32 {
        cqe.result
    }
}

#[test]
fn dropping_a_settling_op_linked_behind_a_stuck_send_returns() {
    let (done_tx, done_rx) = mpsc::channel();
    let drops = counter();
    let d2 = drops.clone();
    // The scenario runs on its own thread: if the drop blocked forever, the test fails at the
    // deadline below instead of hanging.
    std::thread::spawn(move || {
        let drops = d2;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (peer, _) = l.accept().unwrap();
        let sock = Rc::new(OwnedFd::from(a));
        let (r, _w) = pipe();
        let r = Rc::new(r);
        ringleader::block_on(async {
            let lane = Lane::new();
            // A send far larger than the socket buffers, to a peer that never reads: it stays
            // in the kernel, waiting for room.
            let mut big = CountedBuf::new(64 << 20, &drops);
            big.bytes.resize(64 << 20, b'x');
            let entry = opcode::Send::new(
                types::Fd(sock.as_raw_fd()),
                big.bytes.as_ptr(),
                big.bytes.len() as u32,
            )
            // Retried by the kernel until every byte is sent: no short completion.
            .flags(libc::MSG_WAITALL)
            .build();
            // SAFETY: the SQE points into the Vec's heap memory owned by the op data; the
            // socket stays open through the `Rc` in the data.
            let send = unsafe {
                Op::submit_in(
                    &lane,
                    entry,
                    Io {
                        _buf: big,
                        _fd: Rc::clone(&sock),
                    },
                )
            };
            // A read linked behind it (same lane): it cannot start, nor be cancelled, before
            // the send ends.
            let mut buf = CountedBuf::new(4096, &drops);
            let entry = opcode::Read::new(types::Fd(r.as_raw_fd()), buf.bytes.as_mut_ptr(), 4096)
                .offset(u64::MAX)
                .build();
            // SAFETY: as above, for the read's buffer and the pipe.
            let read = unsafe {
                Op::submit_in(
                    &lane,
                    entry,
                    Io {
                        _buf: buf,
                        _fd: Rc::clone(&r),
                    },
                )
            }
            .settle_on_drop();
            // One tick: the chain goes to the kernel.
            ringleader::yield_now().await;
            ringleader::yield_now().await;
            let before = ringleader::runtime::stats();
            drop(read);
            let after = ringleader::runtime::stats();
            done_tx
                .send(after.settle_timeouts - before.settle_timeouts)
                .unwrap();
            // Unblock the send: the peer goes away, the send fails, the lane fails, and the
            // read completes without running; both buffers are then released.
            drop(peer);
            let _ = send.await;
            until(|| get(&drops) == 2, "both buffers released").await;
        });
        done_tx.send(u64::MAX).unwrap();
    });
    let timeouts = done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("dropping the read blocked the core (settle waited for an op it cannot cancel)");
    assert_eq!(timeouts, 1, "the bounded wait was counted");
    let end = done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the runtime went on after the drop");
    assert_eq!(end, u64::MAX);
    assert_eq!(get(&drops), 2);
}
