//! Datagram ops with an address: `SENDMSG` and `RECVMSG` (Linux 5.3).
//!
//! The kernel follows three pointers: the `msghdr`, the `iovec` it names and the address it
//! names. All three live in one [`MsgHdr`] box owned by the op's data, whose pointers are set
//! once the box is in place (a `Box`'s contents never move), next to the buffer the `iovec`
//! covers (itself a stable heap buffer) and an `Rc` of the socket.

use std::net::SocketAddr;
use std::rc::Rc;

use io_uring::{opcode, types};
use ringleader_buf::{BufResult, IoBuf, IoBufMut};
use ringleader_executor::{Completable, Cqe, Op, Orphan};

use super::addr::SockAddr;
use super::socket::Socket;

/// The self-referential message header of one op: `hdr` points at `iov` and `addr`.
struct MsgHdr {
    hdr: libc::msghdr,
    iov: libc::iovec,
    addr: SockAddr,
}

impl MsgHdr {
    /// Box the header with its pointers aimed inside the box, covering `len` bytes at `ptr`.
    fn boxed(addr: SockAddr, ptr: *mut u8, len: usize) -> Box<MsgHdr> {
        let mut m = Box::new(MsgHdr {
            // SAFETY: `msghdr` is plain integers and pointers; all-zero is valid (null).
            hdr: unsafe { std::mem::zeroed() },
            iov: libc::iovec {
                iov_base: ptr.cast(),
                iov_len: len,
            },
            addr,
        });
        m.hdr.msg_iov = &raw mut m.iov;
        m.hdr.msg_iovlen = 1;
        m.hdr.msg_name = m.addr.as_mut_ptr().cast();
        m.hdr.msg_namelen = m.addr.len();
        m
    }
}

impl std::fmt::Debug for MsgHdr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MsgHdr")
            .field("len", &self.iov.iov_len)
            .field("namelen", &self.hdr.msg_namelen)
            .finish()
    }
}

/// Resources of a `sendmsg` to an address.
#[derive(Debug)]
pub struct SendMsg<B> {
    _sock: Rc<Socket>,
    _msg: Box<MsgHdr>,
    buf: B,
}

impl<B: IoBuf> Orphan for SendMsg<B> {}

impl<B: IoBuf> Completable for SendMsg<B> {
    type Output = BufResult<usize, B>;
    fn complete(self, cqe: Cqe) -> BufResult<usize, B> {
        (cqe.into_result().map(|n| n as usize), self.buf)
    }
}

/// Send `buf[..bytes_init]` as one datagram to `addr`.
pub(crate) fn send_to<B: IoBuf>(sock: &Rc<Socket>, buf: B, addr: &SocketAddr) -> Op<SendMsg<B>> {
    // The kernel only reads through this pointer (SENDMSG); `iovec` just has no const form.
    let msg = MsgHdr::boxed(
        SockAddr::from_std(addr),
        buf.stable_ptr().cast_mut(),
        buf.bytes_init(),
    );
    let entry = opcode::SendMsg::new(types::Fd(sock.raw()), &raw const msg.hdr)
        .flags(libc::MSG_NOSIGNAL as u32)
        .build();
    let data = SendMsg {
        _sock: Rc::clone(sock),
        _msg: msg,
        buf,
    };
    // SAFETY: the header, iovec and address are in the box and the bytes in the buffer, all
    // stable heap memory owned by the op's data until the final CQE.
    unsafe { Op::submit(entry, data) }
}

/// Resources of a `recvmsg` that reports the sender's address.
#[derive(Debug)]
pub struct RecvMsg<B> {
    _sock: Rc<Socket>,
    msg: Box<MsgHdr>,
    buf: B,
}

impl<B: IoBufMut> Orphan for RecvMsg<B> {}

impl<B: IoBufMut> Completable for RecvMsg<B> {
    type Output = BufResult<(usize, SocketAddr), B>;
    fn complete(mut self, cqe: Cqe) -> Self::Output {
        let n = match cqe.into_result() {
            Ok(n) => n as usize,
            Err(e) => return (Err(e), self.buf),
        };
        // SAFETY: the kernel wrote `n <= iov_len = bytes_total` bytes at the buffer's start.
        unsafe { self.buf.set_init(n) };
        let mut addr = self.msg.addr;
        *addr.len_mut() = self.msg.hdr.msg_namelen;
        (addr.std_addr().map(|a| (n, a)), self.buf)
    }
}

/// Receive one datagram into `buf[..bytes_total]` and its sender's address.
pub(crate) fn recv_from<B: IoBufMut>(sock: &Rc<Socket>, mut buf: B) -> Op<RecvMsg<B>> {
    let mut msg = MsgHdr::boxed(SockAddr::empty(), buf.stable_mut_ptr(), buf.bytes_total());
    let entry = opcode::RecvMsg::new(types::Fd(sock.raw()), &raw mut msg.hdr).build();
    let data = RecvMsg {
        _sock: Rc::clone(sock),
        msg,
        buf,
    };
    // SAFETY: as for `send_to`; the kernel writes the datagram into the buffer, the address
    // into the box and the lengths into the header, all owned by the data until the final CQE.
    unsafe { Op::submit(entry, data) }
}
