//! SQE builders for the group ops. Pure encoding: nothing here is pushed, so nothing here is
//! unsafe; whoever submits an entry answers for its pointers (see `hold.rs`).

use std::os::fd::RawFd;

use io_uring::opcode;
use io_uring::squeue::Entry;
use io_uring::types::Fd;

/// `IORING_OP_READ_FIXED` into a registered buffer, or `IORING_OP_READ` (Linux 5.6).
pub(crate) fn read(fd: RawFd, ptr: *mut u8, len: u32, index: Option<u16>, pos: u64) -> Entry {
    match index {
        Some(i) => opcode::ReadFixed::new(Fd(fd), ptr, len, i)
            .offset(pos)
            .build(),
        None => opcode::Read::new(Fd(fd), ptr, len).offset(pos).build(),
    }
}

/// `IORING_OP_WRITE_FIXED` from a registered buffer, or `IORING_OP_WRITE` (Linux 5.6).
pub(crate) fn write(fd: RawFd, ptr: *const u8, len: u32, index: Option<u16>, pos: u64) -> Entry {
    match index {
        Some(i) => opcode::WriteFixed::new(Fd(fd), ptr, len, i)
            .offset(pos)
            .build(),
        None => opcode::Write::new(Fd(fd), ptr, len).offset(pos).build(),
    }
}

/// `IORING_OP_WRITEV_FIXED` from a registered buffer (Linux 6.15), or `IORING_OP_WRITEV`
/// (Linux 5.1): `n` iovecs at `iov`.
pub(crate) fn writev(
    fd: RawFd,
    iov: *const libc::iovec,
    n: u32,
    index: Option<u16>,
    pos: u64,
) -> Entry {
    match index {
        Some(i) => opcode::WritevFixed::new(Fd(fd), iov, n, i)
            .offset(pos)
            .build(),
        None => opcode::Writev::new(Fd(fd), iov, n).offset(pos).build(),
    }
}

/// `IORING_OP_SEND` (Linux 5.6) with `flags`, never raising `SIGPIPE`.
pub(crate) fn send(fd: RawFd, ptr: *const u8, len: u32, flags: i32) -> Entry {
    opcode::Send::new(Fd(fd), ptr, len)
        .flags(flags | libc::MSG_NOSIGNAL)
        .build()
}

/// `IORING_OP_SENDMSG` (Linux 5.3) of `msg` with `flags`, never raising `SIGPIPE`.
pub(crate) fn sendmsg(fd: RawFd, msg: *const libc::msghdr, flags: i32) -> Entry {
    opcode::SendMsg::new(Fd(fd), msg)
        .flags((flags | libc::MSG_NOSIGNAL) as u32)
        .build()
}

/// `IORING_OP_SEND_ZC` (Linux 6.0), with `IORING_RECVSEND_FIXED_BUF` from a registered
/// buffer. Posts a notification CQE after its result; the executor completes the op there.
pub(crate) fn send_zc(
    fd: RawFd,
    ptr: *const u8,
    len: u32,
    index: Option<u16>,
    flags: i32,
) -> Entry {
    opcode::SendZc::new(Fd(fd), ptr, len)
        .buf_index(index)
        .flags(flags | libc::MSG_NOSIGNAL)
        .build()
}

/// `IORING_OP_RECV` (Linux 5.6).
pub(crate) fn recv(fd: RawFd, ptr: *mut u8, len: u32) -> Entry {
    opcode::Recv::new(Fd(fd), ptr, len).build()
}

/// `IORING_OP_SPLICE` (Linux 5.7); `None`: the fd's position (always for a pipe).
pub(crate) fn splice(
    fd_in: RawFd,
    off_in: Option<u64>,
    fd_out: RawFd,
    off_out: Option<u64>,
    len: u32,
) -> Entry {
    let off = |o: Option<u64>| o.map_or(-1, |o| o as i64);
    opcode::Splice::new(Fd(fd_in), off(off_in), Fd(fd_out), off(off_out), len).build()
}

/// `IORING_OP_TEE` (Linux 5.8): duplicate pipe pages without consuming them.
pub(crate) fn tee(fd_in: RawFd, fd_out: RawFd, len: u32) -> Entry {
    opcode::Tee::new(Fd(fd_in), Fd(fd_out), len).build()
}

/// `IORING_OP_NOP` (Linux 5.1): the leader of a bare lease.
pub(crate) fn nop() -> Entry {
    opcode::Nop::new().build()
}

/// A length as an SQE's `u32`: leases and pipes never exceed 4 GiB (1 GiB slots, 1 GiB pipe
/// limit); clamp rather than wrap all the same.
pub(crate) fn len32(n: usize) -> u32 {
    n.min(u32::MAX as usize) as u32
}
