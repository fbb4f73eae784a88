//! I/O on a closed fd reports `EBADF` from every net and pipe op, with the buffer back.
//!
//! One test in this file: the closed fd number must not be reused by another test's thread
//! while the ops run.

use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};

use futures::StreamExt;
use ringleader::net::{OwnedIo, TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use ringleader::pipe::{splice_raw, tee_raw};

/// A socket fd number that was just closed.
fn closed_fd() -> i32 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let fd = s.into_raw_fd();
    // SAFETY: `fd` came from `into_raw_fd`: we own it and close it once.
    assert_eq!(unsafe { libc::close(fd) }, 0);
    fd
}

fn is_ebadf<T: std::fmt::Debug>(r: std::io::Result<T>) -> bool {
    r.unwrap_err().raw_os_error() == Some(libc::EBADF)
}

#[test]
fn ops_on_a_closed_fd_fail_with_ebadf() {
    ringleader::block_on(async move {
        // Closed inside the runtime, so the ring's own fd cannot take the number.
        let fd = closed_fd();
        // The types take ownership of the (dead) fd; each is given back with `into_std` +
        // `into_raw_fd` below so that no drop closes the number a second time.
        // SAFETY: nothing else uses `fd`; no wrapper closes it (see above).
        let tcp = unsafe { TcpStream::from_raw_fd(fd) };
        let (r, buf) = tcp.read_owned(Vec::with_capacity(8)).await;
        assert!(is_ebadf(r));
        assert_eq!(buf.capacity(), 8, "the buffer comes back");
        assert!(is_ebadf(tcp.write_owned(b"x".to_vec()).await.0));
        assert!(is_ebadf(
            tcp.read_exact_owned(Vec::with_capacity(8)).await.0
        ));
        assert!(is_ebadf(tcp.write_all_owned(b"x".to_vec()).await.0));
        assert!(is_ebadf(tcp.send_zc(b"x".to_vec()).await.0));
        assert!(is_ebadf(tcp.shutdown(Shutdown::Both).await));
        let _ = tcp.into_std().unwrap().into_raw_fd();

        // SAFETY: as above.
        let listener = unsafe { TcpListener::from_raw_fd(fd) };
        assert!(is_ebadf(listener.accept().await));
        let mut incoming = listener.incoming();
        for _ in 0..3 {
            // An error item does not end the stream: the next poll re-arms the accept.
            assert!(is_ebadf(incoming.next().await.expect("never ends")));
        }
        drop(incoming);
        let _ = listener.into_std().unwrap().into_raw_fd();

        // SAFETY: as above.
        let unix_listener = unsafe { UnixListener::from_raw_fd(fd) };
        assert!(is_ebadf(unix_listener.accept().await));
        let _ = unix_listener.into_std().unwrap().into_raw_fd();

        // SAFETY: as above.
        let udp = unsafe { UdpSocket::from_raw_fd(fd) };
        let peer = "127.0.0.1:9".parse().unwrap();
        assert!(is_ebadf(udp.send_to(b"x".to_vec(), peer).await.0));
        assert!(is_ebadf(udp.recv_from(Vec::with_capacity(8)).await.0));
        assert!(is_ebadf(udp.send(b"x".to_vec()).await.0));
        assert!(is_ebadf(udp.recv(Vec::with_capacity(8)).await.0));
        assert!(is_ebadf(udp.connect(peer).await));
        let _ = udp.into_std().unwrap().into_raw_fd();

        // SAFETY: as above.
        let unix = unsafe { UnixStream::from_raw_fd(fd) };
        assert!(is_ebadf(unix.read_owned(Vec::with_capacity(8)).await.0));
        assert!(is_ebadf(unix.write_owned(b"x".to_vec()).await.0));
        let _ = unix.into_std().unwrap().into_raw_fd();

        // The pipe's fds are opened only now, after every op above is done with `fd`; its
        // number is taken by the new pipe, so for the pipe ops close another fd. The safe
        // `splice`/`tee` take open fds' owners; a closed number needs the raw forms.
        let (r, w) = ringleader::pipe::pipe().await.unwrap();
        let fd = closed_fd();
        // SAFETY: `fd` names no file, and nothing opens one before this op's final CQE (it
        // is awaited at once, and this file holds one test), so the kernel finds no file
        // at that number; `w` stays open until the end of the test.
        let op = unsafe { splice_raw(fd, None, w.as_raw_fd(), None, 8) };
        assert!(is_ebadf(op.await));
        // SAFETY: as above, with `r` open.
        let op = unsafe { splice_raw(r.as_raw_fd(), None, fd, None, 8) };
        assert!(is_ebadf(op.await));
        // SAFETY: as above.
        let op = unsafe { tee_raw(fd, w.as_raw_fd(), 8) };
        assert!(is_ebadf(op.await));
    });
}
