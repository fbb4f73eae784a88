//! File metadata from `IORING_OP_STATX` (Linux 5.6; `STATX_DIOALIGN` fields Linux 6.1).
//!
//! The op's data owns a boxed `struct statx` that the kernel fills (its heap address does not
//! move with the data) and, for a path lookup, the path's `CString`; for an open file it owns a
//! reference to the fd and passes the empty path with `AT_EMPTY_PATH`.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use io_uring::{opcode, types};
use ringleader_executor::{Completable, Cqe, Op, Orphan};

use super::SharedFd;
use super::error::path_errno;

// The kernel's `struct statx` is 256 bytes; libc's mirror must not be smaller.
const _: () = assert!(std::mem::size_of::<libc::statx>() == 256);

/// What we ask `statx` for: the basic fields, birth time and the `O_DIRECT` alignments.
const MASK: u32 = libc::STATX_BASIC_STATS | libc::STATX_BTIME | libc::STATX_DIOALIGN;

/// Metadata of a file, from `statx(2)`.
#[derive(Clone)]
pub struct Metadata {
    stx: libc::statx,
}

impl Metadata {
    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.stx.stx_size
    }

    /// Whether the size is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn file_type(&self) -> u32 {
        u32::from(self.stx.stx_mode) & libc::S_IFMT
    }

    /// A regular file.
    pub fn is_file(&self) -> bool {
        self.file_type() == libc::S_IFREG
    }

    /// A directory.
    pub fn is_dir(&self) -> bool {
        self.file_type() == libc::S_IFDIR
    }

    /// A symbolic link (only seen by path lookups, which do not follow the last link).
    pub fn is_symlink(&self) -> bool {
        self.file_type() == libc::S_IFLNK
    }

    /// The full `st_mode` (file type and permission bits).
    pub fn mode(&self) -> u32 {
        u32::from(self.stx.stx_mode)
    }

    /// Permission bits (`mode() & 0o7777`) as std's type.
    pub fn permissions(&self) -> std::fs::Permissions {
        std::fs::Permissions::from_mode(self.mode() & 0o7777)
    }

    /// Last modification time.
    pub fn modified(&self) -> io::Result<SystemTime> {
        self.time(libc::STATX_MTIME, &self.stx.stx_mtime, "modification")
    }

    /// Last access time.
    pub fn accessed(&self) -> io::Result<SystemTime> {
        self.time(libc::STATX_ATIME, &self.stx.stx_atime, "access")
    }

    /// Creation (birth) time, where the file system records one.
    pub fn created(&self) -> io::Result<SystemTime> {
        self.time(libc::STATX_BTIME, &self.stx.stx_btime, "creation")
    }

    fn time(&self, bit: u32, ts: &libc::statx_timestamp, what: &str) -> io::Result<SystemTime> {
        if self.stx.stx_mask & bit == 0 {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("statx: the file system did not report a {what} time"),
            ));
        }
        let nanos = Duration::new(0, ts.tv_nsec);
        let t = if ts.tv_sec >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_secs(ts.tv_sec as u64) + nanos
        } else {
            SystemTime::UNIX_EPOCH - Duration::from_secs(ts.tv_sec.unsigned_abs()) + nanos
        };
        Ok(t)
    }

    /// The preferred I/O block size.
    pub fn blksize(&self) -> u64 {
        u64::from(self.stx.stx_blksize)
    }

    /// Allocated 512-byte blocks.
    pub fn blocks(&self) -> u64 {
        self.stx.stx_blocks
    }

    /// Inode number.
    pub fn ino(&self) -> u64 {
        self.stx.stx_ino
    }

    /// Number of hard links.
    pub fn nlink(&self) -> u64 {
        u64::from(self.stx.stx_nlink)
    }

    /// Owner's user id.
    pub fn uid(&self) -> u32 {
        self.stx.stx_uid
    }

    /// Owner's group id.
    pub fn gid(&self) -> u32 {
        self.stx.stx_gid
    }

    /// Required alignment of user memory for `O_DIRECT` I/O (Linux 6.1); `None` when the file
    /// does not support direct I/O or the kernel does not report it.
    pub fn dio_mem_align(&self) -> Option<u32> {
        self.dio(self.stx.stx_dio_mem_align)
    }

    /// Required alignment of file offsets and lengths for `O_DIRECT` I/O (Linux 6.1); `None`
    /// as for [`dio_mem_align`](Self::dio_mem_align).
    pub fn dio_offset_align(&self) -> Option<u32> {
        self.dio(self.stx.stx_dio_offset_align)
    }

    fn dio(&self, v: u32) -> Option<u32> {
        (self.stx.stx_mask & libc::STATX_DIOALIGN != 0 && v != 0).then_some(v)
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metadata")
            .field("len", &self.len())
            .field("mode", &format_args!("{:#o}", self.mode()))
            .field("ino", &self.ino())
            .field("blksize", &self.blksize())
            .field("dio_mem_align", &self.dio_mem_align())
            .field("dio_offset_align", &self.dio_offset_align())
            .finish_non_exhaustive()
    }
}

/// Resources of a statx op: the boxed result buffer, and the fd or the path it looks up.
pub struct Statx {
    buf: Box<MaybeUninit<libc::statx>>,
    target: Target,
}

enum Target {
    Fd(SharedFd),
    Path(CString),
}

impl fmt::Debug for Statx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Target::Fd(fd) => f.debug_struct("Statx").field("fd", fd).finish(),
            Target::Path(p) => f.debug_struct("Statx").field("path", p).finish(),
        }
    }
}

impl Orphan for Statx {}

impl Completable for Statx {
    type Output = io::Result<Metadata>;
    fn complete(self, cqe: Cqe) -> io::Result<Metadata> {
        if cqe.result < 0 {
            return Err(match &self.target {
                Target::Fd(_) => io::Error::from_raw_os_error(-cqe.result),
                Target::Path(p) => path_errno("statx", p, None, cqe.result),
            });
        }
        // SAFETY: the buffer started zeroed (a valid `statx`: integers and padding only) and
        // the kernel wrote the result into it.
        let stx = unsafe { self.buf.assume_init_read() };
        Ok(Metadata { stx })
    }
}

/// `statx` of an open file (`AT_EMPTY_PATH` on the fd).
pub(super) fn statx_fd(fd: &SharedFd) -> Op<Statx> {
    submit(libc::AT_EMPTY_PATH, Target::Fd(SharedFd::clone(fd)))
}

/// `statx` of a path (relative paths from the current directory), following symlinks
/// unless `follow` is false.
pub(super) fn statx_path(path: CString, follow: bool) -> Op<Statx> {
    let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
    submit(flags, Target::Path(path))
}

fn submit(flags: i32, target: Target) -> Op<Statx> {
    let mut buf = Box::new(MaybeUninit::<libc::statx>::zeroed());
    let (dirfd, path) = match &target {
        Target::Fd(fd) => (fd.as_raw_fd(), c"".as_ptr()),
        Target::Path(p) => (libc::AT_FDCWD, p.as_ptr()),
    };
    let entry = opcode::Statx::new(
        types::Fd(dirfd),
        path,
        buf.as_mut_ptr().cast::<types::statx>(),
    )
    .flags(flags)
    .mask(MASK)
    .build();
    // SAFETY: the statx buffer is boxed (stable address, 256 bytes as asserted above) and the
    // path is either a static empty string or a `CString` whose heap bytes do not move; both
    // are the op's data until the final CQE, as is the fd reference.
    unsafe { Op::submit(entry, Statx { buf, target }) }
}
