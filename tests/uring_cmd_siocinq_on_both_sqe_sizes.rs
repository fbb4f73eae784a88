//! `URING_CMD` works on rings of 64-byte and of 128-byte SQEs: `SOCKET_URING_OP_SIOCINQ`
//! (Linux 6.7) on a TCP socket answers the bytes queued, as `ioctl(FIONREAD)` does; a command
//! that needs the upper half of a 128-byte SQE runs on a 128-byte ring and is refused with
//! `EINVAL` on a 64-byte one; and the ordinary ops (reads, writes, a group) work on both.

use std::io::Write;
use std::os::fd::AsRawFd;

use ringleader::Builder;
use ringleader::net::{OwnedIo, TcpStream};
use ringleader::ops::uring_cmd;

const SOCKET_URING_OP_SIOCINQ: u32 = 0;

fn fionread(fd: i32) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int into `n`, which lives across the call.
    let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    assert_eq!(r, 0, "FIONREAD: {}", std::io::Error::last_os_error());
    n
}

fn run(sqe128: bool) {
    let rt = Builder::new().sqe128(sqe128).build_local().expect("ring");
    assert_eq!(rt.setup_info().sqe128, sqe128);
    rt.block_on(async move {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let server = TcpStream::from_std(l.accept().unwrap().0).unwrap();

        let (empty, ()) = uring_cmd(&server, SOCKET_URING_OP_SIOCINQ, &[]).await;
        match empty {
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                eprintln!("skipped: this kernel has no socket URING_CMD (Linux 6.7+)");
                return;
            }
            r => assert_eq!(r.unwrap(), 0, "nothing queued yet"),
        }

        client.write_all(&[7u8; 1000]).unwrap();
        while fionread(server.as_raw_fd()) < 1000 {
            std::thread::yield_now();
        }
        // 16 command bytes: a 64-byte SQE, on either ring.
        let (n, ()) = uring_cmd(&server, SOCKET_URING_OP_SIOCINQ, &[1u8; 16]).await;
        assert_eq!(n.unwrap(), 1000);

        // 80 command bytes: only a 128-byte SQE holds them.
        let (wide, ()) = uring_cmd(&server, SOCKET_URING_OP_SIOCINQ, &[1u8; 80]).await;
        if sqe128 {
            assert_eq!(wide.unwrap(), 1000, "SIOCINQ ignores its command bytes");
        } else {
            assert_eq!(wide.unwrap_err().raw_os_error(), Some(libc::EINVAL));
        }
        // 80 bytes whose upper part is zero: the same SQE narrowed, fine on both.
        let mut zero_tail = [0u8; 80];
        zero_tail[..16].fill(3);
        let (n, ()) = uring_cmd(&server, SOCKET_URING_OP_SIOCINQ, &zero_tail).await;
        assert_eq!(n.unwrap(), 1000);

        // The ordinary ops go through the same ring (widened on a 128-byte one).
        let (r, buf) = server.read_owned(vec![0u8; 1000]).await;
        assert_eq!(r.unwrap(), 1000);
        assert!(buf.iter().all(|&b| b == 7));
        let (after, ()) = uring_cmd(&server, SOCKET_URING_OP_SIOCINQ, &[]).await;
        assert_eq!(after.unwrap(), 0, "the read consumed what SIOCINQ counted");
        let (w, _) = server.write_owned(b"pong".to_vec()).await;
        assert_eq!(w.unwrap(), 4);
        for _ in 0..1000 {
            ringleader::ops::nop().await.unwrap();
        }
    });
}

#[test]
fn siocinq_on_64_byte_sqes() {
    run(false);
}

#[test]
fn siocinq_on_128_byte_sqes() {
    run(true);
}

#[test]
fn many_ops_and_a_full_sq_on_128_byte_sqes() {
    // An SQ of 8 entries and 2000 ops in flight: the SQ-full path on 128-byte SQEs, and a
    // group's all-or-nothing member push.
    let rt = Builder::new()
        .sqe128(true)
        .entries(8)
        .build_local()
        .expect("ring");
    rt.block_on(async {
        let ops: Vec<_> = (0..2000).map(|_| ringleader::ops::nop()).collect();
        for op in ops {
            op.await.unwrap();
        }
        let pool = ringleader::buf::FixedPool::new(4096, 1).unwrap();
        let lease = pool.lease(4096).await.unwrap();
        let (r, w) = ringleader::pipe::pipe().await.unwrap();
        let (r, w) = (std::rc::Rc::new(r), std::rc::Rc::new(w));
        let (n, _) = ringleader::fd::write(&w, vec![5u8; 4096], u64::MAX).await;
        assert_eq!(n.unwrap(), 4096);
        let (n, lease) = ringleader::lease_ops::read_fixed(&r, lease, u64::MAX).await;
        assert_eq!(n.unwrap(), 4096);
        assert!(lease.iter().all(|&b| b == 5));
    });
}
