//! The FUSE kernel ABI this server speaks: protocol 7.45 as Linux 6.18 defines it in
//! `include/uapi/linux/fuse.h`, written out by hand for the opcodes and structs the
//! passthrough uses (and the io_uring transport's entry structs).
//!
//! Every struct (`abi/structs.rs`) is `#[repr(C)]` plain data with the header's field order
//! and widths; `const` assertions pin each size, so a wrong field fails the build. Structs
//! move in and out of byte buffers only through [`Pod`]: [`read`] copies from a buffer of
//! any alignment (a short buffer is zero-extended, as the kernel does for older, shorter
//! versions of a struct) and [`Pod::as_bytes`] views one as its bytes.

#![allow(
    dead_code,
    reason = "the ABI is written out whole; not every constant is used"
)]

// A path attribute, so the tests that include this file with `#[path]` find it too.
#[path = "abi/structs.rs"]
mod structs;

pub use structs::*;

/// The protocol version this server answers INIT with.
pub const KERNEL_VERSION: u32 = 7;
pub const KERNEL_MINOR_VERSION: u32 = 45;
/// The root directory's node id.
pub const ROOT_ID: u64 = 1;
/// `FUSE_DEV_IOC_CLONE`: `_IOR(229, 0, uint32_t)`; binds a new /dev/fuse fd to the session
/// of the fd number passed in.
pub const DEV_IOC_CLONE: libc::c_ulong = 0x8004_e500;
/// The smallest read buffer /dev/fuse accepts (`FUSE_MIN_READ_BUFFER`).
pub const MIN_READ_BUFFER: usize = 8192;

/// Opcodes (`enum fuse_opcode`).
pub mod op {
    pub const LOOKUP: u32 = 1;
    pub const FORGET: u32 = 2;
    pub const GETATTR: u32 = 3;
    pub const SETATTR: u32 = 4;
    pub const READLINK: u32 = 5;
    pub const SYMLINK: u32 = 6;
    pub const MKNOD: u32 = 8;
    pub const MKDIR: u32 = 9;
    pub const UNLINK: u32 = 10;
    pub const RMDIR: u32 = 11;
    pub const RENAME: u32 = 12;
    pub const LINK: u32 = 13;
    pub const OPEN: u32 = 14;
    pub const READ: u32 = 15;
    pub const WRITE: u32 = 16;
    pub const STATFS: u32 = 17;
    pub const RELEASE: u32 = 18;
    pub const FSYNC: u32 = 20;
    pub const SETXATTR: u32 = 21;
    pub const GETXATTR: u32 = 22;
    pub const LISTXATTR: u32 = 23;
    pub const REMOVEXATTR: u32 = 24;
    pub const FLUSH: u32 = 25;
    pub const INIT: u32 = 26;
    pub const OPENDIR: u32 = 27;
    pub const READDIR: u32 = 28;
    pub const RELEASEDIR: u32 = 29;
    pub const FSYNCDIR: u32 = 30;
    pub const GETLK: u32 = 31;
    pub const SETLK: u32 = 32;
    pub const SETLKW: u32 = 33;
    pub const ACCESS: u32 = 34;
    pub const CREATE: u32 = 35;
    pub const INTERRUPT: u32 = 36;
    pub const BMAP: u32 = 37;
    pub const DESTROY: u32 = 38;
    pub const IOCTL: u32 = 39;
    pub const POLL: u32 = 40;
    pub const NOTIFY_REPLY: u32 = 41;
    pub const BATCH_FORGET: u32 = 42;
    pub const FALLOCATE: u32 = 43;
    pub const READDIRPLUS: u32 = 44;
    pub const RENAME2: u32 = 45;
    pub const LSEEK: u32 = 46;
    pub const COPY_FILE_RANGE: u32 = 47;
    pub const SETUPMAPPING: u32 = 48;
    pub const REMOVEMAPPING: u32 = 49;
    pub const SYNCFS: u32 = 50;
    pub const TMPFILE: u32 = 51;
    pub const STATX: u32 = 52;
    pub const COPY_FILE_RANGE_64: u32 = 53;
}

/// `fuse_init_in.flags`/`flags2` bits, as one 64-bit set (`flags2` is the high half and
/// counts only with [`init::INIT_EXT`]).
pub mod init {
    pub const ASYNC_READ: u64 = 1 << 0;
    pub const POSIX_LOCKS: u64 = 1 << 1;
    pub const ATOMIC_O_TRUNC: u64 = 1 << 3;
    pub const EXPORT_SUPPORT: u64 = 1 << 4;
    pub const BIG_WRITES: u64 = 1 << 5;
    pub const DONT_MASK: u64 = 1 << 6;
    pub const FLOCK_LOCKS: u64 = 1 << 10;
    pub const AUTO_INVAL_DATA: u64 = 1 << 12;
    pub const DO_READDIRPLUS: u64 = 1 << 13;
    pub const READDIRPLUS_AUTO: u64 = 1 << 14;
    pub const ASYNC_DIO: u64 = 1 << 15;
    pub const WRITEBACK_CACHE: u64 = 1 << 16;
    pub const PARALLEL_DIROPS: u64 = 1 << 18;
    pub const HANDLE_KILLPRIV: u64 = 1 << 19;
    pub const ABORT_ERROR: u64 = 1 << 21;
    pub const MAX_PAGES: u64 = 1 << 22;
    pub const CACHE_SYMLINKS: u64 = 1 << 23;
    pub const SETXATTR_EXT: u64 = 1 << 29;
    pub const INIT_EXT: u64 = 1 << 30;
    pub const PASSTHROUGH: u64 = 1 << 37;
    /// `FUSE_OVER_IO_URING`: requests may travel through io_uring commands (Linux 6.14+,
    /// offered only when the fuse module's `enable_uring` is on).
    pub const OVER_IO_URING: u64 = 1 << 41;
}

/// `fuse_setattr_in.valid` bits.
pub mod fattr {
    pub const MODE: u32 = 1 << 0;
    pub const UID: u32 = 1 << 1;
    pub const GID: u32 = 1 << 2;
    pub const SIZE: u32 = 1 << 3;
    pub const ATIME: u32 = 1 << 4;
    pub const MTIME: u32 = 1 << 5;
    pub const FH: u32 = 1 << 6;
    pub const ATIME_NOW: u32 = 1 << 7;
    pub const MTIME_NOW: u32 = 1 << 8;
    pub const LOCKOWNER: u32 = 1 << 9;
    pub const CTIME: u32 = 1 << 10;
    pub const KILL_SUIDGID: u32 = 1 << 11;
}

/// `fuse_open_out.open_flags` bits.
pub mod fopen {
    pub const DIRECT_IO: u32 = 1 << 0;
    pub const KEEP_CACHE: u32 = 1 << 1;
    pub const NONSEEKABLE: u32 = 1 << 2;
    pub const CACHE_DIR: u32 = 1 << 3;
    pub const PARALLEL_DIRECT_WRITES: u32 = 1 << 6;
}

/// `fuse_getattr_in.getattr_flags`: `fh` is valid.
pub const GETATTR_FH: u32 = 1 << 0;

/// Plain old data: any byte pattern is a valid value and the type has no padding bytes, so
/// it can be copied from and viewed as bytes.
///
/// # Safety
/// Implement only for `#[repr(C)]` structs of integer fields (or arrays of them) whose
/// layout has no implicit padding.
pub unsafe trait Pod: Copy + Default + 'static {
    /// The value's bytes.
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: `Self: Pod` has no padding, so all `size_of::<Self>()` bytes behind the
        // reference are initialised; the slice borrows `self`.
        unsafe {
            std::slice::from_raw_parts((self as *const Self).cast(), std::mem::size_of::<Self>())
        }
    }
}

/// A copy of the `T` at the start of `bytes`; a shorter buffer is zero-extended (the kernel
/// sends older, shorter forms of some structs).
pub fn read<T: Pod>(bytes: &[u8]) -> T {
    let mut v = T::default();
    let n = bytes.len().min(std::mem::size_of::<T>());
    // SAFETY: `v` is a live `T`, writable for `size_of::<T>()` >= `n` bytes; `bytes` is
    // readable for `n` bytes; they do not overlap (`v` is a local). Any bytes are a valid
    // `T` (`Pod`).
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), (&mut v as *mut T).cast(), n) };
    v
}

/// Size of the fixed first argument ("arg 0") of a request, which follows the
/// [`InHeader`] on /dev/fuse and sits in the entry's `op_in` area on io_uring; the rest of
/// the request (names, write data, xattr values) follows it. 0 for opcodes whose only
/// arguments are names, and for opcodes this server does not know.
pub fn arg0_len(opcode: u32) -> usize {
    use std::mem::size_of;
    match opcode {
        op::FORGET => size_of::<ForgetIn>(),
        op::GETATTR => size_of::<GetattrIn>(),
        op::SETATTR => size_of::<SetattrIn>(),
        op::MKNOD => size_of::<MknodIn>(),
        op::MKDIR => size_of::<MkdirIn>(),
        op::RENAME => size_of::<RenameIn>(),
        op::RENAME2 => size_of::<Rename2In>(),
        op::LINK => size_of::<LinkIn>(),
        op::OPEN | op::OPENDIR => size_of::<OpenIn>(),
        op::CREATE => size_of::<CreateIn>(),
        op::READ | op::READDIR | op::READDIRPLUS => size_of::<ReadIn>(),
        op::WRITE => size_of::<WriteIn>(),
        op::RELEASE | op::RELEASEDIR => size_of::<ReleaseIn>(),
        op::FLUSH => size_of::<FlushIn>(),
        op::FSYNC | op::FSYNCDIR => size_of::<FsyncIn>(),
        op::SETXATTR => size_of::<SetxattrIn>(),
        op::GETXATTR | op::LISTXATTR => size_of::<GetxattrIn>(),
        op::ACCESS => size_of::<AccessIn>(),
        op::INIT => size_of::<InitIn>(),
        op::INTERRUPT => size_of::<InterruptIn>(),
        op::BATCH_FORGET => size_of::<BatchForgetIn>(),
        op::FALLOCATE => size_of::<FallocateIn>(),
        op::LSEEK => size_of::<LseekIn>(),
        op::COPY_FILE_RANGE | op::COPY_FILE_RANGE_64 => size_of::<CopyFileRangeIn>(),
        _ => 0,
    }
}

/// Split one request as read from /dev/fuse into its header, arg 0 and the rest. `None` if
/// the buffer is shorter than a header or than the length the header claims.
pub fn split_request(buf: &[u8]) -> Option<(InHeader, &[u8], &[u8])> {
    if buf.len() < std::mem::size_of::<InHeader>() {
        return None;
    }
    let hdr: InHeader = read(buf);
    let len = hdr.len as usize;
    if len < std::mem::size_of::<InHeader>() || len > buf.len() {
        return None;
    }
    let body = &buf[std::mem::size_of::<InHeader>()..len];
    let (arg, rest) = body.split_at(arg0_len(hdr.opcode).min(body.len()));
    Some((hdr, arg, rest))
}
