//! Pipes: `pipe()` makes a connected close-on-exec pair; `splice` moves a file through a pipe
//! into a socket byte-exact; `tee` duplicates pipe contents without consuming them; misuse
//! reports the kernel's errno.

mod common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;

use common::Rng;
use ringleader::net::{OwnedIo, TcpListener, TcpStream};
use ringleader::pipe::{pipe, splice, tee};

async fn read_pipe(fd: &Rc<OwnedFd>, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let (res, buf) =
            ringleader::fd::read(fd, Vec::with_capacity(len - out.len()), u64::MAX).await;
        let n = res.unwrap();
        assert!(n > 0, "pipe closed early");
        out.extend_from_slice(&buf);
    }
    out
}

/// A new pipe, both ends as the owners an op holds.
async fn pipe_rc() -> (Rc<OwnedFd>, Rc<OwnedFd>) {
    let (r, w) = pipe().await.unwrap();
    (Rc::new(r), Rc::new(w))
}

fn temp_file(tag: &str, data: &[u8]) -> (Rc<OwnedFd>, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!("rl-pipe-{tag}-{}", std::process::id()));
    std::fs::write(&path, data).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    (Rc::new(OwnedFd::from(file)), path)
}

#[test]
fn pipe_creates_a_connected_close_on_exec_pair() {
    ringleader::block_on(async {
        let (r, w) = pipe_rc().await;
        for fd in [&r, &w] {
            // SAFETY: F_GETFD on an open fd; plain integer arguments.
            let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
            assert!(flags & libc::FD_CLOEXEC != 0, "close-on-exec");
        }
        let (res, _) = ringleader::fd::write(&w, b"through".to_vec(), u64::MAX).await;
        assert_eq!(res.unwrap(), 7);
        assert_eq!(read_pipe(&r, 7).await, b"through");
    });
}

#[test]
fn splice_moves_a_file_through_a_pipe_into_a_socket_byte_exact() {
    const LEN: usize = 1 << 20;
    let mut rng = Rng::new(9);
    let data: Vec<u8> = (0..LEN).map(|_| rng.next() as u8).collect();
    let (file, path) = temp_file("splice", &data);
    ringleader::block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let reader =
            ringleader::spawn(
                async move { server.read_exact_owned(Vec::with_capacity(LEN)).await },
            );

        let (pr, pw) = pipe_rc().await;
        let mut off = 0u64;
        while off < LEN as u64 {
            // File -> pipe at an explicit offset, then pipe -> socket, chunk by chunk.
            let n = splice(&file, Some(off), &pw, None, 64 * 1024)
                .await
                .unwrap();
            assert!(n > 0, "file ended early at {off}");
            let mut moved = 0;
            while moved < n {
                let m = splice(&pr, None, &client, None, (n - moved) as u32)
                    .await
                    .unwrap();
                assert!(m > 0);
                moved += m;
            }
            off += n as u64;
        }
        // At end of file, splice moves nothing.
        let n = splice(&file, Some(off), &pw, None, 4096).await.unwrap();
        assert_eq!(n, 0);
        let (res, got) = reader.await.unwrap();
        res.unwrap();
        assert!(got == data, "bytes differ");
    });
    std::fs::remove_file(path).unwrap();
}

#[test]
fn tee_duplicates_pipe_contents_without_consuming_them() {
    ringleader::block_on(async {
        let (r1, w1) = pipe_rc().await;
        let (r2, w2) = pipe_rc().await;
        let msg: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
        let (res, _) = ringleader::fd::write(&w1, msg.clone(), u64::MAX).await;
        assert_eq!(res.unwrap(), msg.len());
        // All 10,000 bytes are in the pipe (it holds 64 KiB), so one tee duplicates them all.
        let n = tee(&r1, &w2, 1 << 20).await.unwrap();
        assert_eq!(n, msg.len());
        assert_eq!(read_pipe(&r2, msg.len()).await, msg, "the copy");
        assert_eq!(
            read_pipe(&r1, msg.len()).await,
            msg,
            "the original, still there"
        );
    });
}

#[test]
fn splice_and_tee_misuse_report_errno() {
    let (file, path) = temp_file("misuse", b"data");
    ringleader::block_on(async move {
        let (r, w) = pipe_rc().await;
        let (a, b) = ringleader::net::UnixStream::pair().unwrap();
        // Neither side a pipe.
        let e = splice(&file, Some(0), &a, None, 4).await.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
        // tee needs two pipes.
        let e = tee(&file, &w, 4).await.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
        // A pipe has no offset.
        let e = splice(&r, Some(0), &b, None, 4).await.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESPIPE), "{e}");
    });
    std::fs::remove_file(path).unwrap();
}
