//! futures-io on TCP streams: the `futures` extension traits and `futures::io::copy` work
//! unchanged (this file never imports `OwnedIo`), `AsyncBufRead` serves lines, and dropping a
//! stream mid-read is safe because the in-flight recv owns the stream's buffer.

mod common;

use std::net::SocketAddr;

use common::until;
use futures::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use ringleader::fs::File;
use ringleader::net::{TcpListener, TcpStream};

async fn connected() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let client = TcpStream::connect(addr).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

#[test]
fn extension_traits_work_unchanged_on_tcp_streams() {
    ringleader::block_on(async {
        let (mut client, mut server) = connected().await;
        client.write_all(b"hello ").await.unwrap();
        client.write_all(b"world").await.unwrap();
        client.flush().await.unwrap();
        let mut first = [0u8; 6];
        server.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"hello ");
        client.close().await.unwrap();
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.unwrap();
        assert_eq!(
            rest, b"world",
            "close() shut the write side: read_to_end ends"
        );
        // The other direction still works after our write side is closed.
        server.write_all(b"reply").await.unwrap();
        let mut reply = [0u8; 5];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"reply");
    });
}

#[test]
fn async_buf_read_serves_lines() {
    ringleader::block_on(async {
        let (mut client, server) = connected().await;
        let lines: Vec<String> = (0..1000).map(|i| format!("line number {i}")).collect();
        let text = lines.join("\n") + "\n";
        let writer = ringleader::spawn(async move {
            client.write_all(text.as_bytes()).await.unwrap();
            client.close().await.unwrap();
        });
        let mut got = Vec::new();
        let mut stream = server.lines();
        while let Some(line) = futures::StreamExt::next(&mut stream).await {
            got.push(line.unwrap());
        }
        assert_eq!(got, lines);
        writer.await.unwrap();
    });
}

#[test]
fn split_halves_echo_through_copy() {
    ringleader::block_on(async {
        let (client, server) = connected().await;
        let echo = ringleader::spawn(async move {
            let (mut r, mut w) = server.split();
            futures::io::copy(&mut r, &mut w).await.unwrap()
        });
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let (mut cr, mut cw) = client.split();
        let expect = data.clone();
        let reader = ringleader::spawn(async move {
            let mut back = Vec::new();
            cr.read_to_end(&mut back).await.unwrap();
            back
        });
        cw.write_all(&data).await.unwrap();
        cw.close().await.unwrap();
        let back = reader.await.unwrap();
        assert!(back == expect, "echoed bytes differ");
        assert_eq!(echo.await.unwrap(), 300_000);
    });
}

#[test]
fn dropping_a_stream_mid_read_keeps_the_buffer_until_the_final_cqe() {
    ringleader::block_on(async {
        let baseline = ringleader::runtime::stats().slots_occupied;
        let (client, mut server) = connected().await;
        let mut out = [0u8; 16];
        // One poll starts the recv into the stream's own buffer; nothing arrives.
        let polled = futures::poll!(Box::pin(server.read(&mut out)));
        assert!(polled.is_pending());
        assert_eq!(ringleader::runtime::stats().slots_occupied, baseline + 1);
        drop(server);
        // The recv is cancelled; its slot (and buffer) goes only at the final CQE.
        until(
            || ringleader::runtime::stats().slots_occupied == baseline,
            "the cancelled recv's slot is freed",
        )
        .await;
        // The socket was closed after the cancel completed: the peer sees end of stream.
        let mut client = client;
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    });
}

/// 1 MiB block `i` of the test stream: a fixed pattern stamped with its position every 4 KiB,
/// so a lost, repeated or reordered block is detected.
fn block(i: u64, base: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    for page in 0..256u64 {
        let at = (page * 4096) as usize;
        b[at..at + 8].copy_from_slice(&(i * 256 + page).to_le_bytes());
    }
    b
}

#[test]
fn copy_moves_256_mib_from_a_file_to_a_tcp_stream_byte_exact() {
    const MIB: usize = 1 << 20;
    const BLOCKS: u64 = 256;
    let mut rng = common::Rng::new(42);
    let base: Vec<u8> = (0..MIB).map(|_| rng.next() as u8).collect();
    let path = std::env::temp_dir().join(format!("rl-net-copy-{}", std::process::id()));
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for i in 0..BLOCKS {
            f.write_all(&block(i, &base)).unwrap();
        }
        f.flush().unwrap();
    }
    let path2 = path.clone();
    ringleader::block_on(async move {
        let (client, mut server) = connected().await;
        let sender = ringleader::spawn(async move {
            let mut file = File::open(&path2).await.unwrap();
            let mut client = client;
            let n = futures::io::copy(&mut file, &mut client).await.unwrap();
            client.close().await.unwrap();
            n
        });
        let mut got = vec![0u8; MIB];
        for i in 0..BLOCKS {
            server.read_exact(&mut got).await.unwrap();
            assert!(got == block(i, &base), "block {i} differs");
        }
        let mut tail = Vec::new();
        server.read_to_end(&mut tail).await.unwrap();
        assert!(tail.is_empty(), "no bytes after the file's");
        assert_eq!(sender.await.unwrap(), BLOCKS * MIB as u64);
    });
    std::fs::remove_file(&path).unwrap();
}
