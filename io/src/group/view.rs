//! Borrowed views of a [`Lease`]: [`LeaseSlice`] (shared, for ops that read the lease) and
//! [`LeaseSliceMut`] (exclusive, for ops that write into it), split like slices.
//!
//! The views carry the borrow checker's half of the lease rules (docs/design.md §3, G7, G9): an op
//! future made from a view borrows the lease for as long as it lives, so the lease cannot be
//! dropped, moved or touched meanwhile, shared views may overlap, and exclusive views are
//! disjoint by construction ([`LeaseSliceMut::split_at_mut`]). What survives `drop` and
//! `mem::forget` of those futures is the run-time half: each op keeps a
//! [`LeaseRef`](ringleader_buf::LeaseRef) in its data, a kernel reader for ops made from a
//! [`LeaseSlice`], a kernel writer for ops made from a [`LeaseSliceMut`]; the slot is not
//! reused, and its bytes not reached by safe code, while the kernel may use them.
//!
//! # Access checks
//!
//! - A [`LeaseSlice`]'s bytes are refused (panic; [`LeaseSlice::try_as_slice`] returns the
//!   error) while a kernel writer is in flight on the slot. Exact: while the view lives the
//!   lease is shared-borrowed, so every writer in flight is an op dropped or forgotten before.
//! - A [`LeaseSliceMut`] notes at creation whether the slot was busy (a kernel writer or
//!   reader in flight: necessarily an op dropped or forgotten before, since the view borrows
//!   the lease exclusively). If it was not, its bytes are never refused: the only kernel ops
//!   that can start afterwards are made from it or from the views split off it, which cover
//!   other bytes. If it was, its bytes are refused while the slot is still busy, and no op is
//!   ever submitted from it or from its splits (they resolve to the [`LeaseBusy`] error), so
//!   the counts it checks are all foreign.
//!
//! Invariant of [`LeaseSliceMut`]: once a view has been split, its halves reach the lease's
//! bytes only through raw pointers into their own range, never through the shared `&Lease`
//! they keep for its address, so two halves never alias.

use std::fmt;
use std::ops::{Bound, Deref, DerefMut, RangeBounds};

use ringleader_buf::{Lease, LeaseBusy, LeaseRef};

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
            busy: self.check_writable().err(),
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

    /// The bytes, or [`LeaseBusy`] while a kernel writer is in flight on the slot (an op
    /// on the lease dropped or forgotten before this view was made). `Deref` is this,
    /// panicking on the error.
    pub fn try_as_slice(&self) -> Result<&'a [u8], LeaseBusy> {
        self.lease.check_readable()?;
        // SAFETY: `start..end` lies within the lease's capacity (checked when the view was
        // made), all of which is initialised memory of the slot; no kernel writer is in
        // flight (just checked) and none can start while the lease is shared-borrowed for
        // `'a` (every op that writes into it borrows it exclusively).
        Ok(unsafe { std::slice::from_raw_parts(self.lease.as_ptr().add(self.start), self.len()) })
    }

    /// `Err` if an op reading these bytes must not start: a kernel writer is in flight.
    pub(crate) fn check(&self) -> Result<(), LeaseBusy> {
        self.lease.check_readable()
    }

    /// Address, length and fixed-buffer index of the bytes, for an SQE.
    pub(crate) fn raw(&self) -> (*const u8, usize, Option<u16>) {
        // `start <= capacity`, so the address stays inside the slot.
        let ptr = self.lease.as_ptr().wrapping_add(self.start);
        (ptr, self.len(), self.lease.buf_index())
    }

    /// A counted reference on the slot that marks a kernel reader, for the data of an op
    /// that reads these bytes.
    pub(crate) fn keep(&self) -> LeaseRef {
        self.lease.kernel_reader()
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
    /// # Panics
    /// While a kernel writer is in flight on the slot (see [`LeaseSlice::try_as_slice`]).
    #[track_caller]
    fn deref(&self) -> &[u8] {
        match self.try_as_slice() {
            Ok(b) => b,
            Err(busy) => panic!("{busy}"),
        }
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
    /// Whether the slot was busy when the root view was made (see the module docs).
    busy: Option<LeaseBusy>,
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
                busy: self.busy,
                lease: Exclusive::Part(lease),
                start: self.start,
                end: at,
            },
            LeaseSliceMut {
                busy: self.busy,
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

    /// The bytes, or [`LeaseBusy`] if the slot was busy when the view was made and a
    /// kernel writer is still in flight (see the module docs). `Deref` is this, panicking on
    /// the error.
    pub fn try_as_slice(&self) -> Result<&[u8], LeaseBusy> {
        if self.busy.is_some() {
            self.lease.lease().check_readable()?;
        }
        let (ptr, len, _) = self.raw();
        // SAFETY: `start..end` is inside the slot's initialised memory, and by the module
        // invariant no other view or borrow reaches these bytes while this one lives; no
        // kernel op writes them (module docs: a view made on a free slot meets only ops on
        // other bytes; one made on a busy slot was just checked, and never submits).
        Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
    }

    /// The bytes mutably, or [`LeaseBusy`] if the slot was busy when the view was made and
    /// a kernel writer or reader is still in flight. `DerefMut` is this, panicking on the
    /// error.
    pub fn try_as_mut_slice(&mut self) -> Result<&mut [u8], LeaseBusy> {
        if self.busy.is_some() {
            self.lease.lease().check_writable()?;
        }
        let (ptr, len, _) = self.raw();
        // SAFETY: as in `try_as_slice`, for writes: `&mut self` makes this the only access
        // to the range, and no kernel op reads or writes it.
        Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
    }

    /// `Err` if an op writing these bytes must not start: the slot was busy when the view
    /// was made (sticky, see the module docs).
    pub(crate) fn check(&self) -> Result<(), LeaseBusy> {
        self.busy.map_or(Ok(()), Err)
    }

    /// A counted reference on the slot that marks a kernel writer, for the data of an op
    /// that writes these bytes.
    pub(crate) fn keep(&self) -> LeaseRef {
        self.lease.lease().kernel_writer()
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
            busy: lease.check_writable().err(),
            lease: Exclusive::Whole(lease),
            start: 0,
            end,
        }
    }
}

impl Deref for LeaseSliceMut<'_> {
    type Target = [u8];
    /// # Panics
    /// See [`LeaseSliceMut::try_as_slice`].
    #[track_caller]
    fn deref(&self) -> &[u8] {
        match self.try_as_slice() {
            Ok(b) => b,
            Err(busy) => panic!("{busy}"),
        }
    }
}

impl DerefMut for LeaseSliceMut<'_> {
    /// # Panics
    /// See [`LeaseSliceMut::try_as_mut_slice`].
    #[track_caller]
    fn deref_mut(&mut self) -> &mut [u8] {
        match self.try_as_mut_slice() {
            Ok(b) => b,
            Err(busy) => panic!("{busy}"),
        }
    }
}

impl fmt::Debug for LeaseSliceMut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseSliceMut")
            .field("slot", &self.lease.lease().slot())
            .field("range", &(self.start..self.end))
            .field("busy", &self.busy.is_some())
            .finish()
    }
}
