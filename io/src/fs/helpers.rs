//! Whole-file helpers under tokio's names: [`read`], [`read_to_string`], [`write`],
//! [`copy`], [`canonicalize`].
//!
//! `read` and `write` are ring ops (`OPENAT`, `STATX`, `READ`/`WRITE`, `CLOSE`), one read
//! per chunk straight into the returned `Vec`; `copy` and `canonicalize` have no io_uring
//! op and run on the blocking pool ([`spawn_blocking`](ringleader_executor::spawn_blocking)).
//!
//! Cancellation: dropping a helper's future cancels its op in flight (and closes the file
//! once the kernel is done); a `write` cut short leaves a truncated file. A blocking-pool
//! job (`copy`, `canonicalize`) runs to its end even if its future is dropped.

use std::io;
use std::path::{Path, PathBuf};

use ringleader_buf::IoBuf;

use super::error::{c_path, path_error};
use super::{File, OpenOptions};

/// Bytes asked for per read when the size is unknown or the file grew.
const CHUNK: usize = 256 * 1024;

/// Read a whole file into a `Vec` (tokio's `fs::read`): open, `statx` for the size, then
/// reads into the vector's spare capacity until end of file (so files whose size `statx`
/// does not know, like `/proc` files, are read whole too).
///
/// ```
/// ringleader::block_on(async {
///     let path = std::env::temp_dir().join(format!("rl-doc-read-{}", std::process::id()));
///     ringleader::fs::write(&path, b"hello").await?;
///     assert_eq!(ringleader::fs::read(&path).await?, b"hello");
///     assert_eq!(ringleader::fs::read_to_string(&path).await?, "hello");
///     ringleader::fs::remove_file(&path).await
/// }).unwrap();
/// ```
pub async fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let file = File::open(path.as_ref()).await?;
    let size = file.metadata().await.map_or(0, |m| m.len());
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    // One byte more than the size, so the read that finds the end needs no growth.
    let mut out: Vec<u8> = Vec::with_capacity(size.saturating_add(1).max(64));
    loop {
        if out.len() == out.capacity() {
            out.reserve(CHUNK.max(out.len() / 2));
        }
        let at = out.len();
        let (res, slice) = file.read_at(out.slice(at..), at as u64).await;
        out = slice.into_inner();
        match res {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    file.close().await?;
    Ok(out)
}

/// Read a whole file as UTF-8 (tokio's `fs::read_to_string`); `InvalidData` if it is not.
pub async fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    let bytes = read(path).await?;
    String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Create or truncate a file and write `contents` to it (tokio's `fs::write`). The bytes are
/// copied once into an owned buffer the write op can keep until its CQE.
pub async fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path.as_ref())
        .await?;
    let (res, _) = file.write_all_at(contents.as_ref().to_vec(), 0).await;
    res?;
    file.close().await
}

/// Copy a file's contents and permission bits to `to`, creating or truncating it; returns
/// the bytes copied (tokio's `fs::copy`).
///
/// Runs `std::fs::copy` on the blocking pool, which copies inside the kernel with
/// `copy_file_range` (no byte crosses into user memory; a reflink on btrfs/XFS, a
/// server-side copy on NFS), falling back to `sendfile` and then to read/write. A copy
/// through the ring moves every byte through user memory in chunks, and was slower in our
/// measurement (1 GiB on ext4 and tmpfs, in the commit that added this). For copies that must
/// stay on the ring (fan-out to several files, registered buffers), use groups
/// ([`crate::group`], `examples/fanout.rs`).
///
/// ```
/// ringleader::block_on(async {
///     let dir = std::env::temp_dir();
///     let (a, b) = (dir.join(format!("rl-doc-cp-a-{}", std::process::id())),
///                   dir.join(format!("rl-doc-cp-b-{}", std::process::id())));
///     ringleader::fs::write(&a, vec![7u8; 100_000]).await?;
///     assert_eq!(ringleader::fs::copy(&a, &b).await?, 100_000);
///     assert_eq!(ringleader::fs::read(&b).await?, vec![7u8; 100_000]);
///     ringleader::fs::remove_file(&a).await?;
///     ringleader::fs::remove_file(&b).await
/// }).unwrap();
/// ```
///
/// # Errors
/// As `std::fs::copy`, with the source and destination named in the message.
pub async fn copy(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<u64> {
    let (from, to) = (from.as_ref().to_owned(), to.as_ref().to_owned());
    let c_from = c_path("copy", &from)?;
    let c_to = c_path("copy", &to)?;
    ringleader_executor::spawn_blocking(move || std::fs::copy(&from, &to))
        .await?
        .map_err(|e| path_error("copy", &c_from, Some(&c_to), e))
}

/// The absolute path of `path` with every symlink, `.` and `..` resolved (tokio's
/// `fs::canonicalize`; `realpath(3)` on the blocking pool, io_uring has no op for it).
///
/// ```
/// ringleader::block_on(async {
///     let p = ringleader::fs::canonicalize("/tmp/../tmp/.").await?;
///     assert_eq!(p, std::fs::canonicalize("/tmp")?);
///     Ok::<_, std::io::Error>(())
/// }).unwrap();
/// ```
pub async fn canonicalize(path: impl AsRef<Path>) -> io::Result<PathBuf> {
    let path = path.as_ref().to_owned();
    let c = c_path("realpath", &path)?;
    ringleader_executor::spawn_blocking(move || std::fs::canonicalize(&path))
        .await?
        .map_err(|e| path_error("realpath", &c, None, e))
}
