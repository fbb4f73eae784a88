//! The plain form: single ops on borrowed lease views, where lifetimes alone keep a program
//! correct, no group machinery involved.
//!
//! ```
//! use ringleader::buf::FixedPool;
//! use ringleader::group::{self, LeaseExt};
//! use std::{os::fd::OwnedFd, rc::Rc};
//!
//! ringleader::block_on(async {
//!     let pool = FixedPool::new(4096, 1).unwrap();
//!     let (r, w) = ringleader::pipe::pipe().await.unwrap();
//!     let (r, w) = (Rc::new(r), Rc::new(w));
//!     let mut lease = pool.lease(8).await.unwrap();
//!     lease.extend_from_slice(b"abcdefgh");
//!     // Two readers of the lease share it.
//!     let (a, b) = futures::join!(
//!         group::write_fixed_at(&w, lease.view(..4), u64::MAX),
//!         group::write_fixed_at(&w, lease.view(4..), u64::MAX),
//!     );
//!     assert_eq!((a.unwrap(), b.unwrap()), (4, 4));
//!     // A reader into the lease borrows it exclusively, and sets its length.
//!     lease.clear();
//!     assert_eq!(group::read_fixed_at(&r, &mut lease, u64::MAX).await.unwrap(), 8);
//!     assert_eq!(lease.len(), 8);
//! });
//! ```
//!
//! Each future borrows the lease (shared for ops that read it, exclusive for ops that write
//! into it) *and* keeps a `LeaseRef` in its op data: a kernel reader or a kernel writer
//! (`ringleader_buf`'s lease access rule). The borrow gives the compile-time guarantees
//! (G9); the counted reference is what survives a dropped or forgotten future: the slot is
//! not reused, and its bytes are not reachable by safe code (`&` while a writer is in flight,
//! `&mut` while a writer or reader is), until the op's final CQE (`SEND_ZC`: its
//! notification); forgotten, never.
//!
//! A future whose op *writes into* the lease (a read, a recv) also waits, when dropped in
//! flight, until the kernel has finished with it (`Op::settle_on_drop`), so the lease is
//! usually usable as soon as the drop returns. A future whose op reads it does not wait (a
//! `SEND_ZC` notification can take long): the lease refuses `&mut` until the kernel is done.
//!
//! An op is not submitted on a lease that a dropped or forgotten op still uses in a way that
//! conflicts with it (a read into a lease still being sent, a send of a lease still being
//! written): its future resolves to an `io::Error` of kind `ResourceBusy` carrying the
//! [`LeaseBusy`](ringleader_buf::LeaseBusy).

use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use ringleader_buf::{Lease, LeaseBusy};
use ringleader_executor::Op;

use super::fd::IoFd;
use super::hold::{Hold, result};
use super::sqe;
use super::view::{LeaseSlice, LeaseSliceMut};

/// An op on a borrowed lease view: resolves to the byte count at the op's final CQE.
#[must_use = "futures do nothing unless you `.await` or poll them; dropping cancels the op"]
pub struct LeaseIo<'a> {
    /// The op, or why it was not submitted (the lease was busy).
    op: Result<Op<Hold>, Option<io::Error>>,
    /// The lease, when the op reads into all of it (its `len` is set on success).
    whole: Option<&'a mut Lease>,
    _borrow: PhantomData<&'a Lease>,
}

impl Future for LeaseIo<'_> {
    type Output = io::Result<usize>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let op = match &mut this.op {
            Ok(op) => op,
            Err(e) => return Poll::Ready(Err(e.take().expect("LeaseIo polled after completion"))),
        };
        let cqe = ready!(Pin::new(op).poll(cx));
        let res = result(&cqe);
        if let (Ok(n), Some(lease)) = (&res, this.whole.as_deref_mut()) {
            // The kernel wrote `n <= capacity` bytes at the lease's start.
            lease.set_len(*n);
        }
        Poll::Ready(res)
    }
}

impl fmt::Debug for LeaseIo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseIo").field("op", &self.op).finish()
    }
}

fn submit<'a>(
    entry: io_uring::squeue::Entry,
    hold: Hold,
    whole: Option<&'a mut Lease>,
    writes_into_lease: bool,
) -> LeaseIo<'a> {
    // SAFETY: every caller builds `entry` from views' `raw()` parts, i.e. pointers into lease
    // slots that `hold` counts (keeps from reuse) until the final CQE (the executor keeps
    // `hold` until then, or leaks it), or from iovecs and a header `hold` owns that point
    // there, and an fd `hold.fd` keeps open.
    let op = unsafe { Op::submit(entry, hold) };
    // An op that writes into the borrowed lease must be finished with it before the borrow
    // ends: dropping it waits for its final CQE.
    let op = if writes_into_lease {
        op.settle_on_drop()
    } else {
        op
    };
    LeaseIo {
        op: Ok(op),
        whole,
        _borrow: PhantomData,
    }
}

/// An op never submitted: the lease is busy with a dropped or forgotten op (see the module
/// docs).
#[cold]
fn refused<'a>(busy: LeaseBusy) -> LeaseIo<'a> {
    LeaseIo {
        op: Err(Some(busy.into())),
        whole: None,
        _borrow: PhantomData,
    }
}

/// Read into `dst` from `fd` at `pos` (`u64::MAX`: the fd's position, for pipes and
/// sockets): `IORING_OP_READ_FIXED` from a registered lease, else `IORING_OP_READ`. Given a
/// whole `&mut Lease`, sets its `len` to the bytes read.
pub fn read_fixed_at<'a>(
    fd: &impl IoFd,
    dst: impl Into<LeaseSliceMut<'a>>,
    pos: u64,
) -> LeaseIo<'a> {
    let dst = dst.into();
    if let Err(busy) = dst.check() {
        return refused(busy);
    }
    let (ptr, len, index) = dst.raw();
    let fd = fd.fd_hold();
    let entry = sqe::read(fd.raw, ptr, sqe::len32(len), index, pos);
    let hold = Hold::new(Some(dst.keep()), Some(fd));
    submit(entry, hold, dst.into_whole(), true)
}

/// Write `src` to `fd` at `pos` (`u64::MAX`: the fd's position): `IORING_OP_WRITE_FIXED`
/// from a registered lease, else `IORING_OP_WRITE`. A `&Lease` writes its data (`..len()`).
pub fn write_fixed_at<'a>(fd: &impl IoFd, src: impl Into<LeaseSlice<'a>>, pos: u64) -> LeaseIo<'a> {
    let src = src.into();
    if let Err(busy) = src.check() {
        return refused(busy);
    }
    let (ptr, len, index) = src.raw();
    let fd = fd.fd_hold();
    let entry = sqe::write(fd.raw, ptr, sqe::len32(len), index, pos);
    submit(entry, Hold::new(Some(src.keep()), Some(fd)), None, false)
}

/// Send `src` on a connected socket (`IORING_OP_SEND`, Linux 5.6); may send fewer bytes.
pub fn send<'a>(sock: &impl IoFd, src: impl Into<LeaseSlice<'a>>) -> LeaseIo<'a> {
    let src = src.into();
    if let Err(busy) = src.check() {
        return refused(busy);
    }
    let (ptr, len, _) = src.raw();
    let fd = sock.fd_hold();
    let entry = sqe::send(fd.raw, ptr, sqe::len32(len), 0);
    submit(entry, Hold::new(Some(src.keep()), Some(fd)), None, false)
}

/// The most views one [`sendv`] sends (`IOV_MAX`).
pub const SENDV_MAX: usize = 1024;

/// Send several lease views, in order, in one `IORING_OP_SENDMSG` (Linux 5.3): one op, one
/// CQE and one pass through the socket for many leases, with no copy in user space (a proxy
/// forwarding the buffers a multishot receive filled). At most [`SENDV_MAX`] views are sent;
/// like any send it may send fewer bytes than asked (resume from the count), or add
/// `MSG_WAITALL` in `flags` to have the kernel finish it. Each view's slot is counted until
/// the final CQE, so a dropped future never lets one be reused under the kernel.
///
/// ```
/// use ringleader::buf::FixedPool;
/// use ringleader::group::{self, LeaseExt};
/// use ringleader::net::{OwnedIo, UnixStream};
///
/// ringleader::block_on(async {
///     let pool = FixedPool::new(64, 2).unwrap();
///     let (a, b) = UnixStream::pair().unwrap();
///     let mut x = pool.lease(64).await.unwrap();
///     x.extend_from_slice(b"hello ");
///     let mut y = pool.lease(64).await.unwrap();
///     y.extend_from_slice(b"leases");
///     let n = group::sendv(&a, [x.view(..), y.view(..)], 0).await.unwrap();
///     assert_eq!(n, 12);
///     let (res, buf) = b.read_exact_owned(vec![0u8; 12]).await;
///     res.unwrap();
///     assert_eq!(buf, b"hello leases");
/// });
/// ```
pub fn sendv<'a>(
    sock: &impl IoFd,
    srcs: impl IntoIterator<Item = LeaseSlice<'a>>,
    flags: i32,
) -> LeaseIo<'a> {
    let mut iov = Vec::new();
    let mut keep = Vec::new();
    for src in srcs.into_iter().take(SENDV_MAX) {
        if let Err(busy) = src.check() {
            return refused(busy);
        }
        let (ptr, len, _) = src.raw();
        iov.push(libc::iovec {
            iov_base: ptr.cast_mut().cast(),
            iov_len: len,
        });
        keep.push(src.keep());
    }
    // SAFETY: `msghdr` is plain data; all zeroes is a valid empty header.
    let mut msg: Vec<libc::msghdr> = vec![unsafe { std::mem::zeroed() }];
    msg[0].msg_iov = iov.as_mut_ptr();
    msg[0].msg_iovlen = iov.len();
    let fd = sock.fd_hold();
    let entry = sqe::sendmsg(fd.raw, msg.as_ptr(), flags);
    // The header and iovecs live in `Vec`s the op's data owns (heap arrays that stay put when
    // the data moves); every iovec points into a slot `keep` counts (as a kernel reader).
    let hold = Hold::new(None, Some(fd))
        .with_iov(iov)
        .with_msg(msg)
        .with_leases(keep);
    submit(entry, hold, None, false)
}

/// Zero-copy send of `src` (`IORING_OP_SEND_ZC`, Linux 6.0; with `IORING_RECVSEND_FIXED_BUF`
/// from a registered lease). Resolves at the kernel's notification, when no page of the lease
/// is referenced any more; the lease count holds the slot until then even if this future is
/// dropped.
pub fn send_zc<'a>(sock: &impl IoFd, src: impl Into<LeaseSlice<'a>>) -> LeaseIo<'a> {
    let src = src.into();
    if let Err(busy) = src.check() {
        return refused(busy);
    }
    let (ptr, len, index) = src.raw();
    let fd = sock.fd_hold();
    let entry = sqe::send_zc(fd.raw, ptr, sqe::len32(len), index, 0);
    submit(entry, Hold::new(Some(src.keep()), Some(fd)), None, false)
}

/// Receive into `dst` (`IORING_OP_RECV`, Linux 5.6). Given a whole `&mut Lease`, sets its
/// `len` to the bytes received.
pub fn recv<'a>(sock: &impl IoFd, dst: impl Into<LeaseSliceMut<'a>>) -> LeaseIo<'a> {
    let dst = dst.into();
    if let Err(busy) = dst.check() {
        return refused(busy);
    }
    let (ptr, len, _) = dst.raw();
    let fd = sock.fd_hold();
    let entry = sqe::recv(fd.raw, ptr, sqe::len32(len));
    submit(
        entry,
        Hold::new(Some(dst.keep()), Some(fd)),
        dst.into_whole(),
        true,
    )
}
