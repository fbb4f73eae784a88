//! Borrowed views of a [`Lease`]: [`LeaseSlice`] (shared, for ops that read the lease) and
//! [`LeaseSliceMut`] (exclusive, for ops that write into it), split like slices.
//!
//! The views carry the borrow checker's half of the lease rule (DESIGN §3, G7, G9): an op
//! future made from a view borrows the lease for as long as it lives, so the lease cannot be
//! dropped, moved or touched meanwhile, shared views may overlap, and exclusive views are
//! disjoint by construction ([`LeaseSliceMut::split_at_mut`]). Memory safety under drop and
//! `mem::forget` of those futures comes from the lease count, not from these borrows: each op
//! keeps a [`LeaseRef`](ringleader_buf::LeaseRef) in its data.
//!
//! Invariant of [`LeaseSliceMut`]: once a view has been split, its halves reach the lease's
//! bytes only through raw pointers into their own range, never through the shared `&Lease`
//! they keep for its address, so two halves never alias.

use std::fmt;
use std::ops::{Bound, Deref, DerefMut, RangeBounds};

use ringleader_buf::{Lease, LeaseRef};

/// Views of a lease: `use ringleader::group::LeaseExt;`.
pub trait LeaseExt {
    /// A shared view of `range`. An open end means the lease's data (`..len()`); an explicit
    /// end may go up to `capacity()` (every byte of a lease is initialised memory).
    ///
    /// # Panics
    /// If the range is decreasing or ends beyond the capacity.
    fn view(&self, range: impl RangeBounds<usize>) -> LeaseSlice<'_>;

    /// An exclusive view of `range` for ops that write into the lease; an open end means the
    /// whole capacity. Split it with [`LeaseSliceMut::split_at_mut`] for striped reads.
    ///
    /// # Panics
    /// If the range is decreasing or ends beyond the capacity.
    fn view_mut(&mut self, range: impl RangeBounds<usize>) -> LeaseSliceMut<'_>;
}

fn bounds(range: impl RangeBounds<usize>, open_end: usize, cap: usize) -> (usize, usize) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s + 1,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e + 1,
        Bound::Excluded(&e) => e,
        Bound::Unbounded => open_end,
    };
    assert!(
        start <= end && end <= cap,
        "lease view {start}..{end} out of range for a lease of {cap} bytes"
    );
    (start, end)
}

impl LeaseExt for Lease {
    fn view(&self, range: impl RangeBounds<usize>) -> LeaseSlice<'_> {
        let (start, end) = bounds(range, self.len(), self.capacity());
        LeaseSlice {
            lease: self,
            start,
            end,
        }
    }

    fn view_mut(&mut self, range: impl RangeBounds<usize>) -> LeaseSliceMut<'_> {
        let (start, end) = bounds(range, self.capacity(), self.capacity());
        LeaseSliceMut {
            lease: Exclusive::Part(self),
            start,
            end,
        }
    }
}

/// A shared view of lease bytes `start..end`, for ops that read the lease (write, send,
/// `SEND_ZC`). `Copy`: any number of readers may share the same bytes.
#[derive(Clone, Copy)]
pub struct LeaseSlice<'a> {
    lease: &'a Lease,
    start: usize,
    end: usize,
}

impl<'a> LeaseSlice<'a> {
    /// Bytes in the view.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the view is empty.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Two views, `[..mid)` and `[mid..)`.
    ///
    /// # Panics
    /// If `mid > len()`.
    pub fn split_at(self, mid: usize) -> (LeaseSlice<'a>, LeaseSlice<'a>) {
        assert!(
            mid <= self.len(),
            "split_at({mid}) of a {}-byte view",
            self.len()
        );
        let at = self.start + mid;
        (
            LeaseSlice { end: at, ..self },
            LeaseSlice { start: at, ..self },
        )
    }

    /// Address, length and fixed-buffer index of the bytes, for an SQE.
    pub(crate) fn raw(&self) -> (*const u8, usize, Option<u16>) {
        // `start <= capacity`, so the address stays inside the slot.
        let ptr = self.lease.as_ptr().wrapping_add(self.start);
        (ptr, self.len(), self.lease.buf_index())
    }

    /// A counted reference on the slot, for the op's data.
    pub(crate) fn keep(&self) -> LeaseRef {
        self.lease.keep_alive()
    }
}

impl<'a> From<&'a Lease> for LeaseSlice<'a> {
    /// The lease's data, `..len()`.
    fn from(lease: &'a Lease) -> LeaseSlice<'a> {
        lease.view(..)
    }
}

impl Deref for LeaseSlice<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `start..end` lies within the lease's capacity (checked when the view was
        // made), all of which is initialised memory of the slot; the shared borrow of the
        // lease excludes writers for as long as this view lives.
        unsafe { std::slice::from_raw_parts(self.lease.as_ptr().add(self.start), self.len()) }
    }
}

impl fmt::Debug for LeaseSlice<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseSlice")
            .field("slot", &self.lease.slot())
            .field("range", &(self.start..self.end))
            .finish()
    }
}

enum Exclusive<'a> {
    /// The whole lease, borrowed mutably: a read into it sets its `len`.
    Whole(&'a mut Lease),
    /// Part of a lease whose `&mut` borrow was consumed by the split (see the module
    /// invariant).
    Part(&'a Lease),
}

impl Exclusive<'_> {
    fn lease(&self) -> &Lease {
        match self {
            Exclusive::Whole(l) => l,
            Exclusive::Part(l) => l,
        }
    }
}

/// An exclusive view of lease bytes `start..end`, for ops that write into the lease (read,
/// recv). Views never overlap: the only way to get two is to split one.
pub struct LeaseSliceMut<'a> {
    lease: Exclusive<'a>,
    start: usize,
    end: usize,
}

impl<'a> LeaseSliceMut<'a> {
    /// Bytes in the view.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the view is empty.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Two disjoint views, `[..mid)` and `[mid..)`, like `<[T]>::split_at_mut`.
    ///
    /// # Panics
    /// If `mid > len()`.
    pub fn split_at_mut(self, mid: usize) -> (LeaseSliceMut<'a>, LeaseSliceMut<'a>) {
        assert!(
            mid <= self.len(),
            "split_at_mut({mid}) of a {}-byte view",
            self.len()
        );
        let at = self.start + mid;
        let lease: &'a Lease = match self.lease {
            Exclusive::Whole(l) => l,
            Exclusive::Part(l) => l,
        };
        (
            LeaseSliceMut {
                lease: Exclusive::Part(lease),
                start: self.start,
                end: at,
            },
            LeaseSliceMut {
                lease: Exclusive::Part(lease),
                start: at,
                end: self.end,
            },
        )
    }

    /// Address, length and fixed-buffer index of the bytes, for an SQE that writes them.
    pub(crate) fn raw(&self) -> (*mut u8, usize, Option<u16>) {
        let lease = self.lease.lease();
        // The slot's memory is writable (it is a mapping the pool or ring owns); this view's
        // exclusive borrow makes `start..end` ours. `start <= capacity`.
        let ptr = lease.as_ptr().cast_mut().wrapping_add(self.start);
        (ptr, self.len(), lease.buf_index())
    }

    /// A counted reference on the slot, for the op's data.
    pub(crate) fn keep(&self) -> LeaseRef {
        self.lease.lease().keep_alive()
    }

    /// The lease, if this view is all of it (a read then sets its `len`).
    pub(crate) fn into_whole(self) -> Option<&'a mut Lease> {
        match self.lease {
            Exclusive::Whole(l) => Some(l),
            Exclusive::Part(_) => None,
        }
    }
}

impl<'a> From<&'a mut Lease> for LeaseSliceMut<'a> {
    /// The whole capacity; an op reading into it sets the lease's `len` to the bytes read.
    fn from(lease: &'a mut Lease) -> LeaseSliceMut<'a> {
        let end = lease.capacity();
        LeaseSliceMut {
            lease: Exclusive::Whole(lease),
            start: 0,
            end,
        }
    }
}

impl Deref for LeaseSliceMut<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let (ptr, len, _) = self.raw();
        // SAFETY: `start..end` is inside the slot's initialised memory, and by the module
        // invariant no other view or borrow reaches these bytes while this one lives.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

impl DerefMut for LeaseSliceMut<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        let (ptr, len, _) = self.raw();
        // SAFETY: as for `deref`; `&mut self` makes this the only access to the range.
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }
    }
}

impl fmt::Debug for LeaseSliceMut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseSliceMut")
            .field("slot", &self.lease.lease().slot())
            .field("range", &(self.start..self.end))
            .finish()
    }
}
