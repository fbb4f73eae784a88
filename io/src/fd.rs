//! Read and write on an fd with owned buffers (`IORING_OP_READ`/`WRITE`, Linux 5.6).
//!
//! The kernel resolves an SQE's fd number when it reaches the SQE (at the next
//! `io_uring_enter`, or later in a worker), not when the op is created. So [`read`] and
//! [`write`](fn@write) take the fd's owner (an [`IoFd`]: a [`File`](crate::fs::File), a socket, an
//! `Rc<OwnedFd>`) and keep a reference to it in the op's data until the op's final CQE,
//! whether the future is awaited, dropped or forgotten: the caller may drop its own handle
//! at once and the number cannot be closed and reused under the op. [`read_raw`] and
//! [`write_raw`] take a bare `RawFd` and are `unsafe`: keeping it open is the caller's job.

use std::os::fd::RawFd;

use io_uring::{opcode, types};
use ringleader_buf::{BufResult, IoBuf, IoBufMut};
use ringleader_executor::{Completable, Cqe, Op, Orphan};

use crate::group::{FdHold, IoFd};

/// Resources of a read: the buffer the kernel fills, and the fd's owner (none for
/// [`read_raw`]).
#[derive(Debug)]
pub struct Read<B> {
    buf: B,
    _fd: Option<FdHold>,
}

impl<B: IoBufMut> Orphan for Read<B> {}

impl<B: IoBufMut> Completable for Read<B> {
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

/// Resources of a write: the buffer the kernel reads, and the fd's owner (none for
/// [`write_raw`]).
#[derive(Debug)]
pub struct Write<B> {
    buf: B,
    _fd: Option<FdHold>,
}

impl<B: IoBuf> Orphan for Write<B> {}

impl<B: IoBuf> Completable for Write<B> {
    type Output = BufResult<usize, B>;
    fn complete(self, cqe: Cqe) -> BufResult<usize, B> {
        (cqe.into_result().map(|n| n as usize), self.buf)
    }
}

/// Read up to `buf.bytes_total()` bytes from `fd` at `offset` (`u64::MAX`: the file
/// position, as for pipes and sockets). The op keeps `fd` open until its final CQE.
///
/// ```
/// use std::rc::Rc;
/// ringleader::block_on(async {
///     let (r, w) = ringleader::pipe::pipe().await.unwrap();
///     let (r, w) = (Rc::new(r), Rc::new(w));
///     let (n, _) = ringleader::fd::write(&w, b"hi".to_vec(), u64::MAX).await;
///     assert_eq!(n.unwrap(), 2);
///     let (n, buf) = ringleader::fd::read(&r, Vec::with_capacity(8), u64::MAX).await;
///     assert_eq!((n.unwrap(), &buf[..]), (2, &b"hi"[..]));
/// });
/// ```
pub fn read<B: IoBufMut>(fd: &impl IoFd, buf: B, offset: u64) -> Op<Read<B>> {
    let hold = fd.fd_hold();
    submit_read(hold.raw, Some(hold), buf, offset)
}

/// [`read`] on a bare fd number, which the op does not keep open.
///
/// # Safety
/// Until the op's final CQE, the number `fd` must keep naming the file it names now: keep
/// it open. The final CQE comes when the future resolves or, if the future is dropped or
/// forgotten first, at some later point while the runtime runs (the kernel may reach the
/// SQE, or finish a cancelled read, after the drop). Were the number closed and given to
/// another file meanwhile, the op would read from that file. (A number that names no file
/// is allowed only if nothing can be given it before the final CQE; the op then fails with
/// `EBADF`.)
pub unsafe fn read_raw<B: IoBufMut>(fd: RawFd, buf: B, offset: u64) -> Op<Read<B>> {
    submit_read(fd, None, buf, offset)
}

fn submit_read<B: IoBufMut>(
    raw: RawFd,
    hold: Option<FdHold>,
    mut buf: B,
    offset: u64,
) -> Op<Read<B>> {
    let len = buf.bytes_total().min(u32::MAX as usize) as u32;
    let entry = opcode::Read::new(types::Fd(raw), buf.stable_mut_ptr(), len)
        .offset(offset)
        .build();
    // SAFETY: the pointer is the buffer's stable heap address, valid for `len` bytes, and the
    // buffer is the op's data, kept until the final CQE. The fd's owner is in the data too
    // (`read`), or the caller keeps the fd open (`read_raw`'s contract).
    unsafe { Op::submit(entry, Read { buf, _fd: hold }) }
}

/// Write `buf.bytes_init()` bytes to `fd` at `offset` (`u64::MAX`: the file position). The
/// op keeps `fd` open until its final CQE.
pub fn write<B: IoBuf>(fd: &impl IoFd, buf: B, offset: u64) -> Op<Write<B>> {
    let hold = fd.fd_hold();
    submit_write(hold.raw, Some(hold), buf, offset)
}

/// [`write`](fn@write) on a bare fd number, which the op does not keep open.
///
/// # Safety
/// As for [`read_raw`]: until the op's final CQE, `fd` must keep naming the file it names
/// now, or the bytes may land in whatever file was given that number next.
pub unsafe fn write_raw<B: IoBuf>(fd: RawFd, buf: B, offset: u64) -> Op<Write<B>> {
    submit_write(fd, None, buf, offset)
}

fn submit_write<B: IoBuf>(raw: RawFd, hold: Option<FdHold>, buf: B, offset: u64) -> Op<Write<B>> {
    let len = buf.bytes_init().min(u32::MAX as usize) as u32;
    let entry = opcode::Write::new(types::Fd(raw), buf.stable_ptr(), len)
        .offset(offset)
        .build();
    // SAFETY: as for `submit_read`: stable address, `len` initialised bytes, owned until the
    // CQE; the fd is held by the data (`write`) or kept open by the caller (`write_raw`).
    unsafe { Op::submit(entry, Write { buf, _fd: hold }) }
}
