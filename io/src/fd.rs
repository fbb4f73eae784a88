//! Read and write on a raw fd with owned buffers (`IORING_OP_READ`/`WRITE`, Linux 5.6).

use std::os::fd::RawFd;

use io_uring::{opcode, types};
use ringleader_buf::{BufResult, IoBuf, IoBufMut};
use ringleader_executor::{Completable, Cqe, Op, Orphan};

/// Resources of a read: the buffer the kernel fills.
#[derive(Debug)]
pub struct Read<B> {
    buf: B,
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

/// Resources of a write: the buffer the kernel reads.
#[derive(Debug)]
pub struct Write<B> {
    buf: B,
}

impl<B: IoBuf> Orphan for Write<B> {}

impl<B: IoBuf> Completable for Write<B> {
    type Output = BufResult<usize, B>;
    fn complete(self, cqe: Cqe) -> BufResult<usize, B> {
        (cqe.into_result().map(|n| n as usize), self.buf)
    }
}

/// Read up to `buf.bytes_total()` bytes from `fd` at `offset` (`u64::MAX`: the file
/// position, as for pipes and sockets). The fd must stay open until the op completes.
///
/// ```
/// ringleader_executor::block_on(async {
///     let mut fds = [0; 2];
///     assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
///     let (r, _) = ringleader_io::fd::write(fds[1], b"hi".to_vec(), u64::MAX).await;
///     assert_eq!(r.unwrap(), 2);
///     let (r, buf) = ringleader_io::fd::read(fds[0], Vec::with_capacity(8), u64::MAX).await;
///     assert_eq!((r.unwrap(), &buf[..]), (2, &b"hi"[..]));
///     unsafe { libc::close(fds[0]); libc::close(fds[1]); }
/// });
/// ```
pub fn read<B: IoBufMut>(fd: RawFd, mut buf: B, offset: u64) -> Op<Read<B>> {
    let len = buf.bytes_total().min(u32::MAX as usize) as u32;
    let entry = opcode::Read::new(types::Fd(fd), buf.stable_mut_ptr(), len)
        .offset(offset)
        .build();
    // SAFETY: the pointer is the buffer's stable heap address, valid for `len` bytes, and the
    // buffer is the op's data, kept until the final CQE.
    unsafe { Op::submit(entry, Read { buf }) }
}

/// Write `buf.bytes_init()` bytes to `fd` at `offset` (`u64::MAX`: the file position).
pub fn write<B: IoBuf>(fd: RawFd, buf: B, offset: u64) -> Op<Write<B>> {
    let len = buf.bytes_init().min(u32::MAX as usize) as u32;
    let entry = opcode::Write::new(types::Fd(fd), buf.stable_ptr(), len)
        .offset(offset)
        .build();
    // SAFETY: as for `read`: stable address, `len` initialised bytes, owned until the CQE.
    unsafe { Op::submit(entry, Write { buf }) }
}
