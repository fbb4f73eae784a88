//! `Slice<B>`: a range of an owned buffer that keeps the buffer's ownership.
//!
//! An op that takes a `Slice<B>` reads or writes only `begin..end` of `B` and gives the
//! slice back; [`Slice::into_inner`] recovers the whole buffer. Invariant:
//! `begin <= end <= buf.bytes_total()`, fixed at creation.

use std::fmt;
use std::ops::{Bound, Deref, DerefMut, RangeBounds};

use crate::owned::{IoBuf, IoBufMut};

/// `begin..end` of an owned buffer `B` (made by [`IoBuf::slice`]).
pub struct Slice<B> {
    buf: B,
    begin: usize,
    end: usize,
}

impl<B: IoBuf> Slice<B> {
    /// # Panics
    /// If the range is out of `0..=buf.bytes_total()` or decreasing.
    pub(crate) fn new(buf: B, range: impl RangeBounds<usize>) -> Slice<B> {
        let total = buf.bytes_total();
        let begin = match range.start_bound() {
            Bound::Included(&n) => n,
            Bound::Excluded(&n) => n.checked_add(1).expect("slice start overflows"),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&n) => n.checked_add(1).expect("slice end overflows"),
            Bound::Excluded(&n) => n,
            Bound::Unbounded => total,
        };
        assert!(begin <= end, "slice {begin}..{end} is decreasing");
        assert!(
            end <= total,
            "slice end {end} beyond the buffer's {total} bytes"
        );
        Slice { buf, begin, end }
    }

    /// Offset of the slice in the buffer.
    pub fn begin(&self) -> usize {
        self.begin
    }

    /// End offset (exclusive) of the slice in the buffer.
    pub fn end(&self) -> usize {
        self.end
    }

    /// The whole buffer.
    pub fn get_ref(&self) -> &B {
        &self.buf
    }

    /// The whole buffer, mutably. Its capacity must not shrink below `end()` while the
    /// slice is used for I/O (owned buffers here never shrink).
    pub fn get_mut(&mut self) -> &mut B {
        &mut self.buf
    }

    /// Give the whole buffer back.
    pub fn into_inner(self) -> B {
        self.buf
    }
}

impl<B: IoBuf> Deref for Slice<B> {
    type Target = [u8];
    /// The initialised part of the slice.
    fn deref(&self) -> &[u8] {
        let n = self.bytes_init();
        // SAFETY: `IoBuf`'s contract: the first `buf.bytes_init()` bytes are initialised and
        // `begin + n <= buf.bytes_init()`; the buffer is borrowed for the slice's lifetime.
        unsafe { std::slice::from_raw_parts(self.buf.stable_ptr().add(self.begin), n) }
    }
}

impl<B: IoBufMut> DerefMut for Slice<B> {
    fn deref_mut(&mut self) -> &mut [u8] {
        let n = self.bytes_init();
        let begin = self.begin;
        // SAFETY: as in `deref`; `&mut self` gives exclusive access to the buffer.
        unsafe { std::slice::from_raw_parts_mut(self.buf.stable_mut_ptr().add(begin), n) }
    }
}

impl<B: fmt::Debug> fmt::Debug for Slice<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slice")
            .field("buf", &self.buf)
            .field("begin", &self.begin)
            .field("end", &self.end)
            .finish()
    }
}

// SAFETY: the slice points into `B`'s stable memory, at `begin` (in bounds); its initialised
// bytes are those of `B` that fall in `begin..end`.
unsafe impl<B: IoBuf> IoBuf for Slice<B> {
    fn stable_ptr(&self) -> *const u8 {
        // SAFETY: `begin <= bytes_total()`: in bounds (or one past the end).
        unsafe { self.buf.stable_ptr().add(self.begin) }
    }
    fn bytes_init(&self) -> usize {
        self.buf.bytes_init().clamp(self.begin, self.end) - self.begin
    }
    fn bytes_total(&self) -> usize {
        self.end - self.begin
    }
}

// SAFETY: as above, for `end - begin` writable bytes of `B`.
unsafe impl<B: IoBufMut> IoBufMut for Slice<B> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        let begin = self.begin;
        // SAFETY: `begin <= bytes_total()`: in bounds (or one past the end).
        unsafe { self.buf.stable_mut_ptr().add(begin) }
    }
    unsafe fn set_init(&mut self, n: usize) {
        // `B` tracks one initialised prefix: extend it only when the slice continues it.
        // Bytes written past a gap stay uncounted rather than making the gap count too.
        if self.begin <= self.buf.bytes_init() {
            // SAFETY: `0..begin` is initialised (within `B`'s prefix), and the caller
            // guarantees the next `n <= end - begin` bytes are.
            unsafe { self.buf.set_init(self.begin + n) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_views_and_returns_the_buffer() {
        let v = b"hello world".to_vec();
        let s = v.slice(6..);
        assert_eq!(&s[..], b"world");
        assert_eq!((s.begin(), s.end(), s.bytes_total()), (6, 11, 5));
        let v = s.into_inner();
        assert_eq!(v, b"hello world");
    }

    #[test]
    fn set_init_extends_only_a_contiguous_prefix() {
        let mut v = Vec::with_capacity(16);
        v.extend_from_slice(b"ab");
        let mut s = v.slice(2..8);
        assert_eq!(s.bytes_init(), 0);
        // SAFETY: the test writes the 3 bytes before declaring them.
        unsafe {
            s.stable_mut_ptr()
                .copy_from_nonoverlapping(b"cde".as_ptr(), 3);
            s.set_init(3);
        }
        assert_eq!(&s[..], b"cde");
        assert_eq!(s.into_inner(), b"abcde");

        let mut v = Vec::with_capacity(16);
        v.push(1u8);
        let mut s = v.slice(4..8);
        // SAFETY: writes 2 bytes then declares them; bytes 1..4 are not initialised, so the
        // Vec's length must not grow.
        unsafe {
            s.stable_mut_ptr().write_bytes(7, 2);
            s.set_init(2);
        }
        assert_eq!(s.into_inner().len(), 1);
    }

    #[test]
    #[should_panic(expected = "beyond the buffer")]
    fn out_of_range_panics() {
        let _ = vec![0u8; 4].slice(..5);
    }
}
