//! `TcpStream::into_split`: a read half and a write half used by two tasks on one core at
//! once move 8 MiB each way concurrently (a half that waited on the other would deadlock
//! once both socket buffers fill); dropping the write half sends EOF while the read half
//! keeps reading; `forget` does not; `reunite` gives the stream back (with bytes the read
//! half had buffered) and refuses halves of different streams.

use std::time::Duration;

use futures::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use ringleader::net::{TcpListener, TcpStream};

async fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    let (s, _) = l.accept().await.unwrap();
    (c, s)
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(seed)).collect()
}

#[ringleader::test]
async fn full_duplex_from_two_tasks_each_side() {
    const LEN: usize = 8 << 20;
    let (a, b) = pair().await;
    let mut tasks = Vec::new();
    for (stream, seed_out, seed_in) in [(a, 3u8, 7u8), (b, 7, 3)] {
        let (mut rd, mut wr) = stream.into_split();
        tasks.push(ringleader::spawn(async move {
            wr.write_all(&pattern(seed_out, LEN)).await.unwrap();
            wr.close().await.unwrap(); // EOF to the peer; our read half goes on
            Vec::new()
        }));
        tasks.push(ringleader::spawn(async move {
            let mut got = Vec::new();
            rd.read_to_end(&mut got).await.unwrap();
            assert!(got == pattern(seed_in, LEN), "bytes intact");
            got
        }));
    }
    let all = ringleader::time::timeout(Duration::from_secs(30), futures::future::join_all(tasks))
        .await
        .expect("no deadlock between the halves");
    assert_eq!(
        all.iter().map(|r| r.as_ref().unwrap().len()).sum::<usize>(),
        2 * LEN
    );
}

#[ringleader::test]
async fn dropping_the_write_half_sends_eof_forget_does_not() {
    let (a, b) = pair().await;
    let (mut a_rd, a_wr) = a.into_split();
    let mut b = b;
    drop(a_wr);
    let mut buf = Vec::new();
    assert_eq!(b.read_to_end(&mut buf).await.unwrap(), 0, "EOF at once");
    // The read half still works after its write half is gone.
    b.write_all(b"still reading").await.unwrap();
    let mut got = [0u8; 13];
    a_rd.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"still reading");

    let (c, d) = pair().await;
    let (_c_rd, c_wr) = c.into_split();
    c_wr.forget();
    let mut one = [0u8; 1];
    let r = ringleader::time::timeout(Duration::from_millis(100), async {
        let mut d = d;
        d.read(&mut one).await
    })
    .await;
    assert!(r.is_err(), "no EOF after forget: the read is still waiting");
}

#[ringleader::test]
async fn owned_buffer_io_and_reunite() {
    // The owned-buffer forms; the futures forms are called by path (same names).
    use ringleader::net::OwnedIo;
    let (a, b) = pair().await;
    let (a_rd, a_wr) = a.into_split();
    let (res, _) = a_wr.write_all_owned(b"line one\nline two\n".to_vec()).await;
    res.unwrap();
    let (res, buf) = b.read_exact_owned(vec![0u8; 18]).await;
    res.unwrap();
    assert_eq!(buf, b"line one\nline two\n");
    assert_eq!(a_rd.peer_addr().unwrap(), b.local_addr().unwrap());
    assert_eq!(a_wr.local_addr().unwrap(), b.peer_addr().unwrap());

    // Bytes buffered in the read half come back with the reunited stream.
    let (b_rd, b_wr) = b.into_split();
    let (res, _) = a_wr.write_all_owned(b"first\nsecond\n".to_vec()).await;
    res.unwrap();
    let mut b_rd = b_rd;
    let mut line = String::new();
    AsyncBufReadExt::read_line(&mut b_rd, &mut line)
        .await
        .unwrap();
    assert_eq!(line, "first\n");
    let mut b = b_rd.reunite(b_wr).unwrap();
    let mut rest = [0u8; 7];
    AsyncReadExt::read_exact(&mut b, &mut rest).await.unwrap();
    assert_eq!(&rest, b"second\n");

    let (c, _d) = pair().await;
    let (c_rd, c_wr) = c.into_split();
    let err = a_rd.reunite(c_wr).unwrap_err();
    assert!(err.to_string().contains("different"));
    let (a_rd, c_wr) = (err.0, err.1);
    assert!(a_rd.reunite(a_wr).is_ok());
    assert!(c_rd.reunite(c_wr).is_ok());
}
