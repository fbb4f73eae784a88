//! Acceptance f for net and pipe: many ops (including dropped and cancelled ones, and fds the
//! kernel hands to ops whose futures are gone) leave the process's fd count unchanged.
//!
//! One test in this file, so that other tests' threads do not disturb `/proc/self/fd`.

mod common;

use std::io::Read;
use std::net::Shutdown;
use std::time::Duration;

use common::{fd_count, until};
use futures::StreamExt;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use ringleader::net::{OwnedIo, TcpListener, TcpStream, UdpSocket, UnixStream};

/// Connections the kernel accepts for a dropped `incoming()` stream are closed, not leaked:
/// their clients read end-of-stream while the listener is still open.
async fn dropped_incoming_closes_what_it_accepted() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let baseline = ringleader::runtime::stats().slots_occupied;
    let clients: Vec<std::net::TcpStream> = (0..8)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    // Armed and dropped in the same tick: the accept runs first (taking all 8 queued
    // connections), then the cancel; every fd arrives at the orphaned op.
    drop(listener.incoming());
    until(
        || ringleader::runtime::stats().slots_occupied == baseline,
        "the cancelled multishot accept completes",
    )
    .await;
    for mut c in clients {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 1];
        assert_eq!(
            c.read(&mut b).unwrap(),
            0,
            "accepted, then closed by the orphan"
        );
    }
    drop(listener);
}

async fn tcp_ops() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut incoming = listener.incoming();
    for i in 0..50u32 {
        let client = TcpStream::connect(addr).await.unwrap();
        let server = incoming.next().await.unwrap().unwrap();
        client
            .write_all_owned(i.to_le_bytes().to_vec())
            .await
            .0
            .unwrap();
        let (res, buf) = server.read_exact_owned(Vec::with_capacity(4)).await;
        res.unwrap();
        assert_eq!(buf, i.to_le_bytes());
        server.send_zc(b"zc".to_vec()).await.0.unwrap();
        client.shutdown(Shutdown::Write).await.unwrap();
        // futures-io on the same streams, and a read dropped mid-flight.
        let mut client = client;
        let mut two = [0u8; 2];
        AsyncReadExt::read_exact(&mut client, &mut two)
            .await
            .unwrap();
        let mut server = server;
        let _ = futures::poll!(Box::pin(AsyncReadExt::read(&mut server, &mut two)));
        drop(server);
        let _ = client.close().await;
    }
    drop(incoming);
    // Single-shot accepts, including one dropped while armed (cancelled, or its fd closed).
    for _ in 0..20 {
        let _c = TcpStream::connect(addr).await.unwrap();
        let (s, _) = listener.accept().await.unwrap();
        drop(s);
        let mut armed = Box::pin(listener.accept());
        assert!(futures::poll!(armed.as_mut()).is_pending());
        let _late = std::net::TcpStream::connect(addr).unwrap();
        drop(armed);
        ringleader::yield_now().await;
    }
    // Connects that fail, and connects dropped in flight.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    for _ in 0..20 {
        assert!(TcpStream::connect(closed).await.is_err());
        let mut c = Box::pin(TcpStream::connect(addr));
        let _ = futures::poll!(c.as_mut());
        drop(c);
    }
}

async fn udp_unix_pipe_ops() {
    for _ in 0..20 {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.send_to(b"x".to_vec(), b.local_addr().unwrap())
            .await
            .0
            .unwrap();
        b.recv_from(Vec::with_capacity(4)).await.0.unwrap();
        drop(
            ringleader::time::timeout(Duration::from_millis(1), a.recv(Vec::with_capacity(4)))
                .await,
        );

        let (mut x, mut y) = UnixStream::pair().unwrap();
        x.write_all_owned(b"u".to_vec()).await.0.unwrap();
        AsyncWriteExt::write_all(&mut y, b"v").await.unwrap();
        let mut one = [0u8; 1];
        AsyncReadExt::read_exact(&mut x, &mut one).await.unwrap();
        y.read_owned(Vec::with_capacity(1)).await.0.unwrap();

        let (r, w) = ringleader::pipe::pipe().await.unwrap();
        drop((r, w));
        // A pipe op dropped before it is awaited: its fds are closed when they arrive.
        drop(ringleader::pipe::pipe());
    }
}

#[test]
fn many_net_and_pipe_ops_leave_the_fd_count_unchanged() {
    let before = fd_count();
    ringleader::block_on(async {
        let baseline = ringleader::runtime::stats().slots_occupied;
        dropped_incoming_closes_what_it_accepted().await;
        tcp_ops().await;
        udp_unix_pipe_ops().await;
        until(
            || ringleader::runtime::stats().slots_occupied == baseline,
            "every cancelled op completes",
        )
        .await;
    });
    assert_eq!(fd_count(), before, "fds leaked");
}
