//! Readiness, for the splice mode: a one-shot `IORING_OP_POLL_ADD` (Linux 5.1) on a socket.
//!
//! The kernel runs every `SPLICE` and `TEE` in an io-wq worker thread, and a splice on a
//! blocking socket blocks that worker until data (or room) comes: one thread per idle
//! connection, or, with the runtime's cap on io-wq workers, a queue in which splices for
//! connections that have data wait behind splices for connections that have none. So the
//! splice mode makes its sockets and pipes non-blocking and waits for readiness here first,
//! where waiting costs no thread: the poll is armed on the socket's wait queue, in the ring.
//! The splice that follows runs in a worker only as long as the move takes.
//!
//! The runtime has no poll op of its own yet (a gap `docs/proxy.md` lists); this one is the
//! op's whole contract: the SQE carries no pointer, and the op data keeps the fd open until
//! the final CQE.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use io_uring::{opcode, types};
use ringleader::group::{FdHold, IoFd};
use ringleader::net::TcpStream;
use ringleader::ops::{Completable, Cqe, Op, Orphan};

/// Resources of a poll: the owner of its fd.
#[derive(Debug)]
pub(crate) struct PollOp {
    _fd: FdHold,
}

impl Orphan for PollOp {}

impl Completable for PollOp {
    /// The events that were ready (`POLLIN`, `POLLOUT`, `POLLERR`, `POLLHUP`, ...).
    type Output = io::Result<u32>;
    fn complete(self, cqe: Cqe) -> io::Result<u32> {
        cqe.into_result()
    }
}

fn poll(sock: &TcpStream, events: u32) -> Op<PollOp> {
    let hold = sock.fd_hold();
    let entry = opcode::PollAdd::new(types::Fd(sock.as_raw_fd()), events).build();
    // SAFETY: a poll carries no pointer into user memory, and its data holds the socket's
    // owner, so the fd number names this socket until the final CQE.
    unsafe { Op::submit(entry, PollOp { _fd: hold }) }
}

/// Resolves when `sock` has data, its end of stream, or an error to read.
pub(crate) fn readable(sock: &TcpStream) -> Op<PollOp> {
    poll(sock, (libc::POLLIN | libc::POLLRDHUP) as u32)
}

/// Resolves when `sock` has room to send (or an error).
pub(crate) fn writable(sock: &TcpStream) -> Op<PollOp> {
    poll(sock, libc::POLLOUT as u32)
}

/// Set `O_NONBLOCK` on `fd`'s open file: a splice or tee on it then returns `EAGAIN`
/// instead of blocking its io-wq worker. (io_uring's own socket ops are unaffected: they
/// wait for readiness inside the ring either way.)
pub(crate) fn set_nonblocking(fd: impl AsFd) -> io::Result<()> {
    let fd = fd.as_fd().as_raw_fd();
    // SAFETY: F_GETFL/F_SETFL take and return plain ints; `fd` is open (borrowed above).
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether `e` is "not ready" (`EAGAIN`): wait for readiness and try again.
pub(crate) fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}
