//! Resources of the fs ops: what each [`Op`] owns until its final CQE.
//!
//! You name these types only to store an op future (`Op<ReadAt<Vec<u8>>>`) in a struct. Every
//! op on an open [`File`](super::File) holds a reference to the file's fd, so the fd stays open
//! (and its number cannot be reused by another open) until the kernel is done with the op, even
//! when the `File` is dropped first. Buffers are owned and come back in the op's [`BufResult`].
//! [`OpenAt`], [`OpenAt2`], [`PathOp`] and [`Statx`] (by path) own their path strings instead.
//!
//! Invariant kept by the constructors here: an SQE's pointers point into memory owned by the
//! op's data that does not move with it (a buffer's stable heap bytes, a heap `iovec` array).
//! A read or write that continues inside a buffer takes a [`Slice`](ringleader_buf::Slice).

use std::io;
use std::os::fd::AsRawFd;

use io_uring::types::FsyncFlags;
use io_uring::{opcode, types};
use ringleader_buf::{BufResult, IoBuf, IoBufMut};
use ringleader_executor::{Completable, Cqe, Op, Orphan};

use super::SharedFd;

pub use super::metadata::Statx;
pub use super::open_options::OpenAt;
pub use super::path::PathOp;
pub use super::resolve::OpenAt2;

/// Resources of a read at an offset (`IORING_OP_READ`, Linux 5.6).
#[derive(Debug)]
pub struct ReadAt<B> {
    _fd: SharedFd,
    buf: B,
}

impl<B: IoBufMut> Orphan for ReadAt<B> {}

impl<B: IoBufMut> Completable for ReadAt<B> {
    type Output = BufResult<usize, B>;
    fn complete(mut self, cqe: Cqe) -> BufResult<usize, B> {
        match cqe.into_result() {
            Ok(n) => {
                // SAFETY: the kernel reported `n` bytes written at the buffer's start, and
                // `n <= bytes_total` because that is the length the SQE carried.
                unsafe { self.buf.set_init(n as usize) };
                (Ok(n as usize), self.buf)
            }
            Err(e) => (Err(e), self.buf),
        }
    }
}

/// Read into `buf[..bytes_total]` from file offset `pos` (a [`Slice`](ringleader_buf::Slice)
/// reads into its range).
pub(super) fn read_at<B: IoBufMut>(fd: &SharedFd, mut buf: B, pos: u64) -> Op<ReadAt<B>> {
    let len = buf.bytes_total().min(u32::MAX as usize) as u32;
    let entry = opcode::Read::new(types::Fd(fd.as_raw_fd()), buf.stable_mut_ptr(), len)
        .offset(pos)
        .build();
    let data = ReadAt {
        _fd: SharedFd::clone(fd),
        buf,
    };
    // SAFETY: the pointer is the buffer's stable heap address, valid for `len` bytes; the
    // buffer is the op's data until the final CQE, and the fd is kept open by `_fd`.
    unsafe { Op::submit(entry, data) }
}

/// Resources of a write at an offset (`IORING_OP_WRITE`, Linux 5.6).
#[derive(Debug)]
pub struct WriteAt<B> {
    _fd: SharedFd,
    buf: B,
}

impl<B: IoBuf> Orphan for WriteAt<B> {}

impl<B: IoBuf> Completable for WriteAt<B> {
    type Output = BufResult<usize, B>;
    fn complete(self, cqe: Cqe) -> BufResult<usize, B> {
        (cqe.into_result().map(|n| n as usize), self.buf)
    }
}

/// Write `buf[..bytes_init]` at file offset `pos`.
pub(super) fn write_at<B: IoBuf>(fd: &SharedFd, buf: B, pos: u64) -> Op<WriteAt<B>> {
    let len = buf.bytes_init().min(u32::MAX as usize) as u32;
    let entry = opcode::Write::new(types::Fd(fd.as_raw_fd()), buf.stable_ptr(), len)
        .offset(pos)
        .build();
    let data = WriteAt {
        _fd: SharedFd::clone(fd),
        buf,
    };
    // SAFETY: the pointer is the buffer's stable address with `len` initialised bytes, owned
    // by the op's data until the final CQE; the fd is kept open by `_fd`.
    unsafe { Op::submit(entry, data) }
}

/// Resources of a vectored read (`IORING_OP_READV`, Linux 5.1): the buffers and the heap
/// `iovec` array pointing at them.
#[derive(Debug)]
pub struct ReadvAt<B> {
    _fd: SharedFd,
    bufs: Vec<B>,
    _iovecs: Box<[Iovec]>,
}

/// A `libc::iovec` that is `Debug`.
#[repr(transparent)]
pub(super) struct Iovec(libc::iovec);

impl std::fmt::Debug for Iovec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:p}+{}", self.0.iov_base, self.0.iov_len)
    }
}

impl<B: IoBufMut> Orphan for ReadvAt<B> {}

impl<B: IoBufMut> Completable for ReadvAt<B> {
    type Output = BufResult<usize, Vec<B>>;
    fn complete(mut self, cqe: Cqe) -> BufResult<usize, Vec<B>> {
        match cqe.into_result() {
            Ok(n) => {
                let mut left = n as usize;
                for buf in &mut self.bufs {
                    let here = left.min(buf.bytes_total());
                    // SAFETY: the kernel fills the iovecs in order, each up to its length
                    // (`bytes_total`), so the first `here` bytes of this buffer are written.
                    unsafe { buf.set_init(here) };
                    left -= here;
                }
                (Ok(n as usize), self.bufs)
            }
            Err(e) => (Err(e), self.bufs),
        }
    }
}

pub(super) fn readv_at<B: IoBufMut>(fd: &SharedFd, mut bufs: Vec<B>, pos: u64) -> Op<ReadvAt<B>> {
    let iovecs: Box<[Iovec]> = bufs
        .iter_mut()
        .map(|b| {
            Iovec(libc::iovec {
                iov_base: b.stable_mut_ptr().cast(),
                iov_len: b.bytes_total(),
            })
        })
        .collect();
    let entry = opcode::Readv::new(
        types::Fd(fd.as_raw_fd()),
        iovecs.as_ptr().cast::<libc::iovec>(),
        iovecs.len().min(u32::MAX as usize) as u32,
    )
    .offset(pos)
    .build();
    let data = ReadvAt {
        _fd: SharedFd::clone(fd),
        bufs,
        _iovecs: iovecs,
    };
    // SAFETY: the iovec array is a boxed slice (its heap address survives the move into the
    // data) and each entry points at a buffer's stable bytes, `bytes_total` long; buffers and
    // array are the op's data until the final CQE; the fd is kept open by `_fd`.
    unsafe { Op::submit(entry, data) }
}

/// Resources of a vectored write (`IORING_OP_WRITEV`, Linux 5.1).
#[derive(Debug)]
pub struct WritevAt<B> {
    _fd: SharedFd,
    bufs: Vec<B>,
    _iovecs: Box<[Iovec]>,
}

impl<B: IoBuf> Orphan for WritevAt<B> {}

impl<B: IoBuf> Completable for WritevAt<B> {
    type Output = BufResult<usize, Vec<B>>;
    fn complete(self, cqe: Cqe) -> BufResult<usize, Vec<B>> {
        (cqe.into_result().map(|n| n as usize), self.bufs)
    }
}

pub(super) fn writev_at<B: IoBuf>(fd: &SharedFd, bufs: Vec<B>, pos: u64) -> Op<WritevAt<B>> {
    let iovecs: Box<[Iovec]> = bufs
        .iter()
        .map(|b| {
            Iovec(libc::iovec {
                iov_base: b.stable_ptr().cast_mut().cast(),
                iov_len: b.bytes_init(),
            })
        })
        .collect();
    let entry = opcode::Writev::new(
        types::Fd(fd.as_raw_fd()),
        iovecs.as_ptr().cast::<libc::iovec>(),
        iovecs.len().min(u32::MAX as usize) as u32,
    )
    .offset(pos)
    .build();
    let data = WritevAt {
        _fd: SharedFd::clone(fd),
        bufs,
        _iovecs: iovecs,
    };
    // SAFETY: as for `readv_at`, with each iovec covering a buffer's initialised bytes, which
    // the kernel only reads.
    unsafe { Op::submit(entry, data) }
}

/// Resources of an op that needs only the fd: `fsync`, `fallocate`, `ftruncate`.
#[derive(Debug)]
pub struct FdOp {
    _fd: SharedFd,
}

impl Orphan for FdOp {}

impl Completable for FdOp {
    type Output = io::Result<()>;
    fn complete(self, cqe: Cqe) -> io::Result<()> {
        cqe.into_result().map(drop)
    }
}

fn submit_fd_op(fd: &SharedFd, entry: io_uring::squeue::Entry) -> Op<FdOp> {
    let data = FdOp {
        _fd: SharedFd::clone(fd),
    };
    // SAFETY: the SQE carries no pointer, only the fd, which `_fd` keeps open until the CQE.
    unsafe { Op::submit(entry, data) }
}

/// `IORING_OP_FSYNC` (Linux 5.1), with `IORING_FSYNC_DATASYNC` when `data_only`.
pub(super) fn fsync(fd: &SharedFd, data_only: bool) -> Op<FdOp> {
    let flags = if data_only {
        FsyncFlags::DATASYNC
    } else {
        FsyncFlags::empty()
    };
    let entry = opcode::Fsync::new(types::Fd(fd.as_raw_fd()))
        .flags(flags)
        .build();
    submit_fd_op(fd, entry)
}

/// `IORING_OP_FALLOCATE` (Linux 5.6).
pub(super) fn fallocate(fd: &SharedFd, offset: u64, len: u64, mode: i32) -> Op<FdOp> {
    let entry = opcode::Fallocate::new(types::Fd(fd.as_raw_fd()), len)
        .offset(offset)
        .mode(mode)
        .build();
    submit_fd_op(fd, entry)
}

/// `IORING_OP_FTRUNCATE` (Linux 6.9).
pub(super) fn ftruncate(fd: &SharedFd, len: u64) -> Op<FdOp> {
    let entry = opcode::Ftruncate::new(types::Fd(fd.as_raw_fd()), len).build();
    submit_fd_op(fd, entry)
}

/// Resources of a close (`IORING_OP_CLOSE`, Linux 5.6): none; the fd number was released by
/// its owner and is closed by the kernel even if the op future is dropped.
#[derive(Debug)]
pub struct Close(());

impl Orphan for Close {}

impl Completable for Close {
    type Output = io::Result<()>;
    fn complete(self, cqe: Cqe) -> io::Result<()> {
        cqe.into_result().map(drop)
    }
}

/// Close `fd`, which the caller owned and gives up.
pub(super) fn close(fd: std::os::fd::OwnedFd) -> Op<Close> {
    use std::os::fd::IntoRawFd;
    let entry = opcode::Close::new(types::Fd(fd.into_raw_fd())).build();
    // SAFETY: the SQE carries no pointer; the fd's ownership passes to the kernel's close.
    unsafe { Op::submit(entry, Close(())) }
}
