//! UDP: `send_to`/`recv_from` (SENDMSG/RECVMSG with heap-owned headers) and, once
//! connected, `send`/`recv`; errors keep their errno.

use ringleader::net::UdpSocket;

#[test]
fn send_to_and_recv_from_round_trip_with_the_sender_address() {
    ringleader::block_on(async {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        for i in 0..100u32 {
            let msg = format!("datagram {i}").into_bytes();
            let (res, sent) = a.send_to(msg, b_addr).await;
            assert_eq!(res.unwrap(), sent.len());
            let (res, buf) = b.recv_from(Vec::with_capacity(64)).await;
            let (n, from) = res.unwrap();
            assert_eq!(from, a_addr);
            assert_eq!(&buf[..n], sent.as_slice());
            // Echo it back.
            let (res, _) = b.send_to(buf, from).await;
            res.unwrap();
            let (res, back) = a.recv_from(Vec::with_capacity(64)).await;
            assert_eq!(res.unwrap(), (sent.len(), b_addr));
            assert_eq!(back, sent);
        }
    });
}

#[test]
fn ipv6_send_to_and_recv_from() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback");
        return;
    }
    ringleader::block_on(async {
        let a = UdpSocket::bind("[::1]:0").unwrap();
        let b = UdpSocket::bind("[::1]:0").unwrap();
        let (res, _) = a.send_to(b"six".to_vec(), b.local_addr().unwrap()).await;
        res.unwrap();
        let (res, buf) = b.recv_from(Vec::with_capacity(8)).await;
        assert_eq!(res.unwrap(), (3, a.local_addr().unwrap()));
        assert_eq!(buf, b"six");
    });
}

#[test]
fn connected_send_and_recv_round_trip() {
    ringleader::block_on(async {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.connect(b.local_addr().unwrap()).await.unwrap();
        b.connect(a.local_addr().unwrap()).await.unwrap();
        assert_eq!(a.peer_addr().unwrap(), b.local_addr().unwrap());
        let (res, _) = a.send(b"ping".to_vec()).await;
        assert_eq!(res.unwrap(), 4);
        let (res, buf) = b.recv(Vec::with_capacity(8)).await;
        assert_eq!(res.unwrap(), 4);
        assert_eq!(buf, b"ping");
        let (res, _) = b.send(b"pong".to_vec()).await;
        res.unwrap();
        let (res, buf) = a.recv(Vec::with_capacity(8)).await;
        assert_eq!(res.unwrap(), 4);
        assert_eq!(buf, b"pong");
    });
}

#[test]
fn send_without_a_peer_is_edestaddrreq_and_peer_addr_enotconn() {
    ringleader::block_on(async {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (res, buf) = a.send(b"nowhere".to_vec()).await;
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EDESTADDRREQ));
        assert_eq!(buf, b"nowhere", "the buffer comes back on error");
        assert_eq!(
            a.peer_addr().unwrap_err().raw_os_error(),
            Some(libc::ENOTCONN)
        );
    });
}

#[test]
fn recv_from_truncates_a_datagram_longer_than_the_buffer() {
    ringleader::block_on(async {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (res, _) = a
            .send_to(b"0123456789".to_vec(), b.local_addr().unwrap())
            .await;
        res.unwrap();
        let (res, buf) = b.recv_from(Vec::with_capacity(4)).await;
        assert_eq!(res.unwrap().0, 4);
        assert_eq!(buf, b"0123");
    });
}

#[test]
fn std_conversion_round_trip() {
    let std_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = std_sock.local_addr().unwrap();
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ringleader::block_on(async move {
        let s = UdpSocket::from_std(std_sock).unwrap();
        assert_eq!(s.local_addr().unwrap(), addr);
        assert!(s.with_std(|u| u.set_broadcast(true)).is_ok());
        peer.send_to(b"std", addr).unwrap();
        let (res, buf) = s.recv_from(Vec::with_capacity(8)).await;
        assert_eq!(res.unwrap(), (3, peer.local_addr().unwrap()));
        assert_eq!(buf, b"std");
        let back = s.into_std().unwrap();
        assert_eq!(back.local_addr().unwrap(), addr);
    });
}

#[test]
fn bind_to_an_address_not_on_this_host_is_eaddrnotavail() {
    // TEST-NET-1 (RFC 5737): never assigned to a local interface.
    let err = UdpSocket::bind("192.0.2.1:0").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EADDRNOTAVAIL), "{err}");
}
