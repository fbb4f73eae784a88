//! Ops on leased memory: `READ_FIXED`/`WRITE_FIXED` into and from a [`Lease`] (Linux 5.1),
//! and a buffer-select `recv` (Linux 5.19 for buffer rings) that yields a [`Lease`] on the
//! buffer the kernel chose from a [`BufRing`].
//!
//! Each op keeps its lease (or, for `recv`, the ring and the buffer the kernel selected) in
//! its op data, so the lease safety rule holds: dropping the op future returns the memory at
//! the op's final CQE, forgetting it leaks the memory, and neither lets a slot be reused
//! while the kernel may still write into it.
//!
//! The op data also holds the fd's owner (an [`IoFd`]: a [`File`](crate::fs::File), a socket,
//! an `Rc<OwnedFd>`), for the same reason: the kernel resolves the fd number only when it
//! reaches the SQE, so a number closed and reused before then would be read or written
//! instead. The `*_raw` forms take a bare `RawFd` and are `unsafe`.

use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use io_uring::{cqueue, opcode, squeue, types};
use ringleader_buf::{BufResult, BufRing, IoBuf, IoBufMut, Lease, WaitReturned};
use ringleader_executor::{Completable, Cqe, Op, Orphan};

use crate::group::{FdHold, IoFd};

/// Resources of a read into a lease: the lease, and the fd's owner (none for
/// [`read_fixed_raw`]).
#[derive(Debug)]
pub struct ReadLease {
    lease: Lease,
    _fd: Option<FdHold>,
}

impl Orphan for ReadLease {}

impl Completable for ReadLease {
    type Output = BufResult<usize, Lease>;
    fn complete(mut self, cqe: Cqe) -> BufResult<usize, Lease> {
        match cqe.into_result() {
            Ok(n) => {
                // The kernel wrote `n <= capacity` bytes at the lease's start.
                self.lease.set_len(n as usize);
                (Ok(n as usize), self.lease)
            }
            Err(e) => (Err(e), self.lease),
        }
    }
}

/// Resources of a write from a lease: the lease, and the fd's owner (none for
/// [`write_fixed_raw`]).
#[derive(Debug)]
pub struct WriteLease {
    lease: Lease,
    _fd: Option<FdHold>,
}

impl Orphan for WriteLease {}

impl Completable for WriteLease {
    type Output = BufResult<usize, Lease>;
    fn complete(self, cqe: Cqe) -> BufResult<usize, Lease> {
        (cqe.into_result().map(|n| n as usize), self.lease)
    }
}

/// Read up to `lease.capacity()` bytes from `fd` at `offset` (`u64::MAX`: the file
/// position) into the lease; on success `lease.len()` is the count read. A registered lease
/// (from a [`FixedPool`](ringleader_buf::FixedPool)) uses `IORING_OP_READ_FIXED` with its
/// `buf_index`; an unregistered one a plain `IORING_OP_READ`. The op keeps `fd` open until
/// its final CQE.
///
/// ```
/// use std::rc::Rc;
/// use ringleader::buf::FixedPool;
/// ringleader::block_on(async {
///     let pool = FixedPool::new(4096, 1).unwrap();
///     let (r, w) = ringleader::pipe::pipe().await.unwrap();
///     let (r, w) = (Rc::new(r), Rc::new(w));
///     let mut lease = pool.lease(5).await.unwrap();
///     lease.extend_from_slice(b"hello");
///     let (n, lease) = ringleader::lease_ops::write_fixed(&w, lease, u64::MAX).await;
///     assert_eq!(n.unwrap(), 5);
///     drop(lease);
///     let lease = pool.lease(4096).await.unwrap();
///     let (n, lease) = ringleader::lease_ops::read_fixed(&r, lease, u64::MAX).await;
///     assert_eq!((n.unwrap(), &lease[..]), (5, &b"hello"[..]));
/// });
/// ```
///
/// # Panics
/// If a dropped or forgotten op still reads or writes the lease (see the lease access rule in
/// `docs/groups.md`): nothing is submitted.
pub fn read_fixed(fd: &impl IoFd, lease: Lease, offset: u64) -> Op<ReadLease> {
    let hold = fd.fd_hold();
    submit_read(hold.raw, Some(hold), lease, offset)
}

/// [`read_fixed`] on a bare fd number, which the op does not keep open.
///
/// # Safety
/// As for [`fd::read_raw`](crate::fd::read_raw): until the op's final CQE (which may come
/// after the future is dropped), `fd` must keep naming the file it names now, or the read
/// may come from whatever file was given that number next.
pub unsafe fn read_fixed_raw(fd: RawFd, lease: Lease, offset: u64) -> Op<ReadLease> {
    submit_read(fd, None, lease, offset)
}

fn submit_read(raw: RawFd, hold: Option<FdHold>, mut lease: Lease, offset: u64) -> Op<ReadLease> {
    let len = lease.capacity().min(u32::MAX as usize) as u32;
    // The kernel will write the lease: refused (a panic naming the slot and its counts)
    // while a dropped or forgotten op still reads or writes it (the lease access rule).
    let ptr = IoBufMut::stable_mut_ptr(&mut lease);
    let entry = match lease.buf_index() {
        Some(index) => opcode::ReadFixed::new(types::Fd(raw), ptr, len, index)
            .offset(offset)
            .build(),
        None => opcode::Read::new(types::Fd(raw), ptr, len)
            .offset(offset)
            .build(),
    };
    // SAFETY: `ptr..ptr + len` is the lease's memory, which lies inside the fixed buffer
    // `buf_index` names (the pool registered the whole slot) and does not move with the
    // lease; the lease is the op's data, kept until the final CQE, and its slot is not
    // reused while the lease lives. The fd's owner is in the data too (`read_fixed`), or the
    // caller keeps the fd open (`read_fixed_raw`'s contract).
    unsafe { Op::submit(entry, ReadLease { lease, _fd: hold }) }
}

/// Write `lease.len()` bytes from the lease to `fd` at `offset` (`u64::MAX`: the file
/// position): `IORING_OP_WRITE_FIXED` for a registered lease, `IORING_OP_WRITE` otherwise.
/// The op keeps `fd` open until its final CQE.
///
/// # Panics
/// If a dropped or forgotten op still writes into the lease: nothing is submitted.
pub fn write_fixed(fd: &impl IoFd, lease: Lease, offset: u64) -> Op<WriteLease> {
    let hold = fd.fd_hold();
    submit_write(hold.raw, Some(hold), lease, offset)
}

/// [`write_fixed`] on a bare fd number, which the op does not keep open.
///
/// # Safety
/// As for [`fd::read_raw`](crate::fd::read_raw): until the op's final CQE, `fd` must keep
/// naming the file it names now, or the bytes may land in whatever file was given that
/// number next.
pub unsafe fn write_fixed_raw(fd: RawFd, lease: Lease, offset: u64) -> Op<WriteLease> {
    submit_write(fd, None, lease, offset)
}

fn submit_write(raw: RawFd, hold: Option<FdHold>, lease: Lease, offset: u64) -> Op<WriteLease> {
    let len = lease.len().min(u32::MAX as usize) as u32;
    // The kernel will read the lease: refused while a dropped or forgotten op still writes
    // it (the lease access rule).
    let ptr = IoBuf::stable_ptr(&lease);
    let entry = match lease.buf_index() {
        Some(index) => opcode::WriteFixed::new(types::Fd(raw), ptr, len, index)
            .offset(offset)
            .build(),
        None => opcode::Write::new(types::Fd(raw), ptr, len)
            .offset(offset)
            .build(),
    };
    // SAFETY: as for `submit_read`: the lease's stable, registered memory, owned by the op
    // until its final CQE; the fd is held by the data (`write_fixed`) or kept open by the
    // caller (`write_fixed_raw`).
    unsafe { Op::submit(entry, WriteLease { lease, _fd: hold }) }
}

/// Resources of a buffer-select recv: the ring, the buffer the kernel selected if the CQE
/// arrived after the future was dropped (it is handed back to the ring on drop), and the
/// socket's owner (none for [`recv_raw`]).
pub struct RecvSelect {
    ring: BufRing,
    selected: Option<u16>,
    _fd: Option<FdHold>,
}

impl fmt::Debug for RecvSelect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvSelect")
            .field("bgid", &self.ring.bgid())
            .field("selected", &self.selected)
            .finish()
    }
}

impl Orphan for RecvSelect {
    fn orphan_cqe(&mut self, cqe: &Cqe) {
        // Only record it: the buffer goes back to the ring when these resources are dropped,
        // which the executor does outside its borrow.
        if let Some(bid) = cqueue::buffer_select(cqe.flags) {
            self.selected = Some(bid);
        }
    }
}

impl Drop for RecvSelect {
    fn drop(&mut self) {
        if let Some(bid) = self.selected.take() {
            // SAFETY: the kernel selected `bid` for this op (its CQE said so) and no one has
            // claimed it: claiming and dropping the lease returns it to the ring.
            drop(unsafe { self.ring.claim(bid, 0) });
        }
    }
}

impl Completable for RecvSelect {
    /// `Ok(None)` at end of stream.
    type Output = io::Result<Option<Lease>>;
    fn complete(self, cqe: Cqe) -> io::Result<Option<Lease>> {
        let lease = cqueue::buffer_select(cqe.flags).map(|bid| {
            let len = usize::try_from(cqe.result).unwrap_or(0);
            // SAFETY: the CQE hands `bid` to this op, once; the kernel wrote `len` bytes
            // (a recv never exceeds the buffer it was given).
            unsafe { self.ring.claim(bid, len) }
        });
        match (cqe.into_result()?, lease) {
            (0, _) => Ok(None), // end of stream; a selected buffer goes straight back
            (_, Some(lease)) => Ok(Some(lease)),
            (n, None) => Err(io::Error::other(format!(
                "ringleader: recv returned {n} bytes without a selected buffer"
            ))),
        }
    }
}

/// Receive into a buffer the kernel picks from `ring` (`IORING_OP_RECV` with
/// `IOSQE_BUFFER_SELECT`): resolves to a [`Lease`] on that buffer holding the bytes received,
/// or `None` at end of stream. Dropping the lease returns the buffer to the ring.
///
/// When the ring is empty the kernel answers `ENOBUFS`; the future then waits for a lease to
/// return a buffer and submits the recv again. No data is lost (the failed attempt consumed
/// none) and `ENOBUFS` never reaches the caller: the ring size is the backpressure. Holding
/// every lease of the ring while awaiting a recv on it therefore waits forever.
///
/// Keep one recv in flight per stream socket: concurrent recvs may complete out of order.
///
/// The future, and each recv it submits (until that recv's final CQE), keeps `fd` open.
pub fn recv(fd: &impl IoFd, ring: &BufRing) -> Recv {
    let hold = fd.fd_hold();
    Recv::start(hold.raw, Some(hold), ring)
}

/// [`recv`] on a bare fd number, which neither the future nor its recvs keep open.
///
/// # Safety
/// As for [`fd::read_raw`](crate::fd::read_raw): until the future resolves, and, if it is
/// dropped or forgotten first, until the final CQE of the recv it had submitted (which comes
/// later, while the runtime runs), `fd` must keep naming the socket it names now, or the
/// recv may take bytes from whatever file was given that number next.
pub unsafe fn recv_raw(fd: RawFd, ring: &BufRing) -> Recv {
    Recv::start(fd, None, ring)
}

/// The future of [`recv`].
#[must_use = "futures do nothing unless you `.await` or poll them; dropping cancels the recv"]
pub struct Recv {
    fd: RawFd,
    /// The socket's owner, cloned into each recv's op data (none for [`recv_raw`]).
    hold: Option<FdHold>,
    ring: BufRing,
    /// `ring.returned()` when the current attempt was submitted.
    since: u64,
    state: RecvState,
}

enum RecvState {
    InFlight(Op<RecvSelect>),
    Starved(WaitReturned),
    Done,
}

impl Recv {
    fn start(fd: RawFd, hold: Option<FdHold>, ring: &BufRing) -> Recv {
        let mut r = Recv {
            fd,
            hold,
            ring: ring.clone(),
            since: 0,
            state: RecvState::Done,
        };
        r.submit();
        r
    }

    fn submit(&mut self) {
        // Read before the push: a buffer returned after this is seen as a change.
        self.since = self.ring.returned();
        let len = self.ring.buf_size().min(u32::MAX as usize) as u32;
        let entry = opcode::Recv::new(types::Fd(self.fd), std::ptr::null_mut(), len)
            .buf_group(self.ring.select_bgid())
            .build()
            .flags(squeue::Flags::BUFFER_SELECT);
        let data = RecvSelect {
            ring: self.ring.clone(),
            selected: None,
            _fd: self.hold.clone(),
        };
        // SAFETY: the SQE carries no pointer: the kernel writes into a buffer of the ring's
        // group, whose memory the op data keeps alive (a `BufRing` handle) until the final
        // CQE; the selected buffer is not reused until it is returned. The socket's owner is
        // in the data too (`recv`), or the caller keeps it open (`recv_raw`'s contract).
        self.state = RecvState::InFlight(unsafe { Op::submit(entry, data) });
    }
}

impl Future for Recv {
    type Output = io::Result<Option<Lease>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                RecvState::InFlight(op) => match ready!(Pin::new(op).poll(cx)) {
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        if this.ring.returned() != this.since {
                            // A buffer came back after the submit: try again now.
                            this.submit();
                        } else {
                            this.state = RecvState::Starved(this.ring.wait_returned(this.since));
                        }
                    }
                    r => {
                        this.state = RecvState::Done;
                        return Poll::Ready(r);
                    }
                },
                RecvState::Starved(wait) => {
                    ready!(Pin::new(wait).poll(cx));
                    this.submit();
                }
                RecvState::Done => panic!("Recv polled after completion"),
            }
        }
    }
}

impl fmt::Debug for Recv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            RecvState::InFlight(_) => "in flight",
            RecvState::Starved(_) => "waiting for a buffer",
            RecvState::Done => "done",
        };
        f.debug_struct("Recv")
            .field("fd", &self.fd)
            .field("bgid", &self.ring.bgid())
            .field("state", &state)
            .finish()
    }
}
