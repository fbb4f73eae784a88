//! The image every server exports: 1 GiB of pseudo-random data, read once before the runs and
//! then held in the page cache for the whole bench (the bench measures servers, not the
//! disk): [`pin`] maps the file and `mlock`s the mapping.
//!
//! Why the lock: machines of this kind run DAMON with a `pageout` scheme
//! (`/sys/kernel/mm/damon/admin/kdamonds/0`), which evicts page-cache pages left unaccessed
//! for about a second. A 4 KiB random read over 1 GiB touches each page every few seconds,
//! so without the lock part of every run read from the disk, and the figures swung by 2x
//! between runs (seen 2026-12-08: 11 us of server CPU per 4 KiB read instead of 6, a
//! psync fio on the image itself at 18.6k IOPS with 50k context switches in 3 s).

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

/// Size of the image, bytes.
pub const SIZE: u64 = 1 << 30;

/// Write the image at `path` unless a file of the right size is there already.
pub fn make(path: &Path) -> Result<(), String> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == SIZE) {
        return Ok(());
    }
    eprintln!("nbd: writing a 1 GiB image at {}", path.display());
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut chunk = vec![0u8; 1 << 20];
    let mut f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for _ in 0..(SIZE >> 20) {
        for c in chunk.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&chunk)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    f.sync_all().map_err(|e| format!("{}: {e}", path.display()))
}

/// Read the whole image so it sits in the page cache.
pub fn warm(path: &Path) -> Result<(), String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    while f
        .read(&mut buf)
        .map_err(|e| format!("{}: {e}", path.display()))?
        > 0
    {}
    Ok(())
}

/// The image's pages, locked in memory while this lives.
#[derive(Debug)]
pub struct Pinned {
    addr: *mut libc::c_void,
    len: usize,
}

/// Map the image and lock the mapping, so that its page-cache pages stay resident (see the
/// module docs); `Err` names the step that failed (`mlock` of 1 GiB needs `CAP_IPC_LOCK` or
/// a large enough `RLIMIT_MEMLOCK`).
pub fn pin(path: &Path) -> Result<Pinned, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let len = SIZE as usize;
    // SAFETY: a fresh shared read-only mapping of an open file; nothing else refers to the
    // address range, which `Pinned` unmaps once.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(format!(
            "mmap {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    let pinned = Pinned { addr, len };
    // SAFETY: `addr..addr + len` is the mapping made above.
    if unsafe { libc::mlock(addr, len) } != 0 {
        return Err(format!(
            "mlock of {} ({} MiB): {}",
            path.display(),
            len >> 20,
            std::io::Error::last_os_error()
        ));
    }
    Ok(pinned)
}

impl Drop for Pinned {
    fn drop(&mut self) {
        // SAFETY: the mapping `pin` made, unmapped once, here (which also unlocks it).
        unsafe { libc::munmap(self.addr, self.len) };
    }
}
