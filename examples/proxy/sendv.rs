//! [`send_chunks`]: one `IORING_OP_SENDMSG` (Linux 5.3) of every chunk queued for a
//! destination, straight from their buffers.
//!
//! A destination that is slower than its source always has several chunks waiting (measured:
//! 54 to 62 of a 64-buffer ring on average, with iperf3 as the upstream), so sending them in
//! one op instead of one `SEND` each cuts ops, completions and the receiver's wake-ups per
//! byte (the proxy's CPU per byte fell by a third to a half; `docs/proxy.md`).
//! The runtime has lease sends of one lease (`send_lease`) and vectored writes of one lease's
//! ranges (`Member::writev_fixed`), but no send of several leases; this op fills the gap here
//! with the public op interface.
//!
//! Invariant: the SQE points at a boxed `msghdr`, whose `msg_iov` points at the heap array of
//! the `iov` vector, whose entries point into the chunks' buffers. The op's data owns all three
//! (and a reference keeping the socket's fd open) until its final CQE: neither the box's nor
//! the vector's heap memory moves when the data moves, and a chunk's bytes never change or
//! go away while an `Rc` of it lives (`queue.rs`).

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use io_uring::{opcode, types};
use ringleader::group::{FdHold, IoFd};
use ringleader::net::TcpStream;
use ringleader::{Completable, Cqe, Op, Orphan};

use crate::queue::Chunk;

/// At most this many chunks per op: enough to amortise the op, few enough that the chunks
/// at the front go back to the ring before the whole batch is through.
pub(crate) const MAX_BATCH: usize = 16;

/// Resources of a [`send_chunks`]: the chunks, the iovecs and header pointing into them, and
/// the socket's fd.
#[derive(Debug)]
pub(crate) struct SendChunks {
    chunks: VecDeque<Rc<Chunk>>,
    _iov: Vec<libc::iovec>,
    _hdr: Box<libc::msghdr>,
    _fd: FdHold,
}

impl Orphan for SendChunks {}

impl Completable for SendChunks {
    type Output = (io::Result<usize>, VecDeque<Rc<Chunk>>);

    fn complete(self, cqe: Cqe) -> Self::Output {
        (cqe.into_result().map(|n| n as usize), self.chunks)
    }
}

/// Send the first [`MAX_BATCH`] of `chunks` (the first one from byte `skip` on) in one
/// `SENDMSG`; may send fewer bytes. The chunks come back with the result.
pub(crate) fn send_chunks(
    sock: &TcpStream,
    chunks: VecDeque<Rc<Chunk>>,
    skip: usize,
) -> Op<SendChunks> {
    let mut iov: Vec<libc::iovec> = chunks
        .iter()
        .take(MAX_BATCH)
        .map(|c| {
            let b = c.bytes();
            libc::iovec {
                iov_base: b.as_ptr().cast_mut().cast(),
                iov_len: b.len(),
            }
        })
        .collect();
    if let Some(first) = iov.first_mut() {
        let skip = skip.min(first.iov_len);
        first.iov_base = first.iov_base.cast::<u8>().wrapping_add(skip).cast();
        first.iov_len -= skip;
    }
    // SAFETY: `msghdr` is plain data for which all-zero is valid (no name, no control).
    let mut hdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
    hdr.msg_iov = iov.as_mut_ptr();
    hdr.msg_iovlen = iov.len();
    let entry = opcode::SendMsg::new(types::Fd(sock.as_raw_fd()), &*hdr)
        .flags(libc::MSG_NOSIGNAL as u32)
        .build();
    let data = SendChunks {
        chunks,
        _iov: iov,
        _hdr: hdr,
        _fd: sock.fd_hold(),
    };
    // SAFETY: the module invariant: the header, the iovec array and the chunk bytes they
    // point at are owned by `data` at addresses that do not move with it, are only read by
    // the kernel, and live until the final CQE; `data` also keeps the fd open until then.
    unsafe { Op::submit(entry, data) }
}
