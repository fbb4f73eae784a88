//! Anonymous, page-aligned memory from `mmap`: the backing store of pools and buffer rings.
//!
//! Invariants: a [`Region`] owns `len` bytes (a whole number of pages) at a fixed address until
//! it is dropped; every byte is initialised (the kernel zero-fills anonymous pages), so any
//! sub-range may be handed out as `&[u8]`/`&mut [u8]` by whoever owns that sub-range.
//!
//! Unmapping a region whose pages are still registered with a ring is memory-safe: the kernel
//! holds its own pin on registered pages, so they are not reused until it lets them go; the
//! owners of a region still unregister first, to give the locked-memory charge back early.

use std::io;
use std::ptr::NonNull;

/// A private anonymous mapping.
#[derive(Debug)]
pub(crate) struct Region {
    ptr: NonNull<u8>,
    len: usize,
}

impl Region {
    /// Map at least `len` bytes (rounded up to whole pages; at least one page), populated so
    /// that the first I/O does not fault pages in.
    pub(crate) fn new(len: usize) -> io::Result<Region> {
        let page = page_size();
        let len = len
            .max(1)
            .checked_next_multiple_of(page)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "region size overflows"))?;
        // SAFETY: a fresh private anonymous mapping aliases no existing memory; the arguments
        // are plain values.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("ringleader: mmap of {len} bytes for buffers failed: {e}"),
            ));
        }
        let ptr = NonNull::new(p.cast::<u8>()).expect("mmap returned NULL without MAP_FIXED");
        Ok(Region { ptr, len })
    }

    /// Start of the mapping (page-aligned).
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping made in `new`, unmapped only here; every
        // owner of a sub-range (a lease) holds the region's owner alive, so none is left.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The system page size.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as usize } else { 4096 }
}
