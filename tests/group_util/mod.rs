//! Helpers for the group tests: pipes as shared fds, temp files, draining fds.
#![allow(dead_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::rc::Rc;

/// A pipe as shared fds (read end, write end), as group ops take them.
pub fn pipe() -> (Rc<OwnedFd>, Rc<OwnedFd>) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: pipe2 returned two fresh fds that nothing else owns.
    unsafe {
        (
            Rc::new(OwnedFd::from_raw_fd(fds[0])),
            Rc::new(OwnedFd::from_raw_fd(fds[1])),
        )
    }
}

/// Write all of `data` to `fd` synchronously.
pub fn put(fd: &impl AsRawFd, data: &[u8]) {
    // SAFETY: `data` is valid for `data.len()` bytes during the call.
    let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
    assert_eq!(
        n,
        data.len() as isize,
        "write: {}",
        std::io::Error::last_os_error()
    );
}

/// Bytes waiting in a pipe or socket (`FIONREAD`).
pub fn pending(fd: &impl AsRawFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int into `n`.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    assert_eq!(r, 0, "FIONREAD: {}", std::io::Error::last_os_error());
    n as usize
}

/// Read everything waiting in a pipe or socket now, without blocking.
pub fn take(fd: &impl AsRawFd) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let n = pending(fd);
        if n == 0 {
            return out;
        }
        let mut buf = vec![0u8; n];
        // SAFETY: `buf` is valid for `n` bytes; `n` bytes are waiting, so this does not block.
        let r = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), n) };
        assert!(r > 0, "read: {}", std::io::Error::last_os_error());
        out.extend_from_slice(&buf[..r as usize]);
    }
}

/// A temp file path unique to this process and `tag`, removed on drop.
pub struct TempPath(pub PathBuf);

impl TempPath {
    pub fn new(tag: &str) -> TempPath {
        TempPath(std::env::temp_dir().join(format!("rl-group-{}-{tag}", std::process::id())))
    }

    pub fn with(tag: &str, contents: &[u8]) -> TempPath {
        let p = TempPath::new(tag);
        std::fs::write(&p.0, contents).unwrap();
        p
    }

    pub fn read(&self) -> Vec<u8> {
        std::fs::read(&self.0).unwrap()
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Open `path` read-write, creating it.
pub async fn open_rw(path: &TempPath) -> ringleader::fs::File {
    ringleader::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .open(&path.0)
        .await
        .unwrap()
}

/// A connected loopback TCP pair: (ringleader stream, std peer).
pub fn tcp_pair() -> (ringleader::net::TcpStream, std::net::TcpStream) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    (ringleader::net::TcpStream::from_std(a).unwrap(), b)
}

/// Read exactly `n` bytes from a std stream (blocking).
pub fn read_n(s: &mut std::net::TcpStream, n: usize) -> Vec<u8> {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).unwrap();
    buf
}

/// Run ticks until `cond` holds; panics (naming `what`) if it never does.
pub async fn until(mut cond: impl FnMut() -> bool, what: &str) {
    for i in 0..20_000 {
        if cond() {
            return;
        }
        if i % 100 == 99 {
            ringleader::time::sleep(std::time::Duration::from_millis(1)).await;
        } else {
            ringleader::yield_now().await;
        }
    }
    panic!("timed out waiting for: {what}");
}

/// Let the event loop run `n` ticks.
pub async fn ticks(n: usize) {
    for _ in 0..n {
        ringleader::yield_now().await;
    }
}

/// A small send buffer (`SO_SNDBUF` of `bytes`): big sends then meet a full socket and are
/// resumed part by part, where unordered sends would interleave.
pub fn set_sndbuf(s: &ringleader::net::TcpStream, bytes: libc::c_int) {
    s.with_std(|s| {
        // SAFETY: setsockopt on an open socket with a valid `c_int` option value.
        let r = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(s),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&bytes as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0);
    });
}
