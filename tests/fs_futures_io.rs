//! `File` implements the `futures::io` traits: `futures::io::copy` moves files byte-exact,
//! the extension traits (`read_to_end`, `lines`, `write_all`, `seek`) work unchanged, and an
//! in-flight read whose `File` is dropped stays memory safe (its op owns the buffer).

use std::future::Future;
use std::io::SeekFrom;
use std::path::PathBuf;

use futures::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use futures::{StreamExt, task::noop_waker};
use ringleader::fs::File;

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

/// Deterministic bytes that differ at every offset of a 64 KiB buffer boundary.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn copy_file_to_file_moves_mebibytes_byte_exact() {
    let dir = TempDir::new("copy");
    let (src, dst) = (dir.join("src"), dir.join("dst"));
    // Not a multiple of the internal buffer size, so the tail is a short read and write.
    let data = pattern((5 << 20) + 12_345);
    std::fs::write(&src, &data).unwrap();
    ringleader::block_on(async {
        let reader = File::open(&src).await.unwrap();
        let mut writer = File::create(&dst).await.unwrap();
        let n = futures::io::copy(reader, &mut writer).await.unwrap();
        assert_eq!(n, data.len() as u64);
        writer.close().await.unwrap();
    });
    let copied = std::fs::read(&dst).unwrap();
    assert_eq!(copied.len(), data.len());
    assert!(copied == data, "byte-exact");
}

#[test]
fn copy_buf_and_read_to_end_into_a_vec() {
    let dir = TempDir::new("tovec");
    let src = dir.join("src");
    let data = pattern(300_000);
    std::fs::write(&src, &data).unwrap();
    ringleader::block_on(async {
        let mut out = futures::io::Cursor::new(Vec::new());
        let n = futures::io::copy_buf(File::open(&src).await.unwrap(), &mut out)
            .await
            .unwrap();
        assert_eq!(n, data.len() as u64);
        assert!(out.into_inner() == data);

        let mut v = Vec::new();
        File::open(&src)
            .await
            .unwrap()
            .read_to_end(&mut v)
            .await
            .unwrap();
        assert!(v == data);
    });
}

#[test]
fn lines_write_all_and_seek_work_through_the_extension_traits() {
    let dir = TempDir::new("lines");
    let path = dir.join("f");
    ringleader::block_on(async {
        let mut f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .open(&path)
            .await
            .unwrap();
        for i in 0..1000 {
            f.write_all(format!("line {i}\n").as_bytes()).await.unwrap();
        }
        f.flush().await.unwrap();
        assert_eq!(f.seek(SeekFrom::Current(0)).await.unwrap(), 8890);
        let end = f.seek(SeekFrom::End(-9)).await.unwrap();
        assert_eq!(end, 8881);
        let mut tail = String::new();
        f.read_to_string(&mut tail).await.unwrap();
        assert_eq!(tail, "line 999\n");

        f.seek(SeekFrom::Start(0)).await.unwrap();
        let lines: Vec<String> = (&mut f).lines().map(|l| l.unwrap()).collect().await;
        assert_eq!(lines.len(), 1000);
        assert_eq!(lines[0], "line 0");
        assert_eq!(lines[999], "line 999");

        // Read some, then write: the write lands at the logical position, not after the
        // read-ahead.
        f.seek(SeekFrom::Start(0)).await.unwrap();
        let mut five = [0u8; 5];
        f.read_exact(&mut five).await.unwrap();
        assert_eq!(&five, b"line ");
        f.write_all(b"Z").await.unwrap();
        f.flush().await.unwrap();
        assert_eq!(f.seek(SeekFrom::Current(0)).await.unwrap(), 6);
        let err = f.seek(SeekFrom::Current(-100)).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
        f.close().await.unwrap();
    });
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("line Z\nline 1\n"), "{:?}", &text[..20]);
    assert_eq!(text.len(), 8890);
}

#[test]
fn dropping_a_file_with_a_read_in_flight_is_safe() {
    let dir = TempDir::new("dropread");
    let path = dir.join("f");
    std::fs::write(&path, pattern(1 << 20)).unwrap();
    ringleader::block_on(async {
        let base = ringleader::runtime::stats();
        for _ in 0..50 {
            let mut f = File::open(&path).await.unwrap();
            let mut buf = [0u8; 4096];
            // Poll once: the read op (owning the internal buffer) is submitted, then abandoned.
            let waker = noop_waker();
            let mut cx = std::task::Context::from_waker(&waker);
            let mut read = f.read(&mut buf);
            let _ = std::pin::Pin::new(&mut read).poll(&mut cx);
            drop(read);
            drop(f);
        }
        // Every abandoned op reaches its final CQE and releases its slot.
        for _ in 0..10_000 {
            if ringleader::runtime::stats().ops_in_flight == base.ops_in_flight {
                break;
            }
            ringleader::yield_now().await;
        }
        assert_eq!(
            ringleader::runtime::stats().ops_in_flight,
            base.ops_in_flight
        );
    });
}
