//! The load generator's provided-buffer ring (`IORING_REGISTER_PBUF_RING`, Linux 5.19): the
//! buffers its multishot receives fill.
//!
//! Invariants: the descriptor memory and the buffers are two anonymous mappings that outlive
//! the registration (the owner drops its `IoUring`, which releases the group, before this);
//! a buffer is either published in the ring or held by the CQE being processed, and
//! [`PbufRing::recycle`] republishes it before the next `io_uring_enter`.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::IoUring;
use io_uring::types::BufRingEntry;

/// One anonymous, page-aligned, zero-filled mapping.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> io::Result<Mapping> {
        // SAFETY: an anonymous private mapping at an address the kernel picks; no existing
        // memory is touched.
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
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            ptr: NonNull::new(p.cast()).expect("mmap never maps address 0"),
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once; nothing references it any more
        // (see the module invariants).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// `entries` buffers of `buf_size` bytes registered as buffer group `bgid`.
pub struct PbufRing {
    descs: Mapping,
    bufs: Mapping,
    entries: u16,
    buf_size: usize,
    tail: u16,
    bgid: u16,
}

impl PbufRing {
    /// Map, fill and register the ring with `ring`. `entries` is a power of two.
    pub fn new(ring: &IoUring, entries: u16, buf_size: usize, bgid: u16) -> io::Result<Self> {
        assert!(entries.is_power_of_two() && entries <= 1 << 15);
        let descs = Mapping::new(usize::from(entries) * std::mem::size_of::<BufRingEntry>())?;
        let bufs = Mapping::new(usize::from(entries) * buf_size)?;
        let mut r = PbufRing {
            descs,
            bufs,
            entries,
            buf_size,
            tail: 0,
            bgid,
        };
        for bid in 0..entries {
            r.recycle(bid);
        }
        // SAFETY: `descs` holds `entries` descriptors and stays mapped until after the ring
        // that registered it is dropped (module invariants).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                r.descs.ptr.as_ptr() as u64,
                entries,
                bgid,
                0,
            )?
        };
        Ok(r)
    }

    /// The buffer group id for `RecvMulti`.
    pub fn bgid(&self) -> u16 {
        self.bgid
    }

    /// The first `len` bytes of buffer `bid`, which a CQE just handed over.
    pub fn data(&self, bid: u16, len: usize) -> &[u8] {
        assert!(bid < self.entries && len <= self.buf_size);
        // SAFETY: inside `bufs` (checked above); the kernel wrote these bytes before posting
        // the CQE and does not touch the buffer again until `recycle` republishes it.
        unsafe {
            std::slice::from_raw_parts(
                self.bufs.ptr.as_ptr().add(usize::from(bid) * self.buf_size),
                len,
            )
        }
    }

    /// Publish buffer `bid` at the tail: the kernel may fill it again.
    pub fn recycle(&mut self, bid: u16) {
        let base = self.descs.ptr.as_ptr().cast::<BufRingEntry>();
        let idx = usize::from(self.tail & (self.entries - 1));
        // SAFETY: `idx < entries`, inside `descs`. The slot is past the tail, which the kernel
        // never reads (at most `entries` buffers are published: each bid is published once
        // per round through the ring). Only `addr`, `len` and `bid` are written; the `resv`
        // field of entry 0 is the tail.
        unsafe {
            let d = &mut *base.add(idx);
            d.set_addr(self.bufs.ptr.as_ptr().add(usize::from(bid) * self.buf_size) as u64);
            d.set_len(self.buf_size as u32);
            d.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail is a naturally aligned u16 in the first descriptor, read by the
        // kernel with an acquire load and only ever accessed atomically here.
        let tail = unsafe { AtomicU16::from_ptr(BufRingEntry::tail(base).cast_mut()) };
        tail.store(self.tail, Ordering::Release);
    }
}
