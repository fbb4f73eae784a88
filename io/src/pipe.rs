//! Pipes and the ops that move pages without copying them through user memory:
//! [`pipe`] (`IORING_OP_PIPE`, Linux 6.16, else `pipe2(2)`), [`splice`] (`IORING_OP_SPLICE`,
//! Linux 5.7) and [`tee`] (`IORING_OP_TEE`, Linux 5.8).
//!
//! `splice` moves up to `len` bytes between an fd and a pipe (one side must be a pipe);
//! `tee` duplicates up to `len` bytes from one pipe into another without consuming them. The
//! kernel runs both in an io-wq worker (they may block on either side), which is fine: the
//! ring is never blocked. Cancellation interrupts the worker.
//!
//! As for [`fd::read`](crate::fd::read), `splice` and `tee` take the fds' owners (an
//! [`IoFd`]: a [`File`](crate::fs::File), a socket, an `Rc<OwnedFd>`) and keep them open until
//! the op's final CQE: the ops borrow no memory, but a closed and reused fd number would be
//! spliced from or to instead. [`splice_raw`] and [`tee_raw`] take bare fds and are `unsafe`.
//!
//! ```
//! use std::rc::Rc;
//! use ringleader::fd;
//! use ringleader::pipe::{pipe, splice, tee};
//!
//! ringleader::block_on(async {
//!     let pipe_rc = || async {
//!         let (r, w) = pipe().await.unwrap();
//!         (Rc::new(r), Rc::new(w))
//!     };
//!     let (r1, w1) = pipe_rc().await;
//!     let (r2, w2) = pipe_rc().await;
//!     let (n, _) = fd::write(&w1, b"pages".to_vec(), u64::MAX).await;
//!     assert_eq!(n.unwrap(), 5);
//!     // Duplicate into the second pipe, then move the original out of the first.
//!     assert_eq!(tee(&r1, &w2, 64).await.unwrap(), 5);
//!     let (r3, w3) = pipe_rc().await;
//!     assert_eq!(splice(&r1, None, &w3, None, 64).await.unwrap(), 5);
//!     let (_, a) = fd::read(&r2, Vec::with_capacity(8), u64::MAX).await;
//!     let (_, b) = fd::read(&r3, Vec::with_capacity(8), u64::MAX).await;
//!     assert_eq!((&a[..], &b[..]), (&b"pages"[..], &b"pages"[..]));
//! });
//! ```

use std::future::Future;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use io_uring::{opcode, types};
use ringleader_executor::{Completable, Cqe, Lane, Op, Orphan};

use crate::group::{FdHold, IoFd};

/// Resources of a pipe creation: the two-int array the kernel fills.
#[derive(Debug)]
pub struct PipeOp {
    fds: Box<[RawFd; 2]>,
}

impl PipeOp {
    fn take(&self, cqe: &Cqe) -> io::Result<(OwnedFd, OwnedFd)> {
        cqe.into_result()?;
        // SAFETY: on success the kernel installed two fresh fds, written into `fds`, owned
        // by nobody else; each CQE is converted once (by `complete` or `orphan_cqe`).
        Ok(unsafe {
            (
                OwnedFd::from_raw_fd(self.fds[0]),
                OwnedFd::from_raw_fd(self.fds[1]),
            )
        })
    }
}

impl Orphan for PipeOp {
    fn orphan_cqe(&mut self, cqe: &Cqe) {
        // Nobody will collect the pipe: close both ends.
        drop(self.take(cqe));
    }
}

impl Completable for PipeOp {
    type Output = io::Result<(OwnedFd, OwnedFd)>;
    fn complete(self, cqe: Cqe) -> Self::Output {
        self.take(&cqe)
    }
}

/// A new pipe, `(read end, write end)`, both close-on-exec.
///
/// Uses `IORING_OP_PIPE` (Linux 6.16); on an older kernel, which rejects the opcode with
/// `EINVAL`, falls back to `pipe2(2)`.
pub fn pipe() -> impl Future<Output = io::Result<(OwnedFd, OwnedFd)>> {
    let mut fds = Box::new([-1; 2]);
    let entry = opcode::Pipe::new(fds.as_mut_ptr())
        .flags(libc::O_CLOEXEC as u32)
        .build();
    // SAFETY: the kernel writes two ints into the boxed array (stable heap memory), owned by
    // the op's data until the final CQE.
    let op = unsafe { Op::submit(entry, PipeOp { fds }) };
    async move {
        match op.await {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => pipe2(),
            r => r,
        }
    }
}

fn pipe2() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1; 2];
    // SAFETY: `fds` is a writable array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two fresh fds nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Resources of a splice or tee: the owners of its two fds (none for [`splice_raw`] and
/// [`tee_raw`]); no memory.
#[derive(Debug)]
pub struct SpliceOp {
    _fds: Option<[FdHold; 2]>,
}

impl Orphan for SpliceOp {}

impl Completable for SpliceOp {
    type Output = io::Result<usize>;
    fn complete(self, cqe: Cqe) -> io::Result<usize> {
        cqe.into_result().map(|n| n as usize)
    }
}

fn offset(off: Option<u64>) -> i64 {
    // -1: "no offset" (a pipe, or the file position).
    off.map_or(-1, |o| o as i64)
}

/// Move up to `len` bytes from `fd_in` to `fd_out`, one of which must be a pipe
/// (`IORING_OP_SPLICE`, Linux 5.7). An offset of `None` uses the fd's position (and must be
/// `None` for a pipe); `Some(off)` reads or writes a file at `off` without moving its
/// position. Returns the bytes moved; `Ok(0)` when the input is at end of file. The op keeps
/// both fds open until its final CQE.
pub fn splice(
    fd_in: &impl IoFd,
    off_in: Option<u64>,
    fd_out: &impl IoFd,
    off_out: Option<u64>,
    len: u32,
) -> Op<SpliceOp> {
    let (fd_in, fd_out) = (fd_in.fd_hold(), fd_out.fd_hold());
    let entry = splice_entry(fd_in.raw, off_in, fd_out.raw, off_out, len);
    let data = SpliceOp {
        _fds: Some([fd_in, fd_out]),
    };
    // SAFETY: a splice carries no pointer into user memory, and its data holds both fds'
    // owners until the final CQE.
    unsafe { Op::submit(entry, data) }
}

/// [`splice`] in `lane`: it reaches the kernel after every op submitted into the lane before
/// it has finished, so its bytes never come between another lane op's (see
/// [`Lane`]). Use it to send a pipe's pages to a stream socket
/// that other tasks also send on. A short splice does not fail the lane (only a failed one
/// does): the caller sends the rest, in a frame ([`Lane::frame`]) held open until then.
///
/// [`Lane::frame`]: ringleader_executor::Lane::frame
///
/// # Panics
/// Outside a ringleader runtime, or if `lane` belongs to another core.
pub fn splice_in(
    lane: &Lane,
    fd_in: &impl IoFd,
    off_in: Option<u64>,
    fd_out: &impl IoFd,
    off_out: Option<u64>,
    len: u32,
) -> Op<SpliceOp> {
    let (fd_in, fd_out) = (fd_in.fd_hold(), fd_out.fd_hold());
    let entry = splice_entry(fd_in.raw, off_in, fd_out.raw, off_out, len);
    let data = SpliceOp {
        _fds: Some([fd_in, fd_out]),
    };
    // SAFETY: a splice carries no pointer into user memory, and its data holds both fds'
    // owners until the final CQE.
    unsafe { Op::submit_in(lane, entry, data) }
}

/// [`splice`] between bare fd numbers, which the op does not keep open.
///
/// # Safety
/// As for [`fd::read_raw`](crate::fd::read_raw), for both fds: until the op's final CQE
/// (which may come after the future is dropped), each number must keep naming the file it
/// names now, or bytes may move from or to whatever file was given that number next.
pub unsafe fn splice_raw(
    fd_in: RawFd,
    off_in: Option<u64>,
    fd_out: RawFd,
    off_out: Option<u64>,
    len: u32,
) -> Op<SpliceOp> {
    let entry = splice_entry(fd_in, off_in, fd_out, off_out, len);
    // SAFETY: a splice carries no pointer into user memory; the caller keeps the fds open
    // until the final CQE (this fn's contract).
    unsafe { Op::submit(entry, SpliceOp { _fds: None }) }
}

fn splice_entry(
    fd_in: RawFd,
    off_in: Option<u64>,
    fd_out: RawFd,
    off_out: Option<u64>,
    len: u32,
) -> io_uring::squeue::Entry {
    opcode::Splice::new(
        types::Fd(fd_in),
        offset(off_in),
        types::Fd(fd_out),
        offset(off_out),
        len,
    )
    .build()
}

/// Copy up to `len` bytes from pipe `fd_in` to pipe `fd_out` without consuming them
/// (`IORING_OP_TEE`, Linux 5.8). Returns the bytes duplicated; `Ok(0)` if `fd_in` is empty
/// and has no writers. The op keeps both fds open until its final CQE.
pub fn tee(fd_in: &impl IoFd, fd_out: &impl IoFd, len: u32) -> Op<SpliceOp> {
    let (fd_in, fd_out) = (fd_in.fd_hold(), fd_out.fd_hold());
    let entry = opcode::Tee::new(types::Fd(fd_in.raw), types::Fd(fd_out.raw), len).build();
    let data = SpliceOp {
        _fds: Some([fd_in, fd_out]),
    };
    // SAFETY: a tee carries no pointer into user memory, and its data holds both fds' owners
    // until the final CQE.
    unsafe { Op::submit(entry, data) }
}

/// [`tee`] between bare fd numbers, which the op does not keep open.
///
/// # Safety
/// As for [`splice_raw`]: until the op's final CQE, both numbers must keep naming the
/// pipes they name now.
pub unsafe fn tee_raw(fd_in: RawFd, fd_out: RawFd, len: u32) -> Op<SpliceOp> {
    let entry = opcode::Tee::new(types::Fd(fd_in), types::Fd(fd_out), len).build();
    // SAFETY: a tee carries no pointer into user memory; the caller keeps the fds open until
    // the final CQE (this fn's contract).
    unsafe { Op::submit(entry, SpliceOp { _fds: None }) }
}
