//! Ops on leased memory: `READ_FIXED`/`WRITE_FIXED` into and from a [`Lease`] (Linux 5.1),
//! and a buffer-select `recv` (Linux 5.19 for buffer rings) that yields a [`Lease`] on the
//! buffer the kernel chose from a [`BufRing`].
//!
//! Each op keeps its lease (or, for `recv`, the ring and the buffer the kernel selected) in
//! its op data, so the lease safety rule holds: dropping the op future returns the memory at
//! the op's final CQE, forgetting it leaks the memory, and neither lets a slot be reused
//! while the kernel may still write into it.

use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use io_uring::{cqueue, opcode, squeue, types};
use ringleader_buf::{BufResult, BufRing, Lease, WaitReturned};
use ringleader_executor::{Completable, Cqe, Op, Orphan};

/// Resources of a read into a lease.
#[derive(Debug)]
pub struct ReadLease {
    lease: Lease,
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

/// Resources of a write from a lease.
#[derive(Debug)]
pub struct WriteLease {
    lease: Lease,
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
/// `buf_index`; an unregistered one a plain `IORING_OP_READ`. The fd must stay open until
/// the op completes.
///
/// ```
/// use ringleader_buf::FixedPool;
/// ringleader_executor::block_on(async {
///     let pool = FixedPool::new(4096, 1).unwrap();
///     let mut fds = [0; 2];
///     assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
///     let mut lease = pool.lease(5).await.unwrap();
///     lease.extend_from_slice(b"hello");
///     let (r, lease) = ringleader_io::lease_ops::write_fixed(fds[1], lease, u64::MAX).await;
///     assert_eq!(r.unwrap(), 5);
///     drop(lease);
///     let lease = pool.lease(4096).await.unwrap();
///     let (r, lease) = ringleader_io::lease_ops::read_fixed(fds[0], lease, u64::MAX).await;
///     assert_eq!((r.unwrap(), &lease[..]), (5, &b"hello"[..]));
///     unsafe { libc::close(fds[0]); libc::close(fds[1]); }
/// });
/// ```
pub fn read_fixed(fd: RawFd, mut lease: Lease, offset: u64) -> Op<ReadLease> {
    let len = lease.capacity().min(u32::MAX as usize) as u32;
    let ptr = lease.as_mut_ptr();
    let entry = match lease.buf_index() {
        Some(index) => opcode::ReadFixed::new(types::Fd(fd), ptr, len, index)
            .offset(offset)
            .build(),
        None => opcode::Read::new(types::Fd(fd), ptr, len)
            .offset(offset)
            .build(),
    };
    // SAFETY: `ptr..ptr + len` is the lease's memory, which lies inside the fixed buffer
    // `buf_index` names (the pool registered the whole slot) and does not move with the
    // lease; the lease is the op's data, kept until the final CQE, and its slot is not
    // reused while the lease lives.
    unsafe { Op::submit(entry, ReadLease { lease }) }
}

/// Write `lease.len()` bytes from the lease to `fd` at `offset` (`u64::MAX`: the file
/// position): `IORING_OP_WRITE_FIXED` for a registered lease, `IORING_OP_WRITE` otherwise.
pub fn write_fixed(fd: RawFd, lease: Lease, offset: u64) -> Op<WriteLease> {
    let len = lease.len().min(u32::MAX as usize) as u32;
    let ptr = lease.as_ptr();
    let entry = match lease.buf_index() {
        Some(index) => opcode::WriteFixed::new(types::Fd(fd), ptr, len, index)
            .offset(offset)
            .build(),
        None => opcode::Write::new(types::Fd(fd), ptr, len)
            .offset(offset)
            .build(),
    };
    // SAFETY: as for `read_fixed`: the lease's stable, registered memory, owned by the op
    // until its final CQE.
    unsafe { Op::submit(entry, WriteLease { lease }) }
}

/// Resources of a buffer-select recv: the ring, and the buffer the kernel selected if the
/// CQE arrived after the future was dropped (it is handed back to the ring on drop).
pub struct RecvSelect {
    ring: BufRing,
    selected: Option<u16>,
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
pub fn recv(fd: RawFd, ring: &BufRing) -> Recv {
    let mut r = Recv {
        fd,
        ring: ring.clone(),
        since: 0,
        state: RecvState::Done,
    };
    r.submit();
    r
}

/// The future of [`recv`].
#[must_use = "futures do nothing unless you `.await` or poll them; dropping cancels the recv"]
pub struct Recv {
    fd: RawFd,
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
    fn submit(&mut self) {
        // Read before the push: a buffer returned after this is seen as a change.
        self.since = self.ring.returned();
        let len = self.ring.buf_size().min(u32::MAX as usize) as u32;
        let entry = opcode::Recv::new(types::Fd(self.fd), std::ptr::null_mut(), len)
            .buf_group(self.ring.bgid())
            .build()
            .flags(squeue::Flags::BUFFER_SELECT);
        let data = RecvSelect {
            ring: self.ring.clone(),
            selected: None,
        };
        // SAFETY: the SQE carries no pointer: the kernel writes into a buffer of the ring's
        // group, whose memory the op data keeps alive (a `BufRing` handle) until the final
        // CQE; the selected buffer is not reused until it is returned.
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
