//! Leases: counted claims on kernel-visible memory.
//!
//! A [`Lease`] is the owned, exclusive view of one slot of a [`FixedPool`](crate::FixedPool)
//! or one buffer of a [`BufRing`](crate::BufRing). Ops take a lease by value and give it back
//! at their final CQE; an op that only needs the memory to stay put (a group member, a
//! `SEND_ZC` waiting for its notification) keeps a [`LeaseRef`] in its op data instead.
//!
//! # The lease safety rule
//!
//! A slot's memory is reused only after every CQE (and `SEND_ZC` notification) of every op
//! that referenced it has been reaped. It holds because the count that guards reuse is kept by
//! values the *runtime* owns, not by the user's borrows:
//!
//! - each slot has a count: the number of live `Lease` and `LeaseRef` values that name it;
//!   the source hands a slot out only while its count is zero, and gets it back
//!   ([`Source::recycle`]) exactly when the count drops to zero;
//! - an op keeps its `Lease`/`LeaseRef` in its op data, which the executor keeps until the
//!   op's final CQE even if the op future is dropped (it is parked in the op's slot), and
//!   leaks if the future is `mem::forget`-ed. So dropping an op returns the slot at the final
//!   CQE, and forgetting it leaks the slot: never reused, never corrupted;
//! - every `Lease`/`LeaseRef` holds an `Rc` to its source, so the memory outlives them all;
//!   the types are `!Send`: a slot never leaves the core (ring) it was registered with.

use std::cell::Cell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::rc::Rc;

use crate::owned::{IoBuf, IoBufMut};

/// A provider of leasable slots (a pool or a buffer ring).
pub(crate) trait Source {
    /// The reference count of `slot`.
    fn count(&self, slot: u32) -> &Cell<usize>;
    /// The count of `slot` reached zero: no op can reference its memory any more.
    fn recycle(&self, slot: u32);
}

/// A counted reference that keeps a lease's slot from being reused.
///
/// It grants no access to the memory. Put one in the data of every op whose SQE points into
/// the lease (see [`Lease::keep_alive`]); the slot returns to its pool only when the lease
/// and every `LeaseRef` are gone.
pub struct LeaseRef {
    source: Rc<dyn Source>,
    slot: u32,
}

impl LeaseRef {
    /// The first reference to `slot`, whose count must be zero (it was free).
    pub(crate) fn claim(source: Rc<dyn Source>, slot: u32) -> LeaseRef {
        let c = source.count(slot);
        assert_eq!(c.get(), 0, "slot {slot} handed out while still referenced");
        c.set(1);
        LeaseRef { source, slot }
    }

    /// The slot's index in its source (for tests and diagnostics).
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// How many `Lease`/`LeaseRef` values name this slot, this one included.
    pub fn count(&self) -> usize {
        self.source.count(self.slot).get()
    }
}

impl Clone for LeaseRef {
    fn clone(&self) -> Self {
        let c = self.source.count(self.slot);
        c.set(c.get() + 1);
        LeaseRef {
            source: Rc::clone(&self.source),
            slot: self.slot,
        }
    }
}

impl Drop for LeaseRef {
    fn drop(&mut self) {
        let c = self.source.count(self.slot);
        let n = c.get() - 1;
        c.set(n);
        if n == 0 {
            self.source.recycle(self.slot);
        }
    }
}

impl fmt::Debug for LeaseRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseRef")
            .field("slot", &self.slot)
            .field("count", &self.count())
            .finish()
    }
}

/// Exclusive, owned use of a slot of kernel-visible memory.
///
/// `capacity()` bytes at a fixed address; the first `len()` hold data (what the last read
/// produced, or what the user wrote). Every byte is initialised memory, possibly left over
/// from the slot's previous lease: `set_len` is safe.
///
/// A lease from a [`FixedPool`](crate::FixedPool) has a [`buf_index`](Lease::buf_index) in the
/// ring's fixed-buffer table, for `READ_FIXED`/`WRITE_FIXED`/`SEND_ZC` with a fixed buffer.
/// Dropping the lease ends it: the slot goes back to its source once no op references it.
pub struct Lease {
    ptr: NonNull<u8>,
    cap: usize,
    len: usize,
    buf_index: Option<u16>,
    hold: LeaseRef,
}

impl Lease {
    /// A lease on `cap` bytes at `ptr`, the memory of `slot` of `source`.
    ///
    /// # Safety
    /// `ptr..ptr + cap` must be initialised memory owned by `source`, valid while `source`
    /// lives, and used by nobody else while the slot's count is non-zero; `len <= cap`.
    pub(crate) unsafe fn new(
        source: Rc<dyn Source>,
        slot: u32,
        ptr: NonNull<u8>,
        cap: usize,
        len: usize,
        buf_index: Option<u16>,
    ) -> Lease {
        debug_assert!(len <= cap);
        Lease {
            ptr,
            cap,
            len,
            buf_index,
            hold: LeaseRef::claim(source, slot),
        }
    }

    /// Bytes the lease covers.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Bytes that hold data.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no byte holds data.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Set how many bytes hold data.
    ///
    /// # Panics
    /// If `n > capacity()`.
    pub fn set_len(&mut self, n: usize) {
        assert!(
            n <= self.cap,
            "set_len({n}) beyond the lease's capacity {}",
            self.cap
        );
        self.len = n;
    }

    /// Forget the data (`len` becomes 0).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Append `data` after the first `len()` bytes.
    ///
    /// # Panics
    /// If the data does not fit the capacity.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        let end = self.len + data.len();
        assert!(
            end <= self.cap,
            "{end} bytes do not fit a lease of {}",
            self.cap
        );
        let start = self.len;
        self.full_mut()[start..end].copy_from_slice(data);
        self.len = end;
    }

    /// The bytes after the data, up to the capacity.
    pub fn spare_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut self.full_mut()[len..]
    }

    /// Index of the slot in the ring's fixed-buffer table, if it is registered.
    pub fn buf_index(&self) -> Option<u16> {
        self.buf_index
    }

    /// A counted reference that keeps this slot from reuse until it is dropped. Store it in
    /// the data of an op whose SQE points into the lease.
    ///
    /// It guards *reuse* only: it does not stop this lease's owner from touching the memory.
    /// An op that the kernel may still be running when the owner gets the lease back (a
    /// dropped member that writes into it) must be kept from that by its submitter, as
    /// [`Op::submit`](ringleader_executor::Op::submit)'s contract requires.
    pub fn keep_alive(&self) -> LeaseRef {
        self.hold.clone()
    }

    /// The slot's index in its pool or ring (a buffer ring's `bid`).
    pub fn slot(&self) -> u32 {
        self.hold.slot
    }

    /// Start of the memory.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// Start of the memory, for an SQE that writes into it.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    fn full_mut(&mut self) -> &mut [u8] {
        // SAFETY: `new`'s contract: `cap` initialised bytes that only this lease uses; `&mut
        // self` excludes other access through it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.cap) }
    }
}

impl Deref for Lease {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `len <= cap` initialised bytes of memory this lease owns (see `new`).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut self.full_mut()[..len]
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("slot", &self.hold.slot)
            .field("buf_index", &self.buf_index)
            .field("len", &self.len)
            .field("capacity", &self.cap)
            .finish()
    }
}

// SAFETY: the memory belongs to the source, which the lease keeps alive (an `Rc` in `hold`),
// so it does not move when the lease moves; `len` bytes are initialised (all are).
unsafe impl IoBuf for Lease {
    fn stable_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len
    }
    fn bytes_total(&self) -> usize {
        self.cap
    }
}

// SAFETY: as above; all `cap` bytes are writable and owned by this lease.
unsafe impl IoBufMut for Lease {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    unsafe fn set_init(&mut self, n: usize) {
        if n > self.len {
            self.len = n.min(self.cap);
        }
    }
}
