//! Positional and vectored reads and writes on a `File` move the right bytes to the right
//! offsets, loop over short counts where asked, report end of file, and always give the
//! buffers back; I/O on an fd that is not open (or not open for the op) is `EBADF`.

use std::io::ErrorKind;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::path::PathBuf;

use ringleader::buf::IoBuf;
use ringleader::fs::{File, OpenOptions};

/// A fresh directory under the temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("rl-fs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn rw(path: &std::path::Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .await
        .unwrap()
}

#[test]
fn write_at_and_read_at_round_trip_at_offsets() {
    let dir = TempDir::new("rw");
    let path = dir.join("f");
    ringleader::block_on(async {
        let f = rw(&path).await;
        let (n, buf) = f.write_at(b"world".to_vec(), 6).await;
        assert_eq!(
            (n.unwrap(), &buf[..]),
            (5, &b"world"[..]),
            "buffer comes back"
        );
        let (n, _) = f.write_at(b"hello ".to_vec(), 0).await;
        assert_eq!(n.unwrap(), 6);

        let (n, buf) = f.read_at(Vec::with_capacity(5), 6).await;
        assert_eq!((n.unwrap(), &buf[..]), (5, &b"world"[..]));
        // A read past the end is short; at the end it is 0.
        let (n, buf) = f.read_at(Vec::with_capacity(64), 3).await;
        assert_eq!((n.unwrap(), &buf[..]), (8, &b"lo world"[..]));
        let (n, buf) = f.read_at(Vec::with_capacity(8), 11).await;
        assert_eq!((n.unwrap(), buf.len()), (0, 0));
    });
    assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
}

#[test]
fn read_exact_and_write_all_move_large_buffers_exactly() {
    let dir = TempDir::new("exact");
    let path = dir.join("f");
    let data = pattern(3 << 20, 7);
    ringleader::block_on(async {
        let f = rw(&path).await;
        let (res, back) = f.write_all_at(data.clone(), 4096).await;
        res.unwrap();
        assert_eq!(back.len(), data.len());
        // A boxed slice is filled entirely, across as many reads as it takes.
        let (res, buf) = f
            .read_exact_at(vec![0u8; data.len()].into_boxed_slice(), 4096)
            .await;
        res.unwrap();
        assert!(buf[..] == data[..], "byte-exact");
        // A Vec is filled to its capacity.
        let (res, buf) = f.read_exact_at(Vec::with_capacity(100), 4096 + 10).await;
        res.unwrap();
        assert_eq!(&buf[..], &data[10..110]);
    });
    let on_disk = std::fs::read(&path).unwrap();
    assert!(on_disk[..4096].iter().all(|&b| b == 0));
    assert!(on_disk[4096..] == data[..]);
}

#[test]
fn read_exact_at_eof_is_unexpected_eof_and_returns_the_bytes_read() {
    let dir = TempDir::new("eof");
    let path = dir.join("f");
    std::fs::write(&path, b"0123456789").unwrap();
    ringleader::block_on(async {
        let f = File::open(&path).await.unwrap();
        let (res, buf) = f.read_exact_at(Vec::with_capacity(8), 6).await;
        let err = res.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err}");
        assert_eq!(&buf[..], b"6789", "bytes before the end are kept");
        assert_eq!(buf.capacity(), 8, "the buffer comes back");
        let (res, buf) = f.read_exact_at(Vec::with_capacity(4), 10).await;
        assert_eq!(res.unwrap_err().kind(), ErrorKind::UnexpectedEof);
        assert!(buf.is_empty());
        // Exactly up to the end is fine.
        let (res, buf) = f.read_exact_at(Vec::with_capacity(4), 6).await;
        res.unwrap();
        assert_eq!(&buf[..], b"6789");
    });
}

#[test]
fn vectored_round_trip_fills_buffers_in_order() {
    let dir = TempDir::new("vec");
    let path = dir.join("f");
    let parts = [pattern(1000, 1), pattern(5000, 2), pattern(3, 3)];
    let all: Vec<u8> = parts.concat();
    ringleader::block_on(async {
        let f = rw(&path).await;
        let (n, back) = f.writev_at(parts.to_vec(), 100).await;
        assert_eq!(n.unwrap(), all.len());
        assert_eq!(back.len(), 3);

        let bufs = vec![
            Vec::with_capacity(10),
            Vec::with_capacity(4000),
            Vec::with_capacity(10_000),
        ];
        let (n, bufs) = f.readv_at(bufs, 100).await;
        assert_eq!(n.unwrap(), all.len());
        assert_eq!(
            (bufs[0].len(), bufs[1].len(), bufs[2].len()),
            (10, 4000, all.len() - 4010)
        );
        assert_eq!(bufs.concat(), all);
        // Past the end: nothing read, nothing marked initialised.
        let (n, bufs) = f
            .readv_at(
                (0..2).map(|_| Vec::<u8>::with_capacity(4)).collect(),
                1 << 20,
            )
            .await;
        assert_eq!(n.unwrap(), 0);
        assert!(bufs.iter().all(|b| b.is_empty()));
    });
    let on_disk = std::fs::read(&path).unwrap();
    assert_eq!(&on_disk[100..], &all[..]);
}

/// A descriptor number the kernel cannot have handed out: at or above `RLIMIT_NOFILE`.
fn unopened_fd() -> i32 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for getrlimit to fill.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim.rlim_cur.min(i32::MAX as u64 - 1) as i32
}

#[test]
fn io_on_a_closed_fd_is_ebadf_and_returns_the_buffer() {
    ringleader::block_on(async {
        // SAFETY: the fd is not open, so nothing else owns it; it is released with
        // `into_raw_fd` below, never closed.
        let f = unsafe { File::from_raw_fd(unopened_fd()) };
        let (res, buf) = f.read_at(Vec::with_capacity(16), 0).await;
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EBADF));
        assert_eq!((buf.capacity(), buf.len()), (16, 0));
        let (res, buf) = f.write_at(b"abc".to_vec(), 0).await;
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EBADF));
        assert_eq!(&buf[..], b"abc");
        let (res, bufs) = f.readv_at(vec![Vec::<u8>::with_capacity(4)], 0).await;
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EBADF));
        assert_eq!(bufs.len(), 1);
        assert_eq!(
            f.sync_all().await.unwrap_err().raw_os_error(),
            Some(libc::EBADF)
        );
        assert_eq!(
            f.metadata().await.unwrap_err().raw_os_error(),
            Some(libc::EBADF)
        );
        let _ = f.into_raw_fd();
    });
}

#[test]
fn write_on_a_read_only_file_is_ebadf() {
    let dir = TempDir::new("rdonly");
    let path = dir.join("f");
    std::fs::write(&path, b"keep").unwrap();
    ringleader::block_on(async {
        let f = File::open(&path).await.unwrap();
        let (res, buf) = f.write_all_at(b"overwrite".to_vec(), 0).await;
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EBADF));
        assert_eq!(&buf[..], b"overwrite");
        let (res, buf) = f.read_exact_at(vec![0u8; 4], 0).await;
        res.unwrap();
        assert_eq!(&buf[..], b"keep");
    });
}

#[test]
fn an_op_keeps_the_fd_open_after_the_file_is_dropped() {
    let dir = TempDir::new("keepfd");
    let path = dir.join("f");
    std::fs::write(&path, b"still readable").unwrap();
    ringleader::block_on(async {
        let f = File::open(&path).await.unwrap();
        let read = f.read_at(Vec::with_capacity(32), 0);
        drop(f);
        // Anything opened now must not take over the fd number the read was given.
        let other = File::open("/dev/zero").await.unwrap();
        let (n, buf) = read.await;
        assert_eq!((n.unwrap(), &buf[..]), (14, &b"still readable"[..]));
        drop(other);
    });
}

#[test]
fn slices_read_and_write_inside_a_buffer() {
    let dir = TempDir::new("slice");
    let path = dir.join("f");
    ringleader::block_on(async {
        let f = rw(&path).await;
        let (n, s) = f.write_at(b"xxHELLOxx".to_vec().slice(2..7), 0).await;
        assert_eq!(n.unwrap(), 5);
        assert_eq!(s.into_inner(), b"xxHELLOxx");
        let mut buf = Vec::with_capacity(8);
        buf.extend_from_slice(b"ab");
        let (n, s) = f.read_at(buf.slice(2..), 0).await;
        assert_eq!(n.unwrap(), 5);
        let buf = s.into_inner();
        assert_eq!(&buf[..], b"abHELLO");
        assert_eq!(buf.bytes_total(), 8);
    });
}
