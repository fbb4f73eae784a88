//! `FixedPool`: memory registered once as fixed buffers, handed out as [`Lease`]s.
//!
//! # Model
//!
//! A pool is one or several *size classes*; a class is `count` slots of `size` bytes in one
//! `mmap`ed region. Every slot is one entry of the ring's fixed-buffer table (see
//! `table.rs`), so a lease's [`buf_index`](Lease::buf_index) names exactly its slot.
//! [`FixedPool::lease`] picks the smallest class that fits and waits when every fitting slot
//! is leased: that wait is the backpressure. Waiters are served in FIFO order: a returning
//! slot goes straight to the oldest waiter it fits, so a late `lease` or `try_lease` cannot
//! overtake it.
//!
//! # Invariants
//!
//! - a slot is in exactly one place: a class's free list, granted to one waiter, or leased
//!   (count > 0, see [`crate::lease`]); `available` is the length of the free lists;
//! - a slot returns to the pool only through [`Source::recycle`], i.e. when its last
//!   `Lease`/`LeaseRef` is dropped, which for a lease inside an op is at its final CQE;
//! - the registration is cleared before the memory is unmapped (field order of
//!   `PoolShared`), and both happen only when the pool handle and every lease are gone;
//! - wakers are cloned, dropped and woken outside the state borrow: a waker never runs inside
//!   the pool (its clone or drop may return a lease to it).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::ptr::NonNull;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use slab::Slab;

use crate::lease::{Lease, SlotCounts, Source};
use crate::memlock::registration_error;
use crate::region::Region;
use crate::table::{TABLE_ENTRIES, TableRange};

/// The kernel's limit on one registered buffer (1 GiB).
const MAX_SLOT: usize = 1 << 30;

/// Registered fixed-buffer memory of one core, handed out as [`Lease`]s.
///
/// ```
/// use ringleader::buf::FixedPool;
/// ringleader::block_on(async {
///     let pool = FixedPool::new(4096, 2).unwrap();
///     let a = pool.lease(4096).await.unwrap();
///     let _b = pool.try_lease(100).unwrap();
///     assert!(pool.try_lease(1).is_none(), "exhausted");
///     assert!(a.buf_index().is_some());
///     drop(a);
///     assert_eq!(pool.available(), 1);
/// });
/// ```
///
/// A pool is `!Send`: it belongs to the core (ring) that created it, and its leases carry
/// that ring's buffer indices. Clones are handles to the same pool.
///
/// # Per-core registration: own table or `IORING_REGISTER_CLONE_BUFFERS`
///
/// **Decision: each ring registers its own table; pools never clone another ring's.**
/// Measured with `bench/src/bin/buffers.rs --only register --runs 9` (Linux 6.18, 2-vCPU VM,
/// root, 4 KiB pages): time for a fresh ring to get N MiB of 64 KiB buffers, median
/// [min .. max]:
///
/// | N MiB | buffers | own table (sparse + update) | clone from another ring | own/clone |
/// |------:|--------:|----------------------------:|------------------------:|----------:|
/// |    16 |     256 |   0.77 ms [0.73 .. 0.90]    |  0.035 ms [0.033 .. 0.044] |   22x |
/// |    64 |    1024 |   4.9 ms [3.6 .. 5.5]       |  0.15 ms [0.14 .. 0.39]    |   33x |
/// |   256 |    4096 |  14.0 ms [13.4 .. 19.3]     |  0.93 ms [0.67 .. 1.24]    |   15x |
///
/// Cloning skips the page pinning, so it is 15-33x faster and charges no second
/// `RLIMIT_MEMLOCK`. But registration is a one-time start-up cost (about 55 µs per MiB per
/// core), and a clone makes every core's table describe the *same* memory: a slot would be
/// reachable from two rings, so the pool would need cross-core slot ownership (atomics and
/// a shared free list) that the `!Send`, one-core-one-pool model avoids, and one core's
/// memory would be touched first (NUMA-placed) by another. Revisit if start-up time with
/// multi-GiB pools matters; `IORING_REGISTER_CLONE_BUFFERS` needs Linux 6.12 anyway.
///
/// Fixed against unregistered buffers (same bench, `--runs 5`, 8192 reads per run, QD =
/// tasks each reusing one buffer; a virtio disk, so O_DIRECT rows are noisy): 64 KiB
/// `O_DIRECT` 1.00x (QD 1) and 1.07x (QD 32); 4 KiB `O_DIRECT` 1.36x and 1.18x; 4 KiB
/// buffered reads from the page cache 0.88x and 0.91x. Registration pays where the kernel
/// would otherwise pin user pages per I/O (direct I/O); for page-cache copies it costs a
/// little.
#[derive(Clone)]
pub struct FixedPool {
    shared: Rc<PoolShared>,
}

/// Size classes of a [`FixedPool`] before registration.
#[derive(Clone, Debug, Default)]
pub struct FixedPoolBuilder {
    classes: Vec<(usize, usize)>,
}

impl FixedPoolBuilder {
    /// Add `count` slots of `size` bytes. Use a multiple of the page size for `O_DIRECT`
    /// (slots then start page-aligned).
    pub fn class(mut self, size: usize, count: usize) -> Self {
        self.classes.push((size, count));
        self
    }

    /// Map the memory and register it with the current core's ring.
    ///
    /// Fails with a [`MemlockError`](crate::MemlockError) inside the `io::Error` when
    /// `RLIMIT_MEMLOCK` is too low for the pool.
    ///
    /// # Panics
    /// Outside a ringleader runtime.
    pub fn build(self) -> io::Result<FixedPool> {
        let mut classes = self.classes;
        classes.sort_unstable();
        let invalid = |msg: String| Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        if classes.is_empty() {
            return invalid("ringleader: a FixedPool needs at least one size class".into());
        }
        let total: usize = classes.iter().map(|&(_, n)| n).sum();
        if total > TABLE_ENTRIES as usize {
            return invalid(format!(
                "ringleader: {total} slots exceed the fixed-buffer table ({TABLE_ENTRIES} entries)"
            ));
        }
        if let Some(&(size, count)) = classes
            .iter()
            .find(|&&(s, n)| s == 0 || s > MAX_SLOT || n == 0)
        {
            return invalid(format!(
                "ringleader: a size class of {count} slots of {size} bytes (sizes go from 1 byte \
                 to 1 GiB, counts from 1)"
            ));
        }
        let mut regions = Vec::with_capacity(classes.len());
        let mut slots = Vec::with_capacity(total);
        let mut state = PoolState {
            classes: Vec::with_capacity(classes.len()),
            waiters: Slab::new(),
            queue: VecDeque::new(),
            available: total,
        };
        for (class, &(size, count)) in classes.iter().enumerate() {
            let bytes = size.checked_mul(count).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "ringleader: pool size overflows",
                )
            })?;
            let region = Region::new(bytes)?;
            let first = slots.len() as u32;
            for i in 0..count {
                // SAFETY: `i * size < bytes`, and the region is at least `bytes` long.
                let p = unsafe { region.as_ptr().add(i * size) };
                slots.push(SlotInfo {
                    ptr: NonNull::new(p).expect("mapping is non-null"),
                    size,
                    class,
                });
            }
            // Reversed so that `pop` hands out the lowest slot first (predictable indices).
            let free = (first..first + count as u32).rev().collect();
            state.classes.push(Class { size, count, free });
            regions.push(region);
        }
        let iovecs: Vec<libc::iovec> = slots
            .iter()
            .map(|s| libc::iovec {
                iov_base: s.ptr.as_ptr().cast(),
                iov_len: s.size,
            })
            .collect();
        let asked: usize = slots.iter().map(|s| s.size).sum();
        let table = TableRange::alloc(total as u32)?;
        // SAFETY: the iovecs describe `regions`, which `PoolShared` keeps mapped until after
        // `table` is dropped (field order), and dropping `table` clears the entries.
        unsafe { table.update(&iovecs) }
            .map_err(|e| registration_error(e, asked, "fixed buffers"))?;
        Ok(FixedPool {
            shared: Rc::new(PoolShared {
                table,
                counts: (0..total).map(|_| SlotCounts::default()).collect(),
                slots: slots.into_boxed_slice(),
                state: RefCell::new(state),
                _regions: regions,
            }),
        })
    }
}

impl FixedPool {
    /// A pool of `count` slots of `size` bytes, registered with the current core's ring.
    ///
    /// # Panics
    /// Outside a ringleader runtime.
    pub fn new(size: usize, count: usize) -> io::Result<FixedPool> {
        Self::builder().class(size, count).build()
    }

    /// A pool of several size classes.
    pub fn builder() -> FixedPoolBuilder {
        FixedPoolBuilder::default()
    }

    /// Lease `len` bytes from the smallest class that fits, waiting (in FIFO order with other
    /// waiters) while every fitting slot is leased. Fails only if `len` exceeds the largest
    /// slot size.
    pub fn lease(&self, len: usize) -> LeaseFuture {
        LeaseFuture {
            pool: Rc::clone(&self.shared),
            len,
            key: None,
        }
    }

    /// Lease `len` bytes now, or `None` if no fitting slot is free (or none is that large).
    pub fn try_lease(&self, len: usize) -> Option<Lease> {
        let slot = self.shared.state.borrow_mut().take(len)?;
        Some(self.shared.lease(slot, len))
    }

    /// Slots free to lease now.
    pub fn available(&self) -> usize {
        self.shared.state.borrow().available
    }

    /// Slots in the pool.
    pub fn capacity(&self) -> usize {
        self.shared.slots.len()
    }

    /// `lease` futures waiting for a slot.
    pub fn waiting(&self) -> usize {
        self.shared.state.borrow().waiters.len()
    }

    /// The largest lease the pool can give.
    pub fn max_lease(&self) -> usize {
        self.shared.state.borrow().max_lease()
    }

    /// The size classes: `(slot size, slot count)`, smallest first.
    pub fn classes(&self) -> Vec<(usize, usize)> {
        let st = self.shared.state.borrow();
        st.classes.iter().map(|c| (c.size, c.count)).collect()
    }

    /// Index of the pool's first entry in the ring's fixed-buffer table.
    pub fn first_buf_index(&self) -> u16 {
        self.shared.table.start() as u16
    }
}

impl fmt::Debug for FixedPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedPool")
            .field("classes", &self.classes())
            .field("available", &self.available())
            .field("waiting", &self.waiting())
            .finish()
    }
}

/// A future for a [`Lease`] from a [`FixedPool`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct LeaseFuture {
    pool: Rc<PoolShared>,
    len: usize,
    /// The waiter entry once queued.
    key: Option<usize>,
}

impl Future for LeaseFuture {
    type Output = io::Result<Lease>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<Lease>> {
        let this = self.get_mut();
        // Wakers are cloned and dropped outside the state borrow (user code, which may drop
        // a lease of this pool): `waker` is the clone in hand, `old` one to drop.
        let mut waker: Option<Waker> = None;
        let mut old: Option<Waker> = None;
        let slot = loop {
            let mut st = this.pool.state.borrow_mut();
            match this.key {
                None => {
                    if this.len > st.max_lease() {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!(
                                "ringleader: a lease of {} bytes exceeds the pool's largest slot \
                                 ({} bytes)",
                                this.len,
                                st.max_lease()
                            ),
                        )));
                    }
                    if let Some(slot) = st.take(this.len) {
                        break slot;
                    }
                    let Some(w) = waker.take() else {
                        drop(st);
                        waker = Some(cx.waker().clone());
                        continue; // Look again: the clone may have returned a slot.
                    };
                    let key = st.waiters.insert(Waiter::Waiting {
                        len: this.len,
                        waker: w,
                    });
                    st.queue.push_back(key);
                    this.key = Some(key);
                    return Poll::Pending;
                }
                Some(key) => match &mut st.waiters[key] {
                    Waiter::Granted(slot) => {
                        let slot = *slot;
                        st.waiters.remove(key);
                        this.key = None;
                        break slot;
                    }
                    Waiter::Waiting { waker: stored, .. } => {
                        if stored.will_wake(cx.waker()) {
                            return Poll::Pending;
                        }
                        let Some(w) = waker.take() else {
                            drop(st);
                            waker = Some(cx.waker().clone());
                            continue; // Look again: the clone may have granted a slot.
                        };
                        old = Some(std::mem::replace(stored, w));
                        drop(st);
                        drop(old.take());
                        return Poll::Pending;
                    }
                },
            }
        };
        drop(waker);
        drop(old);
        Poll::Ready(Ok(this.pool.lease(slot, this.len)))
    }
}

impl Drop for LeaseFuture {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let (granted, waker) = {
            let mut st = self.pool.state.borrow_mut();
            match st.waiters.remove(key) {
                Waiter::Granted(slot) => (Some(slot), None),
                Waiter::Waiting { waker, .. } => {
                    st.queue.retain(|&k| k != key);
                    (None, Some(waker))
                }
            }
        };
        // Outside the borrow: the waker's drop is user code.
        drop(waker);
        // A slot granted but never taken goes on to the next waiter.
        if let Some(slot) = granted {
            self.pool.recycle(slot);
        }
    }
}

impl fmt::Debug for LeaseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseFuture")
            .field("len", &self.len)
            .field("queued", &self.key.is_some())
            .finish()
    }
}

struct SlotInfo {
    ptr: NonNull<u8>,
    size: usize,
    class: usize,
}

struct Class {
    size: usize,
    count: usize,
    free: Vec<u32>,
}

enum Waiter {
    Waiting { len: usize, waker: Waker },
    Granted(u32),
}

struct PoolState {
    /// Ascending by size.
    classes: Vec<Class>,
    waiters: Slab<Waiter>,
    /// Keys of `Waiting` entries, oldest first.
    queue: VecDeque<usize>,
    available: usize,
}

impl PoolState {
    fn max_lease(&self) -> usize {
        self.classes.last().map_or(0, |c| c.size)
    }

    /// A free slot of the smallest class that fits `len`.
    fn take(&mut self, len: usize) -> Option<u32> {
        let slot = self
            .classes
            .iter_mut()
            .filter(|c| c.size >= len)
            .find_map(|c| c.free.pop())?;
        self.available -= 1;
        Some(slot)
    }
}

struct PoolShared {
    // Declared first, so dropped first: the entries are cleared (giving the pinned pages and
    // their locked-memory charge back) before `_regions` unmaps the memory.
    table: TableRange,
    state: RefCell<PoolState>,
    /// Per-slot counts (`lease.rs`): a boxed slice, never reallocated, so leases may keep
    /// pointers into it while this source lives.
    counts: Box<[SlotCounts]>,
    slots: Box<[SlotInfo]>,
    _regions: Vec<Region>,
}

impl PoolShared {
    /// Turn the free `slot` into a lease of `len` bytes.
    fn lease(self: &Rc<Self>, slot: u32, len: usize) -> Lease {
        let info = &self.slots[slot as usize];
        debug_assert!(len <= info.size);
        let buf_index = (self.table.start() + slot) as u16;
        let source: Rc<dyn Source> = Rc::clone(self) as Rc<dyn Source>;
        // SAFETY: the slot's `size >= len` bytes lie in a region `source` keeps mapped; the
        // slot came off a free list (or a grant), so nobody else uses it until its count
        // drops to zero again; region memory is initialised.
        unsafe {
            Lease::new(
                source,
                slot,
                info.ptr,
                len,
                0,
                Some((buf_index, self.table.ring_id())),
            )
        }
    }
}

impl Source for PoolShared {
    fn counts(&self, slot: u32) -> &SlotCounts {
        &self.counts[slot as usize]
    }

    fn recycle(&self, slot: u32) {
        let size = self.slots[slot as usize].size;
        let waker = {
            let mut guard = self.state.borrow_mut();
            let st = &mut *guard;
            let fits = st
                .queue
                .iter()
                .position(|&k| matches!(st.waiters[k], Waiter::Waiting { len, .. } if len <= size));
            match fits {
                Some(pos) => {
                    let key = st.queue.remove(pos).expect("position is in range");
                    match std::mem::replace(&mut st.waiters[key], Waiter::Granted(slot)) {
                        Waiter::Waiting { waker, .. } => Some(waker),
                        Waiter::Granted(_) => unreachable!("queued waiters are waiting"),
                    }
                }
                None => {
                    let class = self.slots[slot as usize].class;
                    st.classes[class].free.push(slot);
                    st.available += 1;
                    None
                }
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}
