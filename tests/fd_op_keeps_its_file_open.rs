//! An op on an fd keeps that fd open until its final CQE (docs/design.md §2, "Fds are owned by the
//! ops that name them"; issue 12, hole 5).
//!
//! The kernel resolves an SQE's fd number only when it reaches the SQE, at the next
//! `io_uring_enter`. Each case creates an op on file (or pipe, or socket) A, drops the
//! caller's owner of A before the first await, then opens B, which gets A's old number if
//! A was closed, and awaits the op: the bytes must move to or from A, never B.
//!
//! The cases run in one test, one after another, so no other test's fds take the freed
//! number; every case runs and the failures are reported together.

use std::future::Future;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;

use ringleader::buf::{BufRing, FixedPool};
use ringleader::{fd, lease_ops, pipe};

/// A fresh directory under the temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!("rl-fd-keeps-open-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// Create file `name` holding `bytes`.
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn contents(path: &PathBuf) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// Open `path` for reading and writing, as the shared owner an op can hold.
fn open(path: &PathBuf) -> Rc<OwnedFd> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    Rc::new(OwnedFd::from(f))
}

fn pipe2() -> (OwnedFd, OwnedFd) {
    let mut fds = [-1 as RawFd; 2];
    // SAFETY: `fds` has room for the two fds pipe2 writes.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 succeeded: two fresh fds nobody else owns.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Write `bytes` to a pipe's write end without the ring (a plain `write(2)`).
fn put(w: &OwnedFd, bytes: &[u8]) {
    // SAFETY: `bytes` is valid for `len` bytes of reads; `w` is an open fd.
    let n = unsafe { libc::write(w.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
    assert_eq!(n, bytes.len() as isize);
}

/// Read what a pipe holds without the ring (the pipe must not be empty).
fn take(r: &OwnedFd) -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    // SAFETY: `buf` is valid for 256 bytes of writes; `r` is an open fd.
    let n = unsafe { libc::read(r.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(n > 0, "the pipe holds bytes");
    buf.truncate(n as usize);
    buf
}

/// What a case found: `Ok` if the bytes moved to or from A, else where they went.
type Found = Result<(), String>;

fn expect(what: &str, got: &[u8], want: &[u8]) -> Found {
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{what}: got {:?}, want {:?}",
            String::from_utf8_lossy(got),
            String::from_utf8_lossy(want)
        ))
    }
}

async fn fd_write(dir: &TempDir) -> Found {
    let (pa, pb) = (dir.file("w-a", b""), dir.file("w-b", b""));
    let a = open(&pa);
    let op = fd::write(&a, b"for A".to_vec(), 0);
    drop(a);
    let b = open(&pb);
    let (n, _) = op.await;
    n.map_err(|e| format!("write failed: {e}"))?;
    drop(b);
    expect("B after a write on A", &contents(&pb), b"")?;
    expect("A after a write on A", &contents(&pa), b"for A")
}

async fn fd_read(dir: &TempDir) -> Found {
    let (pa, pb) = (dir.file("r-a", b"AAAA"), dir.file("r-b", b"BBBB"));
    let a = open(&pa);
    let op = fd::read(&a, Vec::with_capacity(16), 0);
    drop(a);
    let _b = open(&pb);
    let (n, buf) = op.await;
    n.map_err(|e| format!("read failed: {e}"))?;
    expect("a read on A", &buf, b"AAAA")
}

async fn splice_from_file(dir: &TempDir) -> Found {
    let (pa, pb) = (dir.file("si-a", b"from A"), dir.file("si-b", b"from B"));
    let (pr, pw) = pipe2();
    let (a, pw) = (open(&pa), Rc::new(pw));
    let op = pipe::splice(&a, Some(0), &pw, None, 64);
    drop(a);
    let _b = open(&pb);
    op.await.map_err(|e| format!("splice failed: {e}"))?;
    expect("a splice from A", &take(&pr), b"from A")
}

async fn splice_to_file(dir: &TempDir) -> Found {
    let (pa, pb) = (dir.file("so-a", b""), dir.file("so-b", b""));
    let (pr, pw) = pipe2();
    put(&pw, b"to A");
    let (pr, a) = (Rc::new(pr), open(&pa));
    let op = pipe::splice(&pr, None, &a, Some(0), 64);
    drop(a);
    let b = open(&pb);
    op.await.map_err(|e| format!("splice failed: {e}"))?;
    drop(b);
    expect("B after a splice to A", &contents(&pb), b"")?;
    expect("A after a splice to A", &contents(&pa), b"to A")
}

async fn tee(_: &TempDir) -> Found {
    let (ra, wa) = pipe2();
    put(&wa, b"tee A");
    let (out_r, out_w) = pipe2();
    let (ra, out_w) = (Rc::new(ra), Rc::new(out_w));
    let op = pipe::tee(&ra, &out_w, 64);
    drop(ra);
    // B's read end takes A's read end's number if that was closed.
    let (_rb, wb) = pipe2();
    put(&wb, b"tee B");
    op.await.map_err(|e| format!("tee failed: {e}"))?;
    drop(wa);
    expect("a tee from pipe A", &take(&out_r), b"tee A")
}

async fn write_fixed(dir: &TempDir) -> Found {
    let (pa, pb) = (dir.file("wf-a", b""), dir.file("wf-b", b""));
    let pool = FixedPool::new(4096, 1).map_err(|e| format!("FixedPool: {e}"))?;
    let mut lease = pool.lease(16).await.unwrap();
    lease.extend_from_slice(b"fixed A");
    let a = open(&pa);
    let op = lease_ops::write_fixed(&a, lease, 0);
    drop(a);
    let b = open(&pb);
    let (n, _) = op.await;
    n.map_err(|e| format!("write_fixed failed: {e}"))?;
    drop(b);
    expect("B after a write_fixed on A", &contents(&pb), b"")?;
    expect("A after a write_fixed on A", &contents(&pa), b"fixed A")
}

async fn read_fixed(dir: &TempDir) -> Found {
    let (pa, pb) = (dir.file("rf-a", b"AAAA"), dir.file("rf-b", b"BBBB"));
    let pool = FixedPool::new(4096, 1).map_err(|e| format!("FixedPool: {e}"))?;
    let lease = pool.lease(4096).await.unwrap();
    let a = open(&pa);
    let op = lease_ops::read_fixed(&a, lease, 0);
    drop(a);
    let _b = open(&pb);
    let (n, lease) = op.await;
    n.map_err(|e| format!("read_fixed failed: {e}"))?;
    expect("a read_fixed on A", &lease[..], b"AAAA")
}

async fn recv(_: &TempDir) -> Found {
    let ring = BufRing::new(2, 4096).map_err(|e| format!("BufRing: {e}"))?;
    let (a, mut a_peer) = UnixStream::pair().unwrap();
    std::io::Write::write_all(&mut a_peer, b"sent to A").unwrap();
    let a = Rc::new(OwnedFd::from(a));
    let op = lease_ops::recv(&a, &ring);
    drop(a);
    let (_b, mut b_peer) = UnixStream::pair().unwrap();
    std::io::Write::write_all(&mut b_peer, b"sent to B").unwrap();
    let lease = op
        .await
        .map_err(|e| format!("recv failed: {e}"))?
        .ok_or("recv: end of stream")?;
    expect("a recv on A", &lease[..], b"sent to A")
}

type Case = for<'a> fn(&'a TempDir) -> Pin<Box<dyn Future<Output = Found> + 'a>>;

#[test]
fn an_op_keeps_its_fd_open_until_its_final_cqe() {
    let cases: [(&str, Case); 8] = [
        ("fd::write", |d| Box::pin(fd_write(d))),
        ("fd::read", |d| Box::pin(fd_read(d))),
        ("pipe::splice from a file", |d| {
            Box::pin(splice_from_file(d))
        }),
        ("pipe::splice to a file", |d| Box::pin(splice_to_file(d))),
        ("pipe::tee", |d| Box::pin(tee(d))),
        ("lease_ops::write_fixed", |d| Box::pin(write_fixed(d))),
        ("lease_ops::read_fixed", |d| Box::pin(read_fixed(d))),
        ("lease_ops::recv", |d| Box::pin(recv(d))),
    ];
    let dir = TempDir::new();
    let failed: Vec<String> = ringleader::block_on(async {
        let mut failed = Vec::new();
        for (name, case) in cases {
            if let Err(e) = case(&dir).await {
                failed.push(format!("{name}: {e}"));
            }
        }
        failed
    });
    assert!(
        failed.is_empty(),
        "ops used another file than the one they were given:\n{}",
        failed.join("\n")
    );
}
