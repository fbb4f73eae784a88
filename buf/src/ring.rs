//! `BufRing`: a provided-buffer ring (`IORING_REGISTER_PBUF_RING`, Linux 5.19).
//!
//! # Model
//!
//! `entries` buffers of `buf_size` bytes, each with a buffer id (`bid`) equal to its index,
//! and a ring of descriptors shared with the kernel. A buffer-select op (a recv with
//! `IOSQE_BUFFER_SELECT` and this ring's `bgid`) lets the kernel pick a buffer when data
//! arrives; the CQE names it (`flags >> IORING_CQE_BUFFER_SHIFT`), and
//! [`BufRing::claim`] turns it into a [`Lease`]. When the lease (and every `LeaseRef`) is
//! gone the buffer is written back at the ring's tail for the kernel to pick again.
//!
//! An empty ring makes the kernel fail the op with `ENOBUFS`. That is backpressure, not an
//! error: the op waits ([`BufRing::wait_returned`]) until a lease returns a buffer and is then
//! resubmitted; no data was consumed by the failed attempt.
//!
//! # Invariants
//!
//! - a buffer is in exactly one place: in the ring (the kernel may pick it), selected by the
//!   kernel for an op whose CQE is not processed yet, or leased (count > 0). So at most
//!   `entries` descriptors are ever published and the tail never overwrites a descriptor
//!   the kernel has not consumed;
//! - a descriptor is written completely before the tail that publishes it (release store);
//! - `returned` counts buffers published after the initial fill. An op that saw `ENOBUFS`
//!   compares it with the value at its submission: unchanged means the ring was empty when
//!   the kernel looked and still is (only the kernel takes buffers out), so waiting cannot
//!   miss a wake-up;
//! - the ring is unregistered only when the handle, every lease and every op holding the
//!   ring are gone (it is `RingShared`'s drop), then the memory is unmapped.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::task::{Context, Poll, Waker};

use crate::lease::{Lease, SlotCounts, Source};
use crate::memlock::registration_error;
use crate::region::Region;
use crate::sys::{BufReg, RingId, UNREGISTER_PBUF_RING};
use crate::table::TableRange;

/// `struct io_uring_buf`: one descriptor. In entry 0, `resv` is the ring's tail.
#[repr(C)]
struct BufDesc {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}
const _: () = assert!(std::mem::size_of::<BufDesc>() == 16);
/// Byte offset of the tail (`io_uring_buf_ring.tail`, overlaying entry 0's `resv`).
const TAIL_OFFSET: usize = 14;

thread_local! {
    /// The next buffer group id to try on this thread's ring.
    static NEXT_BGID: Cell<u16> = const { Cell::new(0) };
}

/// A provided-buffer ring registered with the current core's ring.
///
/// ```
/// use ringleader::buf::BufRing;
/// ringleader::block_on(async {
///     let ring = BufRing::new(8, 4096).unwrap();
///     assert_eq!((ring.entries(), ring.leased()), (8, 0));
/// });
/// ```
///
/// Create it inside the runtime; a buffer-select recv
/// (`ringleader::lease_ops::recv`) then yields [`Lease`]s on the buffers the kernel
/// picked. `!Send`; clones are handles to the same ring.
#[derive(Clone)]
pub struct BufRing {
    shared: Rc<RingShared>,
}

impl BufRing {
    /// Map `entries` buffers of `buf_size` bytes and register them as a new buffer group.
    /// `entries` is a power of two, at most 32768.
    ///
    /// # Panics
    /// Outside a ringleader runtime.
    pub fn new(entries: u16, buf_size: usize) -> io::Result<BufRing> {
        Self::build(entries, buf_size, false)
    }

    /// As [`BufRing::new`], and also register the buffers' memory as one fixed buffer, so
    /// that its leases carry a [`buf_index`](Lease::buf_index): members can then send from
    /// them with `WRITE_FIXED` or `SEND_ZC` + `IORING_RECVSEND_FIXED_BUF`. The memory
    /// (`entries * buf_size`, at most 1 GiB) counts against `RLIMIT_MEMLOCK`.
    pub fn new_fixed(entries: u16, buf_size: usize) -> io::Result<BufRing> {
        Self::build(entries, buf_size, true)
    }

    fn build(entries: u16, buf_size: usize, fixed: bool) -> io::Result<BufRing> {
        if !entries.is_power_of_two()
            || entries > 1 << 15
            || buf_size == 0
            || buf_size > u32::MAX as usize
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "ringleader: a BufRing of {entries} buffers of {buf_size} bytes (entries: a \
                     power of two up to 32768; size: 1 byte to 4 GiB)"
                ),
            ));
        }
        let ring = RingId::current()?;
        let ring_mem = Region::new(usize::from(entries) * std::mem::size_of::<BufDesc>())?;
        let total = usize::from(entries) * buf_size;
        let bufs = Region::new(total)?;
        let table = if fixed {
            if total > 1 << 30 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("ringleader: {total} bytes exceed one fixed buffer (1 GiB)"),
                ));
            }
            let table = TableRange::alloc(1)?;
            let iov = libc::iovec {
                iov_base: bufs.as_ptr().cast(),
                iov_len: total,
            };
            // SAFETY: `bufs` stays mapped until after `table` is dropped (`RingShared` field
            // order), and dropping `table` clears the entry.
            unsafe { table.update(&[iov]) }
                .map_err(|e| registration_error(e, total, "buffer-ring memory"))?;
            Some(table)
        } else {
            None
        };
        let shared = RingShared {
            table,
            ring,
            ring_id: ringleader_executor::ring_id()
                .expect("ringleader: a BufRing built outside a ringleader runtime"),
            bgid: 0,
            entries,
            buf_size,
            counts: (0..entries).map(|_| SlotCounts::default()).collect(),
            state: RefCell::new(RingState {
                tail: 0,
                returned: 0,
                leased: 0,
                starved: 0,
                waiters: Vec::new(),
            }),
            ring_mem,
            bufs,
            registered: false,
        };
        {
            let mut st = shared.state.borrow_mut();
            for bid in 0..entries {
                shared.publish(&mut st, bid);
            }
        }
        let shared = register(shared)?;
        Ok(BufRing {
            shared: Rc::new(shared),
        })
    }

    /// The buffer group id (as registered; for diagnostics).
    pub fn bgid(&self) -> u16 {
        self.shared.bgid
    }

    /// The buffer group id to put in a buffer-select SQE on the current core's ring.
    ///
    /// # Panics
    /// When the current ring is not the one the group was registered with (a second runtime
    /// on the same thread): there the same id names another ring's group, or none, and the
    /// kernel would pick buffers this ring does not own.
    #[track_caller]
    pub fn select_bgid(&self) -> u16 {
        assert!(
            ringleader_executor::ring_id() == Some(self.shared.ring_id),
            "ringleader: a BufRing used on a ring it is not registered with (build one per \
             runtime: registrations belong to one ring)"
        );
        self.shared.bgid
    }

    /// Bytes per buffer.
    pub fn buf_size(&self) -> usize {
        self.shared.buf_size
    }

    /// Buffers in the ring.
    pub fn entries(&self) -> u16 {
        self.shared.entries
    }

    /// Buffers currently leased.
    pub fn leased(&self) -> usize {
        self.shared.state.borrow().leased
    }

    /// Buffers returned to the ring since it was created (a generation counter for
    /// [`BufRing::wait_returned`]).
    pub fn returned(&self) -> u64 {
        self.shared.state.borrow().returned
    }

    /// Times an op found the ring empty and had to wait for a buffer.
    pub fn starved(&self) -> u64 {
        self.shared.state.borrow().starved
    }

    /// Wait until a buffer is returned after generation `since` (a value of
    /// [`BufRing::returned`] read before the op that saw `ENOBUFS` was submitted). Counts as
    /// one starvation.
    pub fn wait_returned(&self, since: u64) -> WaitReturned {
        self.shared.state.borrow_mut().starved += 1;
        WaitReturned {
            ring: Rc::clone(&self.shared),
            since,
        }
    }

    /// Take buffer `bid`, which the kernel selected for an op, as a lease holding `len`
    /// bytes of data.
    ///
    /// # Safety
    /// The kernel must have handed `bid` out in a CQE (`IORING_CQE_F_BUFFER`) of an op on
    /// this ring's group, and that CQE must not have been claimed before: the kernel does not
    /// touch the buffer again until it is returned. `len <= buf_size()`.
    ///
    /// # Panics
    /// If `bid` is out of range or already leased (a CQE claimed twice).
    pub unsafe fn claim(&self, bid: u16, len: usize) -> Lease {
        assert!(bid < self.shared.entries, "bid {bid} out of range");
        assert!(
            len <= self.shared.buf_size,
            "{len} bytes in a {}-byte buffer",
            self.shared.buf_size
        );
        self.shared.state.borrow_mut().leased += 1;
        let source: Rc<dyn Source> = Rc::clone(&self.shared) as Rc<dyn Source>;
        let ptr = self.shared.buf_ptr(bid);
        let cap = self.shared.buf_size;
        let buf_index = self
            .shared
            .table
            .as_ref()
            .map(|t| (t.start() as u16, t.ring_id()));
        // SAFETY: the buffer lies in `bufs`, kept mapped by `source`; the caller guarantees
        // the kernel is done with it and nobody else claimed it; region memory is initialised.
        unsafe { Lease::new(source, u32::from(bid), ptr, cap, len, buf_index) }
    }
}

impl fmt::Debug for BufRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufRing")
            .field("bgid", &self.shared.bgid)
            .field("entries", &self.shared.entries)
            .field("buf_size", &self.shared.buf_size)
            .field("leased", &self.leased())
            .finish()
    }
}

/// A future that completes when a buffer returns to a [`BufRing`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct WaitReturned {
    ring: Rc<RingShared>,
    since: u64,
}

impl Future for WaitReturned {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        {
            let st = self.ring.state.borrow();
            if st.returned != self.since {
                return Poll::Ready(());
            }
            if st.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                return Poll::Pending;
            }
        }
        // Cloned outside the state borrow: a waker's clone is user code, which may return a
        // buffer to this very ring.
        let waker = cx.waker().clone();
        let mut st = self.ring.state.borrow_mut();
        if st.returned != self.since {
            drop(st);
            drop(waker);
            return Poll::Ready(());
        }
        st.waiters.push(waker);
        Poll::Pending
    }
}

impl fmt::Debug for WaitReturned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitReturned")
            .field("since", &self.since)
            .finish()
    }
}

struct RingState {
    /// Our copy of the tail (the kernel only reads it).
    tail: u16,
    returned: u64,
    leased: usize,
    starved: u64,
    waiters: Vec<Waker>,
}

struct RingShared {
    /// The fixed-buffer entry of `bufs`, if registered. Declared before the regions, so it is
    /// cleared before they are unmapped.
    table: Option<TableRange>,
    ring: RingId,
    /// `ringleader::ops::ring_id()` of the ring the group is registered with.
    ring_id: u64,
    bgid: u16,
    entries: u16,
    buf_size: usize,
    /// Per-slot counts (`lease.rs`): a boxed slice, never reallocated, so leases may keep
    /// pointers into it while this source lives.
    counts: Box<[SlotCounts]>,
    state: RefCell<RingState>,
    ring_mem: Region,
    bufs: Region,
    registered: bool,
}

impl RingShared {
    fn buf_ptr(&self, bid: u16) -> NonNull<u8> {
        // SAFETY: `bid < entries`, so the offset is inside `bufs` (`entries * buf_size`).
        let p = unsafe { self.bufs.as_ptr().add(usize::from(bid) * self.buf_size) };
        NonNull::new(p).expect("mapping is non-null")
    }

    /// Write `bid`'s descriptor at the tail and publish it.
    fn publish(&self, st: &mut RingState, bid: u16) {
        let idx = usize::from(st.tail & (self.entries - 1));
        let addr = self.buf_ptr(bid).as_ptr() as u64;
        // SAFETY: `idx < entries`, so the descriptor is inside `ring_mem`. Only this thread
        // writes descriptors, and the kernel does not read this one: it is past the tail, and
        // by the module invariant fewer than `entries` buffers are published. The fields are
        // written one by one so that entry 0's `resv` (the tail) is not touched.
        unsafe {
            let d = self.ring_mem.as_ptr().cast::<BufDesc>().add(idx);
            std::ptr::addr_of_mut!((*d).addr).write(addr);
            std::ptr::addr_of_mut!((*d).len).write(self.buf_size as u32);
            std::ptr::addr_of_mut!((*d).bid).write(bid);
        }
        st.tail = st.tail.wrapping_add(1);
        // SAFETY: the tail is a naturally aligned u16 inside `ring_mem`, which the kernel
        // reads with an acquire load; it is only accessed atomically.
        let tail = unsafe { AtomicU16::from_ptr(self.ring_mem.as_ptr().add(TAIL_OFFSET).cast()) };
        tail.store(st.tail, Ordering::Release);
    }
}

impl Source for RingShared {
    fn counts(&self, slot: u32) -> &SlotCounts {
        &self.counts[slot as usize]
    }

    fn recycle(&self, slot: u32) {
        let waiters = {
            let mut st = self.state.borrow_mut();
            st.leased -= 1;
            self.publish(&mut st, slot as u16);
            st.returned += 1;
            std::mem::take(&mut st.waiters)
        };
        for w in waiters {
            w.wake();
        }
    }
}

impl Drop for RingShared {
    fn drop(&mut self) {
        if !self.registered {
            return;
        }
        let reg = BufReg {
            bgid: self.bgid,
            ..BufReg::default()
        };
        // SAFETY: `reg` is a live `io_uring_buf_reg` for the call. Nothing references the
        // ring any more (this is the last `Rc`): no lease, no op holding the ring. The
        // memory is unmapped after this, when the fields drop.
        let r = unsafe {
            self.ring
                .register_if_alive(UNREGISTER_PBUF_RING, (&reg as *const BufReg).cast(), 1)
        };
        // Failure leaves the kernel with its own pin on the ring pages: safe, only not
        // reclaimed before the ring goes.
        drop(r);
    }
}

/// Register `shared` under the first free buffer group id of the current ring.
fn register(mut shared: RingShared) -> io::Result<RingShared> {
    let addr = shared.ring_mem.as_ptr() as u64;
    let start = NEXT_BGID.with(Cell::get);
    for i in 0..=u16::MAX {
        let bgid = start.wrapping_add(i);
        let r = ringleader_executor::with_submitter(|s| {
            // SAFETY: `ring_mem` holds `entries` descriptors and stays mapped until after the
            // group is unregistered (`RingShared`'s drop).
            unsafe { s.register_buf_ring_with_flags(addr, shared.entries, bgid, 0) }
        });
        match r {
            Ok(()) => {
                NEXT_BGID.with(|n| n.set(bgid.wrapping_add(1)));
                shared.bgid = bgid;
                shared.registered = true;
                return Ok(shared);
            }
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!(
                        "ringleader: IORING_REGISTER_PBUF_RING of {} buffers failed (needs Linux \
                         5.19): {e}",
                        shared.entries
                    ),
                ));
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::OutOfMemory,
        "ringleader: every buffer group id of this ring is taken",
    ))
}
