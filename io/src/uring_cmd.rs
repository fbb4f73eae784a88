//! `IORING_OP_URING_CMD` (Linux 5.19): a command for the file's own driver, akin to an
//! `ioctl` that runs on the ring (sockets answer `SOCKET_URING_OP_SIOCINQ` and friends from
//! 6.7; NVMe passthrough, ublk and FUSE over io_uring take theirs).
//!
//! A command is an opcode (`cmd_op`) and up to 80 command bytes. Up to 16 bytes fit a
//! 64-byte SQE, so [`uring_cmd`] works on every ring; more need the 128-byte SQEs of a ring
//! built with [`Builder::sqe128`](ringleader_executor::Builder::sqe128) (on a 64-byte ring
//! such a command completes with `EINVAL`, unless bytes 16.. are all zero).
//!
//! Commands whose SQE points into memory (an `addr`/`len` pair, as FUSE's `REGISTER` has)
//! are built with [`Cmd`] and submitted with [`Cmd::submit`], which is `unsafe`: what the
//! pointer means is the driver's business.

use std::os::fd::RawFd;

use io_uring::opcode;
use io_uring::squeue::Entry128;
use io_uring::types;
use ringleader_executor::{Completable, Cqe, Op, Orphan};

use crate::group::{FdHold, IoFd};

/// The most command bytes a 128-byte SQE carries.
pub const CMD_MAX: usize = 80;

/// Resources of a `URING_CMD`: the fd's owner and whatever else the command points into.
pub struct UringCmd<D = ()> {
    _fd: Option<FdHold>,
    data: D,
}

impl<D> std::fmt::Debug for UringCmd<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringCmd").finish_non_exhaustive()
    }
}

impl<D: 'static> Orphan for UringCmd<D> {}

impl<D: 'static> Completable for UringCmd<D> {
    type Output = (std::io::Result<u32>, D);
    fn complete(self, cqe: Cqe) -> Self::Output {
        (cqe.into_result(), self.data)
    }
}

/// Send command `cmd_op` with `cmd` (at most [`CMD_MAX`] bytes) to `fd`'s driver; resolves to
/// the driver's result (`cqe.res`). The op keeps `fd` open until its final CQE.
///
/// ```
/// // SOCKET_URING_OP_SIOCINQ (Linux 6.7): the bytes waiting in a socket's receive queue.
/// use std::io::Write;
/// ringleader::block_on(async {
///     let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
///     let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
///     let s = ringleader::net::TcpStream::from_std(l.accept().unwrap().0).unwrap();
///     c.write_all(b"hello").unwrap();
///     # while ringleader::ops::uring_cmd(&s, 0, &[]).await.0.unwrap() < 5 {}
///     let (queued, ()) = ringleader::ops::uring_cmd(&s, 0, &[]).await;
///     assert_eq!(queued.unwrap(), 5);
/// });
/// ```
///
/// # Panics
/// If `cmd` is longer than [`CMD_MAX`] bytes, or outside a ringleader runtime.
pub fn uring_cmd(fd: &impl IoFd, cmd_op: u32, cmd: &[u8]) -> Op<UringCmd> {
    let hold = fd.fd_hold();
    let c = Cmd::new(hold.raw, cmd_op).cmd(cmd);
    // SAFETY: the SQE carries no pointer (no `addr`, no fixed buffer), only the fd number,
    // whose owner the op's data keeps until the final CQE.
    unsafe { c.submit_with(Some(hold), ()) }
}

/// A `URING_CMD` SQE under construction, for commands that point into memory.
#[derive(Clone, Copy, Debug)]
pub struct Cmd {
    fd: RawFd,
    cmd_op: u32,
    cmd: [u8; CMD_MAX],
    cmd_len: usize,
    addr: u64,
    len: u32,
}

impl Cmd {
    /// Command `cmd_op` to the driver of `fd`.
    pub fn new(fd: RawFd, cmd_op: u32) -> Self {
        Cmd {
            fd,
            cmd_op,
            cmd: [0; CMD_MAX],
            cmd_len: 0,
            addr: 0,
            len: 0,
        }
    }

    /// The command bytes (`sqe->cmd`).
    ///
    /// # Panics
    /// If `cmd` is longer than [`CMD_MAX`].
    pub fn cmd(mut self, cmd: &[u8]) -> Self {
        assert!(
            cmd.len() <= CMD_MAX,
            "a URING_CMD carries at most {CMD_MAX} command bytes, not {}",
            cmd.len()
        );
        self.cmd = [0; CMD_MAX];
        self.cmd[..cmd.len()].copy_from_slice(cmd);
        self.cmd_len = cmd.len();
        self
    }

    /// `sqe->addr` and `sqe->len` (meaning: the driver's; FUSE's `REGISTER` takes an iovec
    /// array and its length).
    pub fn addr_len(mut self, addr: u64, len: u32) -> Self {
        self.addr = addr;
        self.len = len;
        self
    }

    /// The 128-byte SQE.
    pub fn build(&self) -> Entry128 {
        let mut e = opcode::UringCmd80::new(types::Fd(self.fd), self.cmd_op)
            .cmd(self.cmd)
            .addr(Some(self.addr))
            .build();
        set_len(&mut e, self.len);
        e
    }

    /// Submit the command; the op resolves to `(cqe.res, data)`.
    ///
    /// # Panics
    /// Outside a ringleader runtime.
    ///
    /// # Safety
    /// As for [`Op::submit`]: every pointer the driver reads from the SQE (`addr`, and
    /// whatever the command bytes name) must stay valid for the driver's accesses until the
    /// op's final CQE, which `data` may ensure by owning it; and the fd number must name the
    /// same file until then.
    pub unsafe fn submit<D: 'static>(&self, data: D) -> Op<UringCmd<D>> {
        // SAFETY: forwarded from the caller.
        unsafe { self.submit_with(None, data) }
    }

    /// # Safety
    /// As for [`Cmd::submit`].
    unsafe fn submit_with<D: 'static>(&self, fd: Option<FdHold>, data: D) -> Op<UringCmd<D>> {
        let data = UringCmd { _fd: fd, data };
        if self.cmd_len <= 16 {
            // Fits a 64-byte SQE: usable on every ring. The upper half of `build()` is zero
            // then, so this is the same SQE, only narrower.
            let mut e = opcode::UringCmd16::new(types::Fd(self.fd), self.cmd_op)
                .cmd(self.cmd[..16].try_into().expect("16 bytes"))
                .addr(Some(self.addr))
                .build();
            set_len64(&mut e, self.len);
            // SAFETY: forwarded from the caller.
            unsafe { Op::submit(e, data) }
        } else {
            // SAFETY: forwarded from the caller.
            unsafe { Op::submit_sqe128(self.build(), data) }
        }
    }
}

const _: () = assert!(std::mem::size_of::<io_uring::squeue::Entry>() == 64);
const _: () = assert!(std::mem::size_of::<Entry128>() == 128);

/// Write `sqe->len` (the u32 at byte 24), which io-uring's `UringCmd` builders do not set.
fn set_len64(e: &mut io_uring::squeue::Entry, len: u32) {
    // SAFETY: `Entry` is `#[repr(C)]` over the 64-byte `io_uring_sqe` (asserted above), in
    // which `len` is the plain u32 at byte 24; any bit pattern is valid.
    unsafe {
        (e as *mut io_uring::squeue::Entry)
            .cast::<u8>()
            .add(24)
            .cast::<u32>()
            .write_unaligned(len)
    }
}

/// As [`set_len64`], on a 128-byte SQE (whose first 64 bytes are the same `io_uring_sqe`).
fn set_len(e: &mut Entry128, len: u32) {
    // SAFETY: `Entry128` is `#[repr(C)]` with the 64-byte `Entry` first (asserted sizes
    // above), so byte 24 is `sqe->len`, a plain u32.
    unsafe {
        (e as *mut Entry128)
            .cast::<u8>()
            .add(24)
            .cast::<u32>()
            .write_unaligned(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(e: &Entry128) -> [u8; 128] {
        // SAFETY: `Entry128` is 128 initialised bytes (asserted above), read by value.
        unsafe { (e as *const Entry128).cast::<[u8; 128]>().read_unaligned() }
    }

    #[test]
    fn build_places_every_field() {
        let mut cmd = [0u8; 40];
        cmd[0] = 0xaa;
        cmd[39] = 0xbb;
        let e = Cmd::new(7, 2).cmd(&cmd).addr_len(0x1122_3344, 2).build();
        let b = bytes(&e);
        assert_eq!(b[0], opcode::UringCmd80::CODE);
        assert_eq!(i32::from_ne_bytes(b[4..8].try_into().unwrap()), 7);
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 2);
        assert_eq!(
            u64::from_ne_bytes(b[16..24].try_into().unwrap()),
            0x1122_3344
        );
        assert_eq!(u32::from_ne_bytes(b[24..28].try_into().unwrap()), 2);
        assert_eq!((b[48], b[48 + 39]), (0xaa, 0xbb));
    }
}
