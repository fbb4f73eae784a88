//! Unix-domain streams: bind/connect/accept, `pair`, the multishot `incoming` stream,
//! abstract addresses, futures-io, and errno-preserving errors.

use std::net::Shutdown;
use std::path::PathBuf;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use ringleader::net::{OwnedIo, UnixListener, UnixStream};

/// A fresh socket path, removed on drop.
struct SockPath(PathBuf);

impl SockPath {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("rl-net-{tag}-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&p);
        SockPath(p)
    }
}

impl Drop for SockPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn listener_accept_and_connect_round_trip() {
    let path = SockPath::new("accept");
    ringleader::block_on(async {
        let listener = UnixListener::bind(&path.0).unwrap();
        assert_eq!(
            listener.local_addr().unwrap().as_pathname(),
            Some(path.0.as_path())
        );
        let client = UnixStream::connect(&path.0).await.unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        assert!(peer.is_unnamed(), "the client did not bind");
        assert_eq!(
            client.peer_addr().unwrap().as_pathname(),
            Some(path.0.as_path())
        );
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let writer = {
            let data = data.clone();
            ringleader::spawn(async move {
                client.write_all_owned(data).await.0.unwrap();
                client.shutdown(Shutdown::Write).await.unwrap();
                client
            })
        };
        let (res, got) = server
            .read_exact_owned(Vec::with_capacity(data.len()))
            .await;
        res.unwrap();
        assert!(got == data);
        let (n, _) = server.read_owned(Vec::with_capacity(1)).await;
        assert_eq!(n.unwrap(), 0, "end of stream after shutdown");
        writer.await.unwrap();
    });
}

#[test]
fn bind_to_a_path_in_use_is_eaddrinuse() {
    let path = SockPath::new("inuse");
    let _first = UnixListener::bind(&path.0).unwrap();
    let err = UnixListener::bind(&path.0).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE), "{err}");
}

#[test]
fn connect_to_a_missing_path_is_enoent() {
    let path = SockPath::new("missing");
    ringleader::block_on(async {
        let err = UnixStream::connect(&path.0).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");
    });
}

#[test]
fn connect_to_a_too_long_path_is_invalid_input() {
    ringleader::block_on(async {
        let long = "/tmp/".to_owned() + &"x".repeat(200);
        let err = UnixStream::connect(long).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    });
}

#[test]
fn pair_round_trip_both_ways() {
    ringleader::block_on(async {
        let (a, b) = UnixStream::pair().unwrap();
        a.write_all_owned(b"to b".to_vec()).await.0.unwrap();
        let (res, buf) = b.read_exact_owned(Vec::with_capacity(4)).await;
        res.unwrap();
        assert_eq!(buf, b"to b");
        b.write_all_owned(b"to a".to_vec()).await.0.unwrap();
        let (res, buf) = a.read_exact_owned(Vec::with_capacity(4)).await;
        res.unwrap();
        assert_eq!(buf, b"to a");
    });
}

#[test]
fn incoming_accepts_several_clients_on_one_multishot_accept() {
    let path = SockPath::new("incoming");
    ringleader::block_on(async {
        let listener = UnixListener::bind(&path.0).unwrap();
        let mut incoming = listener.incoming();
        let mut clients = Vec::new();
        for i in 0..10u8 {
            let c = UnixStream::connect(&path.0).await.unwrap();
            c.write_all_owned(vec![i]).await.0.unwrap();
            clients.push(c);
        }
        let mut seen = Vec::new();
        for _ in 0..10 {
            let s = incoming.next().await.unwrap().unwrap();
            let (res, buf) = s.read_exact_owned(Vec::with_capacity(1)).await;
            res.unwrap();
            seen.push(buf[0]);
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..10).collect::<Vec<u8>>());
    });
}

#[test]
fn abstract_address_round_trip() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("rl-net-abstract-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    ringleader::block_on(async move {
        let listener = UnixListener::bind_addr(&addr).unwrap();
        let client = UnixStream::connect_addr(&addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        client
            .write_all_owned(b"abstract".to_vec())
            .await
            .0
            .unwrap();
        let (res, buf) = server.read_exact_owned(Vec::with_capacity(8)).await;
        res.unwrap();
        assert_eq!(buf, b"abstract");
    });
}

#[test]
fn futures_io_traits_work_on_unix_streams() {
    ringleader::block_on(async {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        AsyncWriteExt::write_all(&mut a, b"line one\nline two\n")
            .await
            .unwrap();
        a.close().await.unwrap();
        let mut text = String::new();
        b.read_to_string(&mut text).await.unwrap();
        assert_eq!(text, "line one\nline two\n");
    });
}
