//! `IoBuf` / `IoBufMut`: buffers whose bytes do not move when the value moves.

use std::ops::RangeBounds;

use crate::slice::Slice;

/// The result of an op that owned a buffer: the buffer always comes back.
pub type BufResult<T, B> = (std::io::Result<T>, B);

/// A buffer the kernel may read from while an op owns it.
///
/// # Safety
/// `stable_ptr()` must point at `bytes_init()` initialised bytes that stay at the same address
/// while the value is moved (heap or static memory), until the value is dropped or mutated
/// through its own API.
pub unsafe trait IoBuf: 'static {
    /// Start of the bytes.
    fn stable_ptr(&self) -> *const u8;
    /// Initialised length (what a write sends).
    fn bytes_init(&self) -> usize;
    /// Total capacity.
    fn bytes_total(&self) -> usize;

    /// `range` of this buffer (within `0..bytes_total()`), owning the buffer: ops on the
    /// slice touch only that range, and [`Slice::into_inner`] gives the buffer back.
    ///
    /// ```
    /// use ringleader::buf::IoBuf;
    /// let s = b"hello world".to_vec().slice(6..);
    /// assert_eq!(&s[..], b"world");
    /// assert_eq!(s.into_inner().len(), 11);
    /// ```
    ///
    /// # Panics
    /// If the range is decreasing or ends beyond `bytes_total()`.
    fn slice(self, range: impl RangeBounds<usize>) -> Slice<Self>
    where
        Self: Sized,
    {
        Slice::new(self, range)
    }
}

/// A buffer the kernel may write into while an op owns it.
///
/// # Safety
/// As for [`IoBuf`], for `stable_mut_ptr()` and `bytes_total()` bytes; after
/// `set_init(n)` the first `n` bytes count as initialised.
pub unsafe trait IoBufMut: IoBuf {
    /// Start of the writable bytes.
    fn stable_mut_ptr(&mut self) -> *mut u8;
    /// Record that the kernel initialised the first `n` bytes.
    ///
    /// # Safety
    /// The first `n` bytes must really be initialised, and `n <= bytes_total()`.
    unsafe fn set_init(&mut self, n: usize);
}

// SAFETY: a Vec's heap buffer does not move when the Vec moves; `len` bytes are initialised.
unsafe impl IoBuf for Vec<u8> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: as above; the pointer covers `capacity()` writable bytes.
unsafe impl IoBufMut for Vec<u8> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, n: usize) {
        if n > self.len() {
            // SAFETY: the caller guarantees `n <= capacity` bytes are initialised.
            unsafe { self.set_len(n) };
        }
    }
}

// SAFETY: a boxed slice's bytes are on the heap and fully initialised.
unsafe impl IoBuf for Box<[u8]> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: as above; every byte is initialised and writable.
unsafe impl IoBufMut for Box<[u8]> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, _n: usize) {}
}

// SAFETY: static memory never moves or goes away.
unsafe impl IoBuf for &'static [u8] {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}
