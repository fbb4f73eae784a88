//! Which ring a registration belongs to, and the raw `io_uring_register` calls made on drop.
//!
//! Registrations (fixed-buffer table entries, buffer rings) belong to one ring. They are made
//! through [`ringleader_executor::with_submitter`] while the ring's runtime runs, but undone
//! when the last lease goes, which may be after `block_on` returned, or while the driver itself
//! is being torn down. So the undo path talks to the ring by its raw fd, after checking that
//! the fd still names the same ring: [`RingId`] is the fd plus the ring file's inode, which is
//! unique per ring (each io_uring gets its own anonymous inode). If the ring is gone, the
//! kernel already dropped its registrations and there is nothing to undo.

use std::io;

/// `IORING_REGISTER_BUFFERS_UPDATE` (Linux 5.13).
pub(crate) const REGISTER_BUFFERS_UPDATE: u32 = 16;
/// `IORING_UNREGISTER_PBUF_RING` (Linux 5.19).
pub(crate) const UNREGISTER_PBUF_RING: u32 = 23;

/// `struct io_uring_rsrc_update2`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct RsrcUpdate2 {
    pub(crate) offset: u32,
    pub(crate) resv: u32,
    pub(crate) data: u64,
    pub(crate) tags: u64,
    pub(crate) nr: u32,
    pub(crate) resv2: u32,
}
const _: () = assert!(std::mem::size_of::<RsrcUpdate2>() == 32);

/// `struct io_uring_buf_reg`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct BufReg {
    pub(crate) ring_addr: u64,
    pub(crate) ring_entries: u32,
    pub(crate) bgid: u16,
    pub(crate) flags: u16,
    pub(crate) resv: [u64; 3],
}
const _: () = assert!(std::mem::size_of::<BufReg>() == 40);

/// The identity of one io_uring instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RingId {
    fd: i32,
    dev: u64,
    ino: u64,
}

impl RingId {
    /// The ring of the current core.
    ///
    /// # Panics
    /// Outside a ringleader runtime.
    pub(crate) fn current() -> io::Result<RingId> {
        let fd = ringleader_executor::ring_fd();
        let (dev, ino) = file_id(fd)?;
        Ok(RingId { fd, dev, ino })
    }

    /// Whether the fd still names this ring.
    pub(crate) fn is_alive(&self) -> bool {
        file_id(self.fd).is_ok_and(|id| id == (self.dev, self.ino))
    }

    /// `io_uring_register(fd, opcode, arg, nr)` on this ring, if it still exists: `Some`
    /// with the kernel's non-negative result, or `None` when the ring is gone (its
    /// registrations went with it).
    ///
    /// # Safety
    /// `arg` must be what `opcode` expects, valid for the kernel's reads for the call.
    pub(crate) unsafe fn register_if_alive(
        &self,
        opcode: u32,
        arg: *const libc::c_void,
        nr: u32,
    ) -> io::Result<Option<usize>> {
        if !self.is_alive() {
            return Ok(None);
        }
        // SAFETY: the caller vouches for `arg`; the fd was just checked to be this ring.
        let r = unsafe { libc::syscall(libc::SYS_io_uring_register, self.fd, opcode, arg, nr) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(Some(r as usize))
        }
    }
}

fn file_id(fd: i32) -> io::Result<(u64, u64)> {
    // SAFETY: `stat` is plain data; zeroed is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable `stat` for the duration of the call.
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((st.st_dev, st.st_ino))
}
