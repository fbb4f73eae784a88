//! The stream ops on a socket: `RECV`, `SEND`, `SEND_ZC`, `SHUTDOWN`, `CONNECT`.
//!
//! Each op's data holds what its SQE points at (the buffer, the boxed address) **and** an
//! `Rc` of the socket, so neither the memory nor the fd number goes away before the op's
//! final CQE, whatever the user drops meanwhile. A send or recv may start at an offset into
//! its buffer (`off`), which is how `read_exact`/`write_all` and the futures-io adapters
//! resume after a short transfer without slicing the owned buffer.

use std::io;
use std::net::Shutdown;
use std::rc::Rc;

use io_uring::{opcode, types};
use ringleader_buf::{BufResult, IoBuf, IoBufMut};
use ringleader_executor::{Completable, Cqe, Op, Orphan};

use super::addr::SockAddr;
use super::socket::Socket;

pub use super::msg::{RecvMsg, SendMsg};

/// Resources of a receive: the socket and the buffer the kernel fills from `off`.
#[derive(Debug)]
pub struct Recv<B> {
    _sock: Rc<Socket>,
    buf: B,
    off: usize,
}

impl<B: IoBufMut> Orphan for Recv<B> {}

impl<B: IoBufMut> Completable for Recv<B> {
    type Output = BufResult<usize, B>;
    fn complete(mut self, cqe: Cqe) -> BufResult<usize, B> {
        match cqe.into_result() {
            Ok(n) => {
                // SAFETY: the kernel wrote `n` bytes at `off`, and `off + n <= bytes_total`
                // because the SQE carried `bytes_total - off` as the length.
                unsafe { self.buf.set_init(self.off + n as usize) };
                (Ok(n as usize), self.buf)
            }
            Err(e) => (Err(e), self.buf),
        }
    }
}

/// Receive into `buf[off..bytes_total]` (`IORING_OP_RECV`, Linux 5.6).
pub(crate) fn recv<B: IoBufMut>(
    sock: &Rc<Socket>,
    mut buf: B,
    off: usize,
    flags: i32,
) -> Op<Recv<B>> {
    let off = off.min(buf.bytes_total());
    let len = (buf.bytes_total() - off).min(u32::MAX as usize) as u32;
    // SAFETY: `off <= bytes_total`, so the pointer stays inside the buffer's allocation.
    let ptr = unsafe { buf.stable_mut_ptr().add(off) };
    let entry = opcode::Recv::new(types::Fd(sock.raw()), ptr, len)
        .flags(flags)
        .build();
    let data = Recv {
        _sock: Rc::clone(sock),
        buf,
        off,
    };
    // SAFETY: `ptr` is the buffer's stable heap address plus `off`, valid for `len` bytes; the
    // buffer is the op's data and stays alive (unmoved on the heap) until the final CQE.
    unsafe { Op::submit(entry, data) }
}

/// Resources of a send: the socket and the buffer the kernel reads from `off`.
#[derive(Debug)]
pub struct Send<B> {
    _sock: Rc<Socket>,
    buf: B,
}

impl<B: IoBuf> Orphan for Send<B> {}

impl<B: IoBuf> Completable for Send<B> {
    type Output = BufResult<usize, B>;
    fn complete(self, cqe: Cqe) -> BufResult<usize, B> {
        (cqe.into_result().map(|n| n as usize), self.buf)
    }
}

/// Send `buf[off..bytes_init]` (`IORING_OP_SEND`, Linux 5.6), never raising `SIGPIPE`.
pub(crate) fn send<B: IoBuf>(sock: &Rc<Socket>, buf: B, off: usize, flags: i32) -> Op<Send<B>> {
    let off = off.min(buf.bytes_init());
    let len = (buf.bytes_init() - off).min(u32::MAX as usize) as u32;
    // SAFETY: `off <= bytes_init`, so the pointer stays inside the buffer's allocation.
    let ptr = unsafe { buf.stable_ptr().add(off) };
    let entry = opcode::Send::new(types::Fd(sock.raw()), ptr, len)
        .flags(flags | libc::MSG_NOSIGNAL)
        .build();
    let data = Send {
        _sock: Rc::clone(sock),
        buf,
    };
    // SAFETY: `ptr` covers `len` initialised bytes of the buffer's stable heap memory, owned
    // by the op's data until the final CQE.
    unsafe { Op::submit(entry, data) }
}

/// Send all of `buf[..bytes_init]` in `lane`, after the lane's earlier ops
/// (`IORING_OP_SEND` with `MSG_WAITALL`, so it completes whole or fails the lane).
pub(crate) fn send_in<B: IoBuf>(
    sock: &Rc<Socket>,
    lane: &ringleader_executor::Lane,
    buf: B,
) -> Op<Send<B>> {
    let len = buf.bytes_init().min(u32::MAX as usize) as u32;
    let entry = opcode::Send::new(types::Fd(sock.raw()), buf.stable_ptr(), len)
        .flags(libc::MSG_WAITALL | libc::MSG_NOSIGNAL)
        .build();
    let data = Send {
        _sock: Rc::clone(sock),
        buf,
    };
    // SAFETY: the pointer covers `len` initialised bytes of the buffer's stable heap memory,
    // owned by the op's data until the final CQE (while queued in the lane too).
    unsafe { Op::submit_in(lane, entry, data) }
}

/// Resources of a zero-copy send: the socket and the buffer the NIC/stack may read until the
/// notification CQE.
#[derive(Debug)]
pub struct SendZc<B> {
    _sock: Rc<Socket>,
    buf: B,
}

impl<B: IoBuf> Orphan for SendZc<B> {}

impl<B: IoBuf> Completable for SendZc<B> {
    type Output = BufResult<usize, B>;
    fn complete(self, cqe: Cqe) -> BufResult<usize, B> {
        // The executor completes the op at its last CQE, so by now the kernel has released the
        // pages (the notification arrived, or no notification was due).
        (cqe.into_result().map(|n| n as usize), self.buf)
    }
}

/// `IORING_OP_SEND_ZC` (Linux 6.0) of `buf[..bytes_init]`.
pub(crate) fn send_zc<B: IoBuf>(sock: &Rc<Socket>, buf: B) -> Op<SendZc<B>> {
    let len = buf.bytes_init().min(u32::MAX as usize) as u32;
    let entry = opcode::SendZc::new(types::Fd(sock.raw()), buf.stable_ptr(), len)
        .flags(libc::MSG_NOSIGNAL)
        .build();
    let data = SendZc {
        _sock: Rc::clone(sock),
        buf,
    };
    // SAFETY: the pointer covers `len` initialised bytes of the buffer's stable memory, owned
    // by the op's data until the final CQE, which for SEND_ZC is the notification: only then
    // has the kernel dropped its page references.
    unsafe { Op::submit(entry, data) }
}

/// Resources of a shutdown: the socket.
#[derive(Debug)]
pub struct ShutdownOp {
    _sock: Rc<Socket>,
}

impl Orphan for ShutdownOp {}

impl Completable for ShutdownOp {
    type Output = io::Result<()>;
    fn complete(self, cqe: Cqe) -> io::Result<()> {
        cqe.into_result().map(drop)
    }
}

/// `IORING_OP_SHUTDOWN` (Linux 5.11).
pub(crate) fn shutdown(sock: &Rc<Socket>, how: Shutdown) -> Op<ShutdownOp> {
    let how = match how {
        Shutdown::Read => libc::SHUT_RD,
        Shutdown::Write => libc::SHUT_WR,
        Shutdown::Both => libc::SHUT_RDWR,
    };
    let entry = opcode::Shutdown::new(types::Fd(sock.raw()), how).build();
    let data = ShutdownOp {
        _sock: Rc::clone(sock),
    };
    // SAFETY: the SQE carries no pointer; the fd is kept open by the data.
    unsafe { Op::submit(entry, data) }
}

/// Resources of a connect: the socket and the address the kernel reads.
#[derive(Debug)]
pub struct Connect {
    _sock: Rc<Socket>,
    _addr: Box<SockAddr>,
}

impl Orphan for Connect {}

impl Completable for Connect {
    type Output = io::Result<()>;
    fn complete(self, cqe: Cqe) -> io::Result<()> {
        cqe.into_result().map(drop)
    }
}

/// `IORING_OP_CONNECT` (Linux 5.5).
pub(crate) fn connect(sock: &Rc<Socket>, addr: SockAddr) -> Op<Connect> {
    let addr = Box::new(addr);
    let entry = opcode::Connect::new(types::Fd(sock.raw()), addr.as_ptr(), addr.len()).build();
    let data = Connect {
        _sock: Rc::clone(sock),
        _addr: addr,
    };
    // SAFETY: the address is boxed (stable) and owned by the op's data until the final CQE;
    // the kernel reads `len` bytes of it.
    unsafe { Op::submit(entry, data) }
}

/// Fill `buf[..bytes_total]` completely, resuming after short receives. `MSG_WAITALL` lets
/// the kernel do the looping in one op in the common case.
pub(crate) async fn read_exact<B: IoBufMut>(sock: Rc<Socket>, mut buf: B) -> BufResult<(), B> {
    let want = buf.bytes_total();
    let mut filled = 0;
    while filled < want {
        let (res, b) = recv(&sock, buf, filled, libc::MSG_WAITALL).await;
        buf = b;
        match res {
            Ok(0) => return (Err(io::ErrorKind::UnexpectedEof.into()), buf),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(()), buf)
}

/// Send `buf[..bytes_init]` completely, resuming after short sends.
pub(crate) async fn write_all<B: IoBuf>(sock: Rc<Socket>, mut buf: B) -> BufResult<(), B> {
    let want = buf.bytes_init();
    let mut sent = 0;
    while sent < want {
        let (res, b) = send(&sock, buf, sent, libc::MSG_WAITALL).await;
        buf = b;
        match res {
            Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(()), buf)
}
