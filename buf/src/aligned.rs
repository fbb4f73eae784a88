//! `AlignedBuf`: heap memory aligned for `O_DIRECT`, with the alignment the file asks for.
//!
//! `O_DIRECT` I/O must start at a memory address aligned to the file's `dio_mem_align` and
//! at a file offset (and length) aligned to its `dio_offset_align`; `statx(STATX_DIOALIGN)`
//! (Linux 6.1) reports both per file. [`dio_align`] reads them; [`AlignedBuf::for_file`]
//! allocates accordingly.
//!
//! Invariants: the allocation is `capacity` bytes aligned to `align`, zero-filled at
//! allocation (so every byte is initialised), owned until drop; `len <= capacity` bytes hold
//! data.

use std::alloc::{Layout, alloc_zeroed, dealloc, handle_alloc_error};
use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;

use crate::owned::{IoBuf, IoBufMut};
use crate::region::page_size;

/// The `O_DIRECT` alignment of a file (`statx` `dio_mem_align` / `dio_offset_align`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DioAlign {
    /// Alignment of the memory address of an `O_DIRECT` buffer.
    pub mem: usize,
    /// Alignment of file offsets and lengths of `O_DIRECT` I/O.
    pub offset: usize,
}

/// The file's `O_DIRECT` alignment: `Ok(None)` when the kernel or file system does not
/// report one (`STATX_DIOALIGN` unsupported) or the file does not support `O_DIRECT`.
pub fn dio_align(fd: BorrowedFd<'_>) -> io::Result<Option<DioAlign>> {
    // SAFETY: `statx` is plain data; zeroed is a valid value.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: an empty, NUL-terminated path with AT_EMPTY_PATH names `fd` itself; `stx` is
    // valid and writable for the call.
    let r = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_DIOALIGN,
            &mut stx,
        )
    };
    if r != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("ringleader: statx(STATX_DIOALIGN): {e}"),
        ));
    }
    if stx.stx_mask & libc::STATX_DIOALIGN == 0 || stx.stx_dio_mem_align == 0 {
        return Ok(None);
    }
    Ok(Some(DioAlign {
        mem: stx.stx_dio_mem_align as usize,
        offset: stx.stx_dio_offset_align as usize,
    }))
}

/// An owned, aligned, zero-initialised buffer (for `O_DIRECT`).
///
/// ```
/// use ringleader::buf::{AlignedBuf, IoBuf};
/// let mut b = AlignedBuf::new(8192, 4096);
/// assert_eq!(b.stable_ptr() as usize % 4096, 0);
/// b.extend_from_slice(b"abc");
/// assert_eq!(&b[..], b"abc");
/// ```
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    cap: usize,
    len: usize,
    align: usize,
}

impl AlignedBuf {
    /// `capacity` bytes aligned to `align` (a power of two), zero-filled, `len() == 0`.
    ///
    /// # Panics
    /// If `align` is not a power of two or the layout overflows; aborts if allocation fails.
    pub fn new(capacity: usize, align: usize) -> AlignedBuf {
        let layout = Layout::from_size_align(capacity.max(1), align)
            .expect("AlignedBuf: align must be a power of two and the size must not overflow");
        // SAFETY: the layout's size is non-zero.
        let p = unsafe { alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(p) else {
            handle_alloc_error(layout)
        };
        AlignedBuf {
            ptr,
            cap: capacity,
            len: 0,
            align,
        }
    }

    /// A buffer for `O_DIRECT` I/O on `fd`: aligned to the file's `dio_mem_align`, with the
    /// capacity rounded up to its `dio_offset_align`. Where the file reports no alignment,
    /// the page size is used for both, which every Linux file system accepts.
    pub fn for_file(fd: BorrowedFd<'_>, capacity: usize) -> io::Result<AlignedBuf> {
        let page = page_size();
        let a = dio_align(fd)?.unwrap_or(DioAlign {
            mem: page,
            offset: page,
        });
        let cap = capacity.next_multiple_of(a.offset.max(1));
        Ok(AlignedBuf::new(cap, a.mem.max(1)))
    }

    /// Bytes allocated.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Alignment of the start address.
    pub fn align(&self) -> usize {
        self.align
    }

    /// Bytes that hold data.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no byte holds data.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Set how many bytes hold data (every byte is initialised, so this is safe).
    ///
    /// # Panics
    /// If `n > capacity()`.
    pub fn set_len(&mut self, n: usize) {
        assert!(n <= self.cap, "set_len({n}) beyond capacity {}", self.cap);
        self.len = n;
    }

    /// Append `data`.
    ///
    /// # Panics
    /// If it does not fit the capacity.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        let end = self.len + data.len();
        assert!(
            end <= self.cap,
            "{end} bytes do not fit an AlignedBuf of {}",
            self.cap
        );
        let start = self.len;
        self.full_mut()[start..end].copy_from_slice(data);
        self.len = end;
    }

    fn full_mut(&mut self) -> &mut [u8] {
        // SAFETY: `cap` initialised (zero-filled) bytes owned by `self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.cap) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        let layout = Layout::from_size_align(self.cap.max(1), self.align).expect("checked in new");
        // SAFETY: allocated in `new` with this very layout.
        unsafe { dealloc(self.ptr.as_ptr(), layout) };
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `len <= cap` initialised bytes owned by `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut self.full_mut()[..len]
    }
}

impl fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .field("capacity", &self.cap)
            .field("align", &self.align)
            .finish()
    }
}

// SAFETY: the bytes are a heap allocation owned by the value: moving it does not move them;
// `len` bytes are initialised (all are).
unsafe impl IoBuf for AlignedBuf {
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

// SAFETY: as above; all `cap` bytes are writable.
unsafe impl IoBufMut for AlignedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    unsafe fn set_init(&mut self, n: usize) {
        if n > self.len {
            self.len = n.min(self.cap);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_zeroed() {
        for align in [512, 4096, 65536] {
            let mut b = AlignedBuf::new(3 * align, align);
            assert_eq!(b.stable_mut_ptr() as usize % align, 0);
            b.set_len(b.capacity());
            assert!(b.iter().all(|&x| x == 0));
        }
    }

    #[test]
    fn dio_align_of_a_regular_file_is_reported_or_none() {
        let f = std::fs::File::open("/proc/self/exe").unwrap();
        use std::os::fd::AsFd;
        if let Some(a) = dio_align(f.as_fd()).unwrap() {
            assert!(a.mem.is_power_of_two() && a.offset.is_power_of_two());
        }
    }
}
