//! `time::timeout` around a socket read that never completes returns a timeout error, and
//! the cancelled read leaves nothing behind: the op slot count returns to its baseline and
//! the buffer is dropped once (at the recv's final CQE).

mod common;

use std::time::Duration;

use common::{CountedBuf, counter, get, until};
use ringleader::net::{OwnedIo, TcpListener, TcpStream, UdpSocket};

#[test]
fn timeout_on_a_silent_tcp_read_errors_and_frees_the_slot() {
    let drops = counter();
    let d = drops.clone();
    ringleader::block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let baseline = ringleader::runtime::stats().slots_occupied;

        let r = ringleader::time::timeout(
            Duration::from_millis(20),
            server.read_owned(CountedBuf::new(64, &d)),
        )
        .await;
        let Err(elapsed) = r else {
            panic!("the read completed although nothing was sent")
        };
        let err = std::io::Error::from(elapsed);
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);

        until(
            || ringleader::runtime::stats().slots_occupied == baseline,
            "the cancelled recv's slot is freed",
        )
        .await;
        assert_eq!(get(&d), 1, "the buffer is dropped exactly once");

        // The stream is still usable: the cancelled recv consumed nothing.
        client.write_all_owned(b"after".to_vec()).await.0.unwrap();
        let (res, buf) = server.read_exact_owned(Vec::with_capacity(5)).await;
        res.unwrap();
        assert_eq!(buf, b"after");
    });
    assert_eq!(get(&drops), 1);
}

#[test]
fn timeout_on_a_silent_udp_recv_from_errors_and_frees_the_slot() {
    ringleader::block_on(async {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let baseline = ringleader::runtime::stats().slots_occupied;
        let r = ringleader::time::timeout(
            Duration::from_millis(20),
            sock.recv_from(Vec::with_capacity(64)),
        )
        .await;
        assert!(r.is_err(), "nothing was sent: the recv times out");
        until(
            || ringleader::runtime::stats().slots_occupied == baseline,
            "the cancelled recvmsg's slot is freed",
        )
        .await;
    });
}
