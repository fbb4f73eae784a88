//! TCP ops, each with its effect and an error case: connect/accept/read/write, `read_exact`,
//! `write_all`, `send_zc`, `shutdown`, addresses, `TCP_NODELAY`, std and fd conversions, and
//! the multishot accept stream surviving clients that reset at once.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd};

use common::Rng;
use futures::StreamExt;
use ringleader::net::{OwnedIo, TcpListener, TcpStream};

fn local() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| rng.next() as u8).collect()
}

/// A port nothing listens on: bind one, note it, close it.
fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[test]
fn connect_accept_read_write_round_trip_with_addresses() {
    ringleader::block_on(async {
        let (listener, addr) = local();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        assert_eq!(
            peer,
            client.local_addr().unwrap(),
            "accept reports the peer"
        );
        assert_eq!(client.peer_addr().unwrap(), addr);
        assert_eq!(server.local_addr().unwrap(), addr);

        let (n, buf) = client.write_owned(b"hello".to_vec()).await;
        assert_eq!(n.unwrap(), 5);
        assert_eq!(buf, b"hello", "the buffer comes back");
        let (n, buf) = server.read_owned(Vec::with_capacity(64)).await;
        assert_eq!(n.unwrap(), 5);
        assert_eq!(buf, b"hello");
    });
}

#[test]
fn connect_to_a_closed_port_is_econnrefused() {
    let addr = closed_port();
    ringleader::block_on(async {
        let err = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED), "{err}");
    });
}

#[test]
fn read_exact_and_write_all_move_four_mib_byte_exact() {
    let data = random_bytes(4 << 20, 7);
    let expect = data.clone();
    ringleader::block_on(async move {
        let (listener, addr) = local();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        // Both directions at once: the writer task and the reader run concurrently.
        let writer = ringleader::spawn(async move {
            let (res, buf) = client.write_all_owned(data).await;
            res.unwrap();
            (client, buf.len())
        });
        let (res, got) = server.read_exact_owned(Vec::with_capacity(4 << 20)).await;
        res.unwrap();
        assert!(got == expect, "bytes differ");
        let (_client, sent) = writer.await.unwrap();
        assert_eq!(sent, 4 << 20);
    });
}

#[test]
fn read_exact_reports_unexpected_eof_with_the_bytes_so_far() {
    ringleader::block_on(async {
        let (listener, addr) = local();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        client.write_all_owned(b"abc".to_vec()).await.0.unwrap();
        drop(client);
        let (res, buf) = server.read_exact_owned(Vec::with_capacity(10)).await;
        assert_eq!(res.unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
        assert_eq!(buf, b"abc", "the partial bytes are kept");
    });
}

#[test]
fn send_zc_delivers_and_returns_the_buffer() {
    ringleader::block_on(async {
        let (listener, addr) = local();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let data = random_bytes(256 << 10, 3);
        let mut sent = 0;
        let mut buf = data.clone();
        // A zero-copy send may be short: resend the rest until all is out.
        let reader = ringleader::spawn(async move {
            server.read_exact_owned(Vec::with_capacity(256 << 10)).await
        });
        while sent < data.len() {
            let (res, b) = client.send_zc(buf).await;
            let n = res.unwrap();
            assert!(n > 0);
            sent += n;
            buf = data[sent..].to_vec();
            drop(b);
        }
        let (res, got) = reader.await.unwrap();
        res.unwrap();
        assert!(got == data, "bytes differ");
    });
}

#[test]
fn send_zc_after_shutdown_write_is_epipe() {
    ringleader::block_on(async {
        let (listener, addr) = local();
        let client = TcpStream::connect(addr).await.unwrap();
        let (_server, _) = listener.accept().await.unwrap();
        client.shutdown(Shutdown::Write).await.unwrap();
        let (res, buf) = client.send_zc(b"late".to_vec()).await;
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EPIPE));
        assert_eq!(buf, b"late", "the buffer comes back on error");
    });
}

#[test]
fn shutdown_write_gives_the_peer_end_of_stream() {
    ringleader::block_on(async {
        let (listener, addr) = local();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        client.write_all_owned(b"last".to_vec()).await.0.unwrap();
        client.shutdown(Shutdown::Write).await.unwrap();
        let (res, buf) = server.read_exact_owned(Vec::with_capacity(4)).await;
        res.unwrap();
        assert_eq!(buf, b"last");
        let (n, _) = server.read_owned(Vec::with_capacity(4)).await;
        assert_eq!(n.unwrap(), 0, "end of stream after the peer's shutdown");
        // The other direction still works.
        server.write_all_owned(b"reply".to_vec()).await.0.unwrap();
        let (res, buf) = client.read_exact_owned(Vec::with_capacity(5)).await;
        res.unwrap();
        assert_eq!(buf, b"reply");
    });
}

#[test]
fn shutdown_of_an_unconnected_socket_is_enotconn() {
    // SAFETY: plain integer arguments; the fd is handed to the stream, which owns it.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0);
    // SAFETY: a fresh socket fd we own.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    ringleader::block_on(async move {
        let err = stream.shutdown(Shutdown::Both).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN));
    });
}

#[test]
fn write_to_a_reset_peer_fails_with_errno_not_sigpipe() {
    ringleader::block_on(async {
        let (listener, addr) = local();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        drop(server);
        // The first send may still be accepted; the peer answers it with a reset.
        let mut last = Ok(0);
        for _ in 0..100 {
            last = client.write_owned(vec![1u8; 1024]).await.0;
            if last.is_err() {
                break;
            }
            ringleader::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let errno = last.unwrap_err().raw_os_error();
        assert!(
            matches!(errno, Some(libc::EPIPE) | Some(libc::ECONNRESET)),
            "{errno:?}"
        );
    });
}

#[test]
fn set_nodelay_is_visible_through_nodelay_and_std() {
    ringleader::block_on(async {
        let (listener, addr) = local();
        let client = TcpStream::connect(addr).await.unwrap();
        let _server = listener.accept().await.unwrap();
        client.set_nodelay(true).unwrap();
        assert!(client.nodelay().unwrap());
        assert!(client.with_std(|s| s.nodelay()).unwrap());
        client.set_nodelay(false).unwrap();
        assert!(!client.nodelay().unwrap());
    });
}

#[test]
fn std_and_fd_conversions_keep_the_connection() {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    let mut std_client = std::net::TcpStream::connect(addr).unwrap();
    ringleader::block_on(async move {
        let listener = TcpListener::from_std(std_listener).unwrap();
        assert_eq!(listener.local_addr().unwrap(), addr);
        let (server, _) = listener.accept().await.unwrap();
        std_client.write_all(b"from std").unwrap();
        let (res, buf) = server.read_exact_owned(Vec::with_capacity(8)).await;
        res.unwrap();
        assert_eq!(buf, b"from std");

        // Into std and back through a raw fd: still the same connection.
        let raw = std::os::fd::IntoRawFd::into_raw_fd(server.into_std().unwrap());
        // SAFETY: `raw` came from `into_raw_fd`, so we own it.
        let server = unsafe { TcpStream::from_raw_fd(raw) };
        assert_eq!(server.as_raw_fd(), raw);
        server.write_all_owned(b"back".to_vec()).await.0.unwrap();
        let mut got = [0u8; 4];
        std_client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"back");

        // A std stream in non-blocking mode is adopted in blocking mode.
        std_client.set_nonblocking(true).unwrap();
        let client = TcpStream::from_std(std_client).unwrap();
        client.write_all_owned(b"ok".to_vec()).await.0.unwrap();
        let (res, buf) = server.read_exact_owned(Vec::with_capacity(2)).await;
        res.unwrap();
        assert_eq!(buf, b"ok");
    });
}

#[test]
fn ipv6_loopback_round_trip() {
    let Ok(probe) = std::net::TcpListener::bind("[::1]:0") else {
        eprintln!("skipped: no IPv6 loopback");
        return;
    };
    drop(probe);
    ringleader::block_on(async {
        let listener = TcpListener::bind("[::1]:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(addr.is_ipv6());
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        client.write_all_owned(b"v6".to_vec()).await.0.unwrap();
        let (res, buf) = server.read_exact_owned(Vec::with_capacity(2)).await;
        res.unwrap();
        assert_eq!(buf, b"v6");
    });
}

#[test]
fn bind_reuseport_lets_two_listeners_share_a_port_and_plain_bind_does_not() {
    let a = TcpListener::bind_reuseport("127.0.0.1:0").unwrap();
    let addr = a.local_addr().unwrap();
    let b = TcpListener::bind_reuseport(addr).unwrap();
    assert_eq!(b.local_addr().unwrap(), addr);
    let err = TcpListener::bind(addr).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE));
}

/// Make the kernel send RST on close (`SO_LINGER` with a zero timeout).
fn set_linger_zero(s: &std::net::TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `linger` is a live `struct linger` of the size passed.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
}

#[test]
fn incoming_keeps_accepting_after_clients_reset_immediately() {
    ringleader::block_on(async {
        let (listener, addr) = local();
        let mut incoming = listener.incoming();
        // These clients connect and reset while this core is blocked in the syscalls below,
        // so the armed accept meets connections that are already reset.
        for _ in 0..20 {
            let c = std::net::TcpStream::connect(addr).unwrap();
            set_linger_zero(&c);
            drop(c);
        }
        let mut good = std::net::TcpStream::connect(addr).unwrap();
        good.write_all(b"alive").unwrap();
        let mut reset_seen = 0;
        let mut found = false;
        for _ in 0..21 {
            match incoming.next().await.unwrap() {
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::ECONNABORTED), "{e}");
                    reset_seen += 1;
                }
                Ok(stream) => {
                    let (res, buf) = stream.read_owned(Vec::with_capacity(8)).await;
                    match res {
                        Ok(5) if buf == b"alive" => {
                            found = true;
                            break;
                        }
                        Ok(0) => reset_seen += 1,
                        Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => reset_seen += 1,
                        other => panic!("unexpected read result {other:?}"),
                    }
                }
            }
        }
        assert!(found, "the live client was accepted after the resets");
        assert_eq!(reset_seen, 20, "every reset client shows up as an item");
        // And the stream still accepts afterwards.
        let _late = std::net::TcpStream::connect(addr).unwrap();
        let late = incoming.next().await.unwrap().unwrap();
        assert_eq!(late.local_addr().unwrap(), addr);
    });
}
