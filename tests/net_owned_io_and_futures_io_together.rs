//! `OwnedIo` and the futures io extension traits in one scope: each form is called by its
//! own name, on one stream, in one function (issue 16 item 3).
//!
//! Before the owned forms were renamed `*_owned`, this file did not compile: with both traits
//! imported, `stream.read(&mut buf)` resolved to `OwnedIo::read` (it takes `&self`, found
//! before `AsyncReadExt::read`'s `&mut self`) and failed with "the trait bound
//! `&mut [u8; 16]: IoBufMut` is not satisfied".

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use ringleader::net::{OwnedIo, TcpListener, TcpStream, UnixStream};

#[test]
fn unix_stream_borrowed_and_owned_forms_side_by_side() {
    ringleader::block_on(async {
        let (mut a, mut b) = UnixStream::pair().unwrap();

        // futures-io: borrowed slices.
        a.write_all(b"borrowed forms..").await.unwrap();
        let mut buf = [0u8; 16];
        b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"borrowed forms..");
        assert_eq!(a.write(b"x").await.unwrap(), 1);
        let mut one = [0u8; 16];
        assert_eq!(b.read(&mut one).await.unwrap(), 1);
        assert_eq!(one[0], b'x');

        // OwnedIo: the buffer moves in and comes back with the result.
        let (res, _) = a.write_all_owned(b"owned forms".to_vec()).await;
        res.unwrap();
        let (res, got) = b.read_exact_owned(vec![0u8; 11]).await;
        res.unwrap();
        assert_eq!(got, b"owned forms");
        let (res, _) = b.write_owned(b"y".to_vec()).await;
        assert_eq!(res.unwrap(), 1);
        let (res, got) = a.read_owned(Vec::with_capacity(16)).await;
        assert_eq!(res.unwrap(), 1);
        assert_eq!(got, b"y");
    });
}

#[test]
fn tcp_stream_borrowed_and_owned_forms_side_by_side() {
    ringleader::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = listener.incoming();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let mut server = incoming.next().await.unwrap().unwrap();

        client.write_all(b"ping").await.unwrap();
        let (res, got) = server.read_exact_owned(vec![0u8; 4]).await;
        res.unwrap();
        assert_eq!(got, b"ping");

        let (res, _) = server.write_all_owned(b"pong".to_vec()).await;
        res.unwrap();
        let mut buf = [0u8; 4];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");

        server.write_all(b"!").await.unwrap();
        let (res, got) = client.read_owned(Vec::with_capacity(4)).await;
        assert_eq!(res.unwrap(), 1);
        assert_eq!(got, b"!");
    });
}
