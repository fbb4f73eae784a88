//! Leases: counted claims on kernel-visible memory.
//!
//! A [`Lease`] is the owned, exclusive view of one slot of a [`FixedPool`](crate::FixedPool)
//! or one buffer of a [`BufRing`](crate::BufRing). Ops take a lease by value and give it back
//! at their final CQE; an op that works on a lease it only borrows (a group member, a plain
//! op on a view, a `SEND_ZC` waiting for its notification) keeps a [`LeaseRef`] in its op
//! data instead.
//!
//! # The lease safety rule (reuse)
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
//!
//! # The lease access rule (reach)
//!
//! A borrow of a lease ends when the op future holding it is dropped or forgotten, but the
//! kernel's use of the bytes does not. So each slot also counts, at run time, the kernel
//! *writers* and *readers* in flight: a [`LeaseRef`] has an access kind ([`LeaseAccess`]),
//! and one made by [`Lease::kernel_writer`] or [`Lease::kernel_reader`] counts as a writer or
//! a reader until it is dropped. Ops keep these in their op data, so the counts follow the
//! op, not its future: released at the op's final CQE (`SEND_ZC`: its notification), held
//! until then by a dropped op, and never released by a forgotten one.
//!
//! Every safe access to the bytes checks the counts the way `RefCell` checks its borrows:
//!
//! | access | refused while |
//! |---|---|
//! | `&[u8]`: `Deref`, [`Lease::try_as_slice`], `IoBuf::stable_ptr` (and so a `Slice<Lease>`'s bytes) | a kernel writer is in flight |
//! | `&mut [u8]`: `DerefMut`, [`Lease::extend_from_slice`], [`Lease::spare_mut`], their `try_` forms, `IoBufMut::stable_mut_ptr` | a kernel writer or reader is in flight |
//!
//! A refused access panics with a message naming the slot, the counts and the likely cause
//! ([`LeaseBusy`]); the `try_` forms return that error instead. What does not touch the bytes
//! is never refused: `len`, `set_len`, `clear`, `capacity`, `as_ptr`, `buf_index`, and
//! dropping the lease (the slot then returns to its source when the last op is done).
//!
//! So a dropped op makes the lease busy until the kernel is done with it (ops that write into
//! a borrowed lease also wait for that when dropped, see `ringleader::group`), and a
//! forgotten op leaves it busy forever: access fails, it is never racy.
//!
//! # Invariants
//!
//! - a slot's `writers + readers <= refs`: every writer or reader is a `LeaseRef`;
//! - a `LeaseRef` caches a pointer to its slot's [`SlotCounts`], valid while the source
//!   lives, which its `Rc` guarantees; the counts live in a boxed slice the source never
//!   reallocates.

use std::cell::Cell;
use std::error::Error;
use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::rc::Rc;

use crate::owned::{IoBuf, IoBufMut};

/// The counts of one slot, kept by its source: the references that keep it from reuse, and
/// among them the kernel writers and readers in flight.
#[derive(Debug, Default)]
pub(crate) struct SlotCounts {
    refs: Cell<usize>,
    writers: Cell<usize>,
    readers: Cell<usize>,
}

/// A provider of leasable slots (a pool or a buffer ring).
pub(crate) trait Source {
    /// The counts of `slot`. They must stay at one address while the source lives (an
    /// element of a boxed slice the source owns).
    fn counts(&self, slot: u32) -> &SlotCounts;
    /// The reference count of `slot` reached zero: no op can reference its memory any more.
    fn recycle(&self, slot: u32);
}

/// What a [`LeaseRef`] tells the slot about the kernel's use of the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeaseAccess {
    /// Only keeps the slot from reuse ([`Lease::keep_alive`]).
    KeepAlive,
    /// A kernel op reads the bytes (write, send, `SEND_ZC` until its notification): while one
    /// is in flight, no `&mut` access ([`Lease::kernel_reader`]).
    KernelReader,
    /// A kernel op writes into the bytes (read, recv, a group's zero-fill): while one is in
    /// flight, no access at all ([`Lease::kernel_writer`]).
    KernelWriter,
}

/// A counted reference that keeps a lease's slot from being reused, and says whether a kernel
/// op reads or writes the bytes meanwhile ([`LeaseAccess`]).
///
/// It grants no access to the memory. Put one in the data of every op whose SQE points into
/// the lease, of the kind that matches what the op does with it (see
/// [`Lease::kernel_writer`], [`Lease::kernel_reader`]); the slot returns to its pool only
/// when the lease and every `LeaseRef` are gone, and safe access to the bytes is refused
/// while a writer (or, for `&mut`, a reader) lives.
pub struct LeaseRef {
    source: Rc<dyn Source>,
    /// The slot's counts in `source` (see the module invariants).
    counts: NonNull<SlotCounts>,
    slot: u32,
    access: LeaseAccess,
}

impl LeaseRef {
    /// The first reference to `slot`, which must be free (all its counts zero).
    pub(crate) fn claim(source: Rc<dyn Source>, slot: u32) -> LeaseRef {
        let c = source.counts(slot);
        assert_eq!(
            c.refs.get(),
            0,
            "slot {slot} handed out while still referenced"
        );
        debug_assert_eq!((c.writers.get(), c.readers.get()), (0, 0));
        c.refs.set(1);
        let counts = NonNull::from(c);
        LeaseRef {
            source,
            counts,
            slot,
            access: LeaseAccess::KeepAlive,
        }
    }

    fn counts(&self) -> &SlotCounts {
        // SAFETY: `counts` points at this slot's element of the source's boxed slice of
        // counts, which stays put and alive while the source lives (`Source::counts`'s
        // contract); `self.source` is an `Rc` that keeps the source alive at least as long as
        // this reference. The counts are `Cell`s, only touched on this thread (`!Send`).
        unsafe { self.counts.as_ref() }
    }

    fn access_count(&self, access: LeaseAccess) -> Option<&Cell<usize>> {
        match access {
            LeaseAccess::KeepAlive => None,
            LeaseAccess::KernelReader => Some(&self.counts().readers),
            LeaseAccess::KernelWriter => Some(&self.counts().writers),
        }
    }

    fn with_access(&self, access: LeaseAccess) -> LeaseRef {
        let c = self.counts();
        c.refs.set(c.refs.get() + 1);
        if let Some(n) = self.access_count(access) {
            n.set(n.get() + 1);
        }
        LeaseRef {
            source: Rc::clone(&self.source),
            counts: self.counts,
            slot: self.slot,
            access,
        }
    }

    /// Another reference to the slot that only keeps it from reuse.
    pub fn keep_alive(&self) -> LeaseRef {
        self.with_access(LeaseAccess::KeepAlive)
    }

    /// Another reference to the slot that counts as a kernel reader (see
    /// [`Lease::kernel_reader`]).
    pub fn kernel_reader(&self) -> LeaseRef {
        self.with_access(LeaseAccess::KernelReader)
    }

    /// Another reference to the slot that counts as a kernel writer (see
    /// [`Lease::kernel_writer`]).
    pub fn kernel_writer(&self) -> LeaseRef {
        self.with_access(LeaseAccess::KernelWriter)
    }

    /// What this reference counts as.
    pub fn access(&self) -> LeaseAccess {
        self.access
    }

    /// The slot's index in its source (for tests and diagnostics).
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// How many `Lease`/`LeaseRef` values name this slot, this one included.
    pub fn count(&self) -> usize {
        self.counts().refs.get()
    }

    /// Kernel writers in flight on the slot (`LeaseRef`s of kind
    /// [`LeaseAccess::KernelWriter`]).
    pub fn writers(&self) -> usize {
        self.counts().writers.get()
    }

    /// Kernel readers in flight on the slot (`LeaseRef`s of kind
    /// [`LeaseAccess::KernelReader`]).
    pub fn readers(&self) -> usize {
        self.counts().readers.get()
    }

    /// `Ok` if safe code may read the bytes now: no kernel writer in flight.
    fn check_read(&self) -> Result<(), LeaseBusy> {
        let c = self.counts();
        if c.writers.get() == 0 {
            Ok(())
        } else {
            Err(self.busy(false))
        }
    }

    /// `Ok` if safe code may write the bytes now: no kernel writer nor reader in flight.
    fn check_write(&self) -> Result<(), LeaseBusy> {
        let c = self.counts();
        if c.writers.get() == 0 && c.readers.get() == 0 {
            Ok(())
        } else {
            Err(self.busy(true))
        }
    }

    #[cold] // Only when a dropped or forgotten op still uses the slot.
    fn busy(&self, write: bool) -> LeaseBusy {
        LeaseBusy {
            slot: self.slot,
            writers: self.writers(),
            readers: self.readers(),
            write,
        }
    }
}

impl Clone for LeaseRef {
    /// Another reference of the same kind.
    fn clone(&self) -> Self {
        self.with_access(self.access)
    }
}

impl Drop for LeaseRef {
    fn drop(&mut self) {
        if let Some(n) = self.access_count(self.access) {
            n.set(n.get() - 1);
        }
        let c = &self.counts().refs;
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
            .field("access", &self.access)
            .field("count", &self.count())
            .field("writers", &self.writers())
            .field("readers", &self.readers())
            .finish()
    }
}

/// Access to a lease's bytes refused: kernel ops still read or write them (the lease access
/// rule, see the [crate docs](crate)).
///
/// This happens when an op on the lease was dropped or `mem::forget`-ed before the kernel
/// finished with it: a dropped op holds the slot's writer or reader count until its final CQE
/// (`SEND_ZC`: its notification), a forgotten one forever. Converts into an `io::Error` of
/// kind [`ResourceBusy`](io::ErrorKind::ResourceBusy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseBusy {
    slot: u32,
    writers: usize,
    readers: usize,
    write: bool,
}

impl LeaseBusy {
    /// The slot's index in its pool or ring.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// Kernel writers in flight when access was refused.
    pub fn writers(&self) -> usize {
        self.writers
    }

    /// Kernel readers in flight when access was refused.
    pub fn readers(&self) -> usize {
        self.readers
    }

    /// Whether the refused access was for writing (`&mut`), rather than reading.
    pub fn for_write(&self) -> bool {
        self.write
    }

    /// Panic with this error's message (at the caller's location).
    #[cold]
    #[track_caller]
    pub(crate) fn fail(self) -> ! {
        panic!("{self}")
    }
}

impl fmt::Display for LeaseBusy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ringleader: lease slot {} cannot be {} now: {} kernel writer(s) and {} kernel \
             reader(s) are in flight on it. Likely cause: an op on this lease was dropped or \
             forgotten (mem::forget) before the kernel finished with it; a dropped op releases \
             the lease at its final CQE (SEND_ZC: its notification), a forgotten one never",
            self.slot,
            if self.write { "written" } else { "read" },
            self.writers,
            self.readers
        )
    }
}

impl Error for LeaseBusy {}

impl From<LeaseBusy> for io::Error {
    fn from(busy: LeaseBusy) -> io::Error {
        io::Error::new(io::ErrorKind::ResourceBusy, busy)
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
///
/// Access to the bytes follows the lease access rule (see the [crate docs](crate)): reading
/// them panics while a kernel writer is in flight, writing them while a kernel writer or
/// reader is; the `try_` forms return [`LeaseBusy`] instead.
///
/// ```
/// use ringleader::buf::{FixedPool, LeaseAccess};
/// ringleader::block_on(async {
///     let pool = FixedPool::new(4096, 1).unwrap();
///     let mut lease = pool.lease(4096).await.unwrap();
///     lease.extend_from_slice(b"data");
///     let reader = lease.kernel_reader(); // what an op that sends the lease keeps
///     assert_eq!(reader.access(), LeaseAccess::KernelReader);
///     assert_eq!(lease.try_as_slice().unwrap(), b"data"); // reading is fine
///     let busy = lease.try_as_mut_slice().unwrap_err(); // writing is not
///     assert_eq!((busy.slot(), busy.writers(), busy.readers()), (0, 0, 1));
///     drop(reader); // the op's final CQE
///     lease.try_as_mut_slice().unwrap().fill(b'x');
/// });
/// ```
pub struct Lease {
    ptr: NonNull<u8>,
    cap: usize,
    len: usize,
    /// The slot's fixed-buffer index and the ring whose table has it.
    fixed: Option<(u16, u64)>,
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
        fixed: Option<(u16, u64)>,
    ) -> Lease {
        debug_assert!(len <= cap);
        Lease {
            ptr,
            cap,
            len,
            fixed,
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

    /// Set how many bytes hold data. Touches no byte, so it is allowed while kernel ops are
    /// in flight.
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

    /// Forget the data (`len` becomes 0). Touches no byte.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Append `data` after the first `len()` bytes.
    ///
    /// # Panics
    /// If the data does not fit the capacity, or while a kernel writer or reader is in flight
    /// (see [`Lease::try_extend_from_slice`]).
    #[track_caller]
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        if let Err(busy) = self.try_extend_from_slice(data) {
            busy.fail()
        }
    }

    /// [`Lease::extend_from_slice`], or [`LeaseBusy`] (nothing written) while a kernel
    /// writer or reader is in flight.
    ///
    /// # Panics
    /// If the data does not fit the capacity.
    #[track_caller]
    pub fn try_extend_from_slice(&mut self, data: &[u8]) -> Result<(), LeaseBusy> {
        self.check_writable()?;
        let end = self.len + data.len();
        assert!(
            end <= self.cap,
            "{end} bytes do not fit a lease of {}",
            self.cap
        );
        let start = self.len;
        self.try_full_mut()?[start..end].copy_from_slice(data);
        self.len = end;
        Ok(())
    }

    /// The bytes after the data, up to the capacity.
    ///
    /// # Panics
    /// While a kernel writer or reader is in flight (see [`Lease::try_spare_mut`]).
    #[track_caller]
    pub fn spare_mut(&mut self) -> &mut [u8] {
        match self.try_spare_mut() {
            Ok(b) => b,
            Err(busy) => busy.fail(),
        }
    }

    /// [`Lease::spare_mut`], or [`LeaseBusy`] while a kernel writer or reader is in flight.
    pub fn try_spare_mut(&mut self) -> Result<&mut [u8], LeaseBusy> {
        let len = self.len;
        Ok(&mut self.try_full_mut()?[len..])
    }

    /// The data (`..len()`), or [`LeaseBusy`] while a kernel writer is in flight. `Deref`
    /// is this, panicking on the error.
    pub fn try_as_slice(&self) -> Result<&[u8], LeaseBusy> {
        self.check_readable()?;
        // SAFETY: `len <= cap` initialised bytes of memory this lease owns (see `new`); no
        // kernel writer is in flight (just checked), and none can start while this shared
        // borrow lives: every op that writes into the lease borrows it exclusively.
        Ok(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) })
    }

    /// The data (`..len()`) mutably, or [`LeaseBusy`] while a kernel writer or reader is in
    /// flight. `DerefMut` is this, panicking on the error.
    pub fn try_as_mut_slice(&mut self) -> Result<&mut [u8], LeaseBusy> {
        let len = self.len;
        Ok(&mut self.try_full_mut()?[..len])
    }

    /// `Ok` if safe code may read the bytes now: no kernel writer is in flight on the slot.
    /// For views and wrappers that reach the bytes through [`Lease::as_ptr`].
    pub fn check_readable(&self) -> Result<(), LeaseBusy> {
        self.hold.check_read()
    }

    /// `Ok` if safe code may write the bytes now: no kernel writer nor reader is in flight
    /// on the slot.
    pub fn check_writable(&self) -> Result<(), LeaseBusy> {
        self.hold.check_write()
    }

    /// Kernel writers in flight on the slot: ops that write into the lease (a read, a recv,
    /// a group leader) and whose final CQE has not been reaped, dropped ones included;
    /// forgotten ones forever.
    pub fn writers(&self) -> usize {
        self.hold.writers()
    }

    /// Kernel readers in flight on the slot: ops that read the lease (a write, a send, a
    /// `SEND_ZC` until its notification), dropped ones included; forgotten ones forever.
    pub fn readers(&self) -> usize {
        self.hold.readers()
    }

    /// Index of the slot in the fixed-buffer table of the **current core's ring**, if it is
    /// registered there.
    ///
    /// `None` for memory that is not registered, and also when the lease is used on another
    /// ring than the one its pool registered with (a second runtime on the same thread): that
    /// ring's table entry at the same index is someone else's buffer. Ops then use the
    /// plain, unregistered form with the lease's address, which is correct on any ring.
    #[inline]
    pub fn buf_index(&self) -> Option<u16> {
        let (index, ring) = self.fixed?;
        (ringleader_executor::ring_id() == Some(ring)).then_some(index)
    }

    /// A counted reference that keeps this slot from reuse until it is dropped
    /// ([`LeaseAccess::KeepAlive`]).
    ///
    /// It guards *reuse* only: it does not stop anyone from touching the bytes. An op whose
    /// SQE reads or writes the lease keeps a [`kernel_reader`](Lease::kernel_reader) or
    /// [`kernel_writer`](Lease::kernel_writer) instead, which also keeps safe code from the
    /// bytes while the kernel may use them.
    pub fn keep_alive(&self) -> LeaseRef {
        self.hold.keep_alive()
    }

    /// A counted reference that keeps this slot from reuse and counts as a **kernel reader**
    /// until dropped: meanwhile `&mut` access to the bytes is refused (`&` is allowed). Keep
    /// it in the data of an op whose SQE reads the lease (write, send, `SEND_ZC`, which keeps
    /// it until its notification), so that dropping or forgetting the op's future does not
    /// let anyone change what the kernel sends.
    pub fn kernel_reader(&self) -> LeaseRef {
        self.hold.kernel_reader()
    }

    /// A counted reference that keeps this slot from reuse and counts as a **kernel writer**
    /// until dropped: meanwhile every access to the bytes is refused. Keep it in the data of
    /// an op whose SQE writes into the lease (read, recv, a zero-filling group leader), so
    /// that dropping or forgetting the op's future never lets safe code see bytes the
    /// kernel is still changing.
    ///
    /// It takes `&self` because disjoint views of one lease (`split_at_mut`) each start
    /// their own writer; the counts are per slot, so while any of them is in flight the
    /// lease itself refuses access.
    pub fn kernel_writer(&self) -> LeaseRef {
        self.hold.kernel_writer()
    }

    /// The slot's index in its pool or ring (a buffer ring's `bid`).
    pub fn slot(&self) -> u32 {
        self.hold.slot
    }

    /// Start of the memory. Touches no byte: never refused.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// Start of the memory, for an SQE that writes into it. Touches no byte: never refused;
    /// the op that writes must hold a [`kernel_writer`](Lease::kernel_writer).
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    fn try_full_mut(&mut self) -> Result<&mut [u8], LeaseBusy> {
        self.check_writable()?;
        // SAFETY: `new`'s contract: `cap` initialised bytes that only this lease uses; `&mut
        // self` excludes other access through it, and no kernel op reads or writes them (just
        // checked; none can start while this exclusive borrow lives).
        Ok(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.cap) })
    }
}

impl Deref for Lease {
    type Target = [u8];
    /// The data (`..len()`).
    ///
    /// # Panics
    /// While a kernel writer is in flight (see [`Lease::try_as_slice`]).
    #[track_caller]
    fn deref(&self) -> &[u8] {
        match self.try_as_slice() {
            Ok(b) => b,
            Err(busy) => busy.fail(),
        }
    }
}

impl DerefMut for Lease {
    /// The data (`..len()`), mutably.
    ///
    /// # Panics
    /// While a kernel writer or reader is in flight (see [`Lease::try_as_mut_slice`]).
    #[track_caller]
    fn deref_mut(&mut self) -> &mut [u8] {
        match self.try_as_mut_slice() {
            Ok(b) => b,
            Err(busy) => busy.fail(),
        }
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("slot", &self.hold.slot)
            .field("fixed", &self.fixed)
            .field("len", &self.len)
            .field("capacity", &self.cap)
            .field("writers", &self.writers())
            .field("readers", &self.readers())
            .finish()
    }
}

// SAFETY: the memory belongs to the source, which the lease keeps alive (an `Rc` in `hold`),
// so it does not move when the lease moves; `len` bytes are initialised (all are).
unsafe impl IoBuf for Lease {
    /// Start of the bytes, for an op that reads them or for a `Slice<Lease>`'s bytes.
    ///
    /// # Panics
    /// While a kernel writer of another (dropped or forgotten) op is in flight: the lease
    /// access rule, so that neither a `Slice<Lease>` nor an op that sends the lease sees bytes
    /// the kernel is changing.
    #[track_caller]
    fn stable_ptr(&self) -> *const u8 {
        if let Err(busy) = self.check_readable() {
            busy.fail()
        }
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
    /// Start of the writable bytes.
    ///
    /// # Panics
    /// While a kernel writer or reader of another (dropped or forgotten) op is in flight.
    #[track_caller]
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        if let Err(busy) = self.check_writable() {
            busy.fail()
        }
        self.ptr.as_ptr()
    }
    /// Sets `len` only: touches no byte.
    unsafe fn set_init(&mut self, n: usize) {
        if n > self.len {
            self.len = n.min(self.cap);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// A source of one 64-byte slot that records its recycles.
    struct Fake {
        counts: Box<[SlotCounts]>,
        recycled: RefCell<Vec<u32>>,
        mem: NonNull<[u8]>,
    }

    impl Source for Fake {
        fn counts(&self, slot: u32) -> &SlotCounts {
            &self.counts[slot as usize]
        }
        fn recycle(&self, slot: u32) {
            self.recycled.borrow_mut().push(slot);
        }
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            // SAFETY: `mem` came from `Box::into_raw` in `lease()` and is freed only here.
            drop(unsafe { Box::from_raw(self.mem.as_ptr()) });
        }
    }

    fn lease() -> (Rc<Fake>, Lease) {
        let mem = NonNull::from(Box::leak(vec![0u8; 64].into_boxed_slice()));
        let fake = Rc::new(Fake {
            counts: vec![SlotCounts::default()].into_boxed_slice(),
            recycled: RefCell::new(Vec::new()),
            mem,
        });
        let source: Rc<dyn Source> = Rc::clone(&fake) as Rc<dyn Source>;
        // SAFETY: 64 initialised bytes owned by `fake` (freed in its drop, after every lease,
        // which holds an `Rc` to it), used by nobody else.
        let lease = unsafe { Lease::new(source, 0, mem.cast(), 64, 0, None) };
        (fake, lease)
    }

    #[test]
    fn references_count_by_kind_and_recycle_after_the_last() {
        let (fake, mut lease) = lease();
        let keep = lease.keep_alive();
        let reader = lease.kernel_reader();
        let writer = keep.kernel_writer();
        assert_eq!(
            (reader.access(), writer.access(), keep.access()),
            (
                LeaseAccess::KernelReader,
                LeaseAccess::KernelWriter,
                LeaseAccess::KeepAlive
            )
        );
        let reader2 = reader.clone();
        assert_eq!(reader2.access(), LeaseAccess::KernelReader);
        assert_eq!((lease.writers(), lease.readers(), keep.count()), (1, 2, 5));
        drop(writer);
        assert_eq!((lease.writers(), lease.readers()), (0, 2));
        assert!(lease.try_as_slice().is_ok(), "readers allow reading");
        drop((reader, reader2));
        assert_eq!((lease.writers(), lease.readers(), keep.count()), (0, 0, 2));
        lease.extend_from_slice(b", and to write");
        drop(lease);
        assert!(
            fake.recycled.borrow().is_empty(),
            "`keep` still names the slot"
        );
        drop(keep);
        assert_eq!(*fake.recycled.borrow(), [0]);
    }

    #[test]
    fn a_reader_refuses_mut_access_only() {
        let (_fake, mut lease) = lease();
        lease.extend_from_slice(b"abc");
        let reader = lease.kernel_reader();
        assert_eq!(&lease[..], b"abc");
        assert_eq!(lease.try_as_slice().unwrap(), b"abc");
        let busy = lease.try_as_mut_slice().unwrap_err();
        assert_eq!((busy.slot(), busy.writers(), busy.readers()), (0, 0, 1));
        assert!(busy.for_write());
        assert!(lease.try_spare_mut().is_err());
        assert!(lease.try_extend_from_slice(b"d").is_err());
        assert_eq!(lease.len(), 3, "nothing written");
        let err = std::io::Error::from(busy);
        assert_eq!(err.kind(), io::ErrorKind::ResourceBusy);
        assert!(err.to_string().contains("1 kernel reader(s)"), "{err}");
        drop(reader);
        lease[0] = b'x';
        assert_eq!(&lease[..], b"xbc");
    }

    #[test]
    fn a_writer_refuses_every_access_to_the_bytes() {
        let (_fake, mut lease) = lease();
        let writer = lease.kernel_writer();
        let busy = lease.try_as_slice().unwrap_err();
        assert!(!busy.for_write());
        assert_eq!(busy.writers(), 1);
        assert!(lease.try_as_mut_slice().is_err());
        assert!(lease.check_readable().is_err() && lease.check_writable().is_err());
        // What touches no byte is fine.
        lease.set_len(8);
        lease.clear();
        assert_eq!(lease.capacity(), 64);
        drop(writer);
        assert!(lease.try_as_slice().is_ok() && lease.try_as_mut_slice().is_ok());
    }

    #[test]
    #[should_panic(expected = "lease slot 0 cannot be read now: 1 kernel writer(s)")]
    fn deref_under_a_writer_panics() {
        let (_fake, lease) = lease();
        let _writer = lease.kernel_writer();
        let _ = lease[..].len();
    }

    #[test]
    #[should_panic(expected = "lease slot 0 cannot be written now: 0 kernel writer(s) and 1")]
    fn slice_of_a_lease_under_a_reader_refuses_mut() {
        let (_fake, lease) = lease();
        let reader = lease.kernel_reader();
        let mut s = lease.slice(..);
        std::mem::forget(reader); // as a forgotten op would
        s[..].fill(1);
    }
}
