//! `File`: an open file, its positional ops, and conversions to and from std.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::rc::Rc;

use ringleader_buf::{BufResult, IoBuf, IoBufMut};
use ringleader_executor::Op;

use crate::group::{self, LeaseIo, LeaseSlice, LeaseSliceMut};

use super::compat::Stream;
use super::metadata::{Statx, statx_fd};
use super::ops::{self, FdOp, ReadAt, ReadvAt, WriteAt, WritevAt};
use super::{OpenOptions, SharedFd};

/// An open file on the current core's ring.
///
/// Positional ops (`read_at`, `write_at`, ...) take owned buffers and return them in a
/// [`BufResult`]. They return an [`Op`] future that does not borrow the `File`: each op holds
/// its own reference to the fd, so the fd is closed only after the last op using it has
/// completed, even if the `File` is dropped first. Dropping an op future cancels it; its
/// buffer is freed at its final CQE.
///
/// The `futures::io` traits ([`AsyncRead`](futures::io::AsyncRead),
/// [`AsyncWrite`](futures::io::AsyncWrite), [`AsyncBufRead`](futures::io::AsyncBufRead),
/// [`AsyncSeek`](futures::io::AsyncSeek)) read and write at an internal position, starting at
/// 0, through an internal buffer; see [`compat`](super#futures-io). Flush before dropping a
/// `File` that was written through them (or use [`close`](Self::close)), or the last buffered
/// bytes are lost.
///
/// The fd is closed with `close(2)` on drop, or asynchronously with [`close`](Self::close).
/// A `File` is `!Send`: it belongs to the core that opened it (convert with
/// [`into_std`](Self::into_std) / [`from_std`](Self::from_std) to move it).
///
/// ```
/// use ringleader::fs::File;
/// ringleader::block_on(async {
///     let path = std::env::temp_dir().join(format!("rl-doc-file-{}", std::process::id()));
///     let file = File::options().read(true).write(true).create(true).open(&path).await?;
///     file.write_all_at(b"hello, ring".to_vec(), 0).await.0?;
///     file.sync_data().await?;
///     let (res, buf) = file.read_exact_at(vec![0; 4], 7).await;
///     res?;
///     assert_eq!(&buf[..], b"ring");
///     assert_eq!(file.metadata().await?.len(), 11);
///     file.close().await?;
///     ringleader::fs::remove_file(&path).await
/// }).unwrap();
/// ```
pub struct File {
    pub(super) fd: SharedFd,
    /// State of the `futures::io` view, created on first use.
    pub(super) stream: Option<Box<Stream>>,
}

impl File {
    /// Open `path` for reading (`IORING_OP_OPENAT`, Linux 5.6).
    ///
    /// A missing path gives `ErrorKind::NotFound` (errno `ENOENT` through
    /// [`raw_os_error`](super::raw_os_error)) and a message naming the path.
    pub async fn open(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().read(true).open(path).await
    }

    /// Open `path` for writing, creating it or truncating it (`IORING_OP_OPENAT`, Linux 5.6).
    pub async fn create(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .await
    }

    /// A new [`OpenOptions`].
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// Read up to `buf.bytes_total()` bytes at offset `pos` into the start of `buf`
    /// (`IORING_OP_READ`, Linux 5.6). `Ok(0)` is end of file (or an empty buffer).
    pub fn read_at<B: IoBufMut>(&self, buf: B, pos: u64) -> Op<ReadAt<B>> {
        ops::read_at(&self.fd, buf, pos)
    }

    /// Write `buf`'s initialised bytes at offset `pos` (`IORING_OP_WRITE`, Linux 5.6); the
    /// count may be short.
    pub fn write_at<B: IoBuf>(&self, buf: B, pos: u64) -> Op<WriteAt<B>> {
        ops::write_at(&self.fd, buf, pos)
    }

    /// Read at `pos` into `bufs` in order, each up to its `bytes_total()`
    /// (`IORING_OP_READV`, Linux 5.1). At most `IOV_MAX` (1024) buffers.
    pub fn readv_at<B: IoBufMut>(&self, bufs: Vec<B>, pos: u64) -> Op<ReadvAt<B>> {
        ops::readv_at(&self.fd, bufs, pos)
    }

    /// Write `bufs`' initialised bytes in order at `pos` (`IORING_OP_WRITEV`, Linux 5.1). At
    /// most `IOV_MAX` (1024) buffers; the count may be short.
    pub fn writev_at<B: IoBuf>(&self, bufs: Vec<B>, pos: u64) -> Op<WritevAt<B>> {
        ops::writev_at(&self.fd, bufs, pos)
    }

    /// Read at `pos` into a lease (or a [`LeaseSliceMut`] view of one):
    /// `IORING_OP_READ_FIXED` from a registered lease, else `IORING_OP_READ` (Linux 5.6).
    /// The future borrows the lease exclusively; given a whole `&mut Lease`, it sets the
    /// lease's `len` to the bytes read. Until its final CQE the op is a kernel writer: if the
    /// future is forgotten, the lease refuses every access to its bytes for good. See
    /// [`group`](crate::group) for the lease rules.
    pub fn read_fixed_at<'a>(&self, dst: impl Into<LeaseSliceMut<'a>>, pos: u64) -> LeaseIo<'a> {
        group::read_fixed_at(self, dst, pos)
    }

    /// Write a lease's data (or a [`LeaseSlice`] view of it) at `pos`:
    /// `IORING_OP_WRITE_FIXED` from a registered lease, else `IORING_OP_WRITE`. The future
    /// borrows the lease shared, so several writers may run on it at once.
    pub fn write_fixed_at<'a>(&self, src: impl Into<LeaseSlice<'a>>, pos: u64) -> LeaseIo<'a> {
        group::write_fixed_at(self, src, pos)
    }

    /// Fill all of `buf` (`bytes_total()` bytes) from offset `pos`, looping over short reads
    /// (`IORING_OP_READ`, Linux 5.6).
    ///
    /// End of file first gives `ErrorKind::UnexpectedEof`; the bytes read until then are
    /// initialised in `buf`. The buffer comes back in every case.
    pub async fn read_exact_at<B: IoBufMut>(&self, mut buf: B, pos: u64) -> BufResult<(), B> {
        let total = buf.bytes_total();
        let mut done = 0;
        while done < total {
            let (res, slice) = ops::read_at(&self.fd, buf.slice(done..), pos + done as u64).await;
            buf = slice.into_inner();
            match res {
                Ok(0) => {
                    let msg = format!(
                        "read_exact_at: end of file at offset {} with {} of {total} bytes read",
                        pos + done as u64,
                        done
                    );
                    return (Err(io::Error::new(io::ErrorKind::UnexpectedEof, msg)), buf);
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    /// Write all of `buf`'s initialised bytes at `pos`, looping over short writes
    /// (`IORING_OP_WRITE`, Linux 5.6). A write of 0 bytes gives `ErrorKind::WriteZero`. The
    /// buffer comes back in every case.
    pub async fn write_all_at<B: IoBuf>(&self, mut buf: B, pos: u64) -> BufResult<(), B> {
        let total = buf.bytes_init();
        let mut done = 0;
        while done < total {
            let (res, slice) =
                ops::write_at(&self.fd, buf.slice(done..total), pos + done as u64).await;
            buf = slice.into_inner();
            match res {
                Ok(0) => {
                    let msg = format!(
                        "write_all_at: wrote 0 bytes at offset {}",
                        pos + done as u64
                    );
                    return (Err(io::Error::new(io::ErrorKind::WriteZero, msg)), buf);
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    /// Flush data and metadata to the device (`IORING_OP_FSYNC`, Linux 5.1). Only writes
    /// that have completed before this op is created are covered.
    pub fn sync_all(&self) -> Op<FdOp> {
        ops::fsync(&self.fd, false)
    }

    /// Flush data and the metadata needed to read it back (`IORING_OP_FSYNC` with
    /// `IORING_FSYNC_DATASYNC`, Linux 5.1).
    pub fn sync_data(&self) -> Op<FdOp> {
        ops::fsync(&self.fd, true)
    }

    /// Allocate (or, with `mode` flags such as `FALLOC_FL_PUNCH_HOLE |
    /// FALLOC_FL_KEEP_SIZE`, deallocate) `len` bytes from `offset` (`IORING_OP_FALLOCATE`,
    /// Linux 5.6). Mode 0 extends the file size if the range ends past it.
    pub fn fallocate(&self, offset: u64, len: u64, mode: i32) -> Op<FdOp> {
        ops::fallocate(&self.fd, offset, len, mode)
    }

    /// Truncate or extend (with zeros) the file to `len` bytes (`IORING_OP_FTRUNCATE`,
    /// Linux 6.9). Needs the file open for writing.
    pub fn set_len(&self, len: u64) -> Op<FdOp> {
        ops::ftruncate(&self.fd, len)
    }

    /// The file's metadata (`IORING_OP_STATX` with `AT_EMPTY_PATH`, Linux 5.6).
    pub fn metadata(&self) -> Op<Statx> {
        statx_fd(&self.fd)
    }

    /// Flush the `futures::io` write buffer, then close the fd (`IORING_OP_CLOSE`, Linux 5.6),
    /// reporting the errors `close(2)` reports (for example a deferred write-back error
    /// on some file systems).
    ///
    /// If an op future of this file was dropped while in flight and the kernel has not
    /// finished it yet, the fd is closed when that op completes instead, and this returns
    /// `Ok(())`.
    pub async fn close(mut self) -> io::Result<()> {
        let flushed = futures::future::poll_fn(|cx| {
            futures::io::AsyncWrite::poll_flush(std::pin::Pin::new(&mut self), cx)
        })
        .await;
        let File { fd, stream } = self;
        drop(stream);
        let closed = match Rc::try_unwrap(fd) {
            Ok(fd) => ops::close(fd).await,
            Err(_) => Ok(()),
        };
        flushed.and(closed)
    }

    /// Wrap a std file. The `futures::io` position starts at 0, whatever the fd's offset.
    pub fn from_std(file: std::fs::File) -> File {
        File::from(OwnedFd::from(file))
    }

    /// The std file with the same fd, dropping unflushed `futures::io` bytes.
    ///
    /// # Panics
    /// Only if an op future of this file was dropped in flight and the kernel has not
    /// finished it yet, *and* duplicating the fd fails (`EMFILE`): the fd must stay open for
    /// that op, so the std file gets a duplicate. Use [`try_into_std`](Self::try_into_std) to
    /// avoid both the duplicate and the panic.
    pub fn into_std(self) -> std::fs::File {
        std::fs::File::from(self.into_owned_fd())
    }

    /// The std file with the same fd, or `self` back while a dropped op still uses the fd.
    pub fn try_into_std(self) -> Result<std::fs::File, File> {
        let File { fd, stream } = self;
        drop(stream);
        Rc::try_unwrap(fd)
            .map(std::fs::File::from)
            .map_err(File::from_shared)
    }

    /// The shared fd, for ops that keep it open until their final CQE (groups).
    pub(crate) fn shared_fd(&self) -> SharedFd {
        Rc::clone(&self.fd)
    }

    fn from_shared(fd: SharedFd) -> File {
        File { fd, stream: None }
    }

    fn into_owned_fd(self) -> OwnedFd {
        let File { fd, stream } = self;
        // Dropping the stream orphans its in-flight op, which keeps its own fd reference.
        drop(stream);
        Rc::try_unwrap(fd).unwrap_or_else(|shared| {
            shared
                .try_clone()
                .unwrap_or_else(|e| panic!("File::into_std: cannot duplicate the fd: {e}"))
        })
    }
}

impl From<OwnedFd> for File {
    fn from(fd: OwnedFd) -> File {
        File::from_shared(Rc::new(fd))
    }
}

impl From<std::fs::File> for File {
    fn from(file: std::fs::File) -> File {
        File::from_std(file)
    }
}

impl From<File> for OwnedFd {
    /// See [`File::into_std`] for the (rare) case of a duplicate.
    fn from(file: File) -> OwnedFd {
        file.into_owned_fd()
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl FromRawFd for File {
    /// # Safety
    /// `fd` must be an open fd that the caller owns and gives up, as for
    /// [`OwnedFd::from_raw_fd`].
    unsafe fn from_raw_fd(fd: RawFd) -> File {
        // SAFETY: forwarded to the caller.
        File::from(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

impl IntoRawFd for File {
    /// See [`File::into_std`] for the (rare) case of a duplicate.
    fn into_raw_fd(self) -> RawFd {
        self.into_owned_fd().into_raw_fd()
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("fd", &self.fd.as_raw_fd())
            .field("stream", &self.stream)
            .finish()
    }
}
