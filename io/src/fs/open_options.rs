//! `OpenOptions`: how to open a file, and the `IORING_OP_OPENAT` op (Linux 5.6).
//!
//! The op's data owns the path's `CString` until the final CQE (the kernel copies the path
//! when it issues the SQE, which may be after the future is dropped). An fd that arrives for an
//! open whose future was dropped is closed in [`Orphan::orphan_cqe`], so a cancelled open never
//! leaks an fd.

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use io_uring::{opcode, types};
use ringleader_executor::{Completable, Cqe, Op, Orphan};

use super::File;
use super::error::{c_path, path_errno};

/// Options and flags to open a file with, as [`std::fs::OpenOptions`].
///
/// `O_CLOEXEC` is always set. Flags such as `O_DIRECT`, `O_NOATIME` or `O_DSYNC` go through
/// [`custom_flags`](Self::custom_flags).
///
/// ```
/// use ringleader::fs::OpenOptions;
/// ringleader::block_on(async {
///     let path = std::env::temp_dir().join(format!("rl-doc-oo-{}", std::process::id()));
///     let f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).await?;
///     let (n, _) = f.write_at(b"abc".to_vec(), 0).await;
///     assert_eq!(n?, 3);
///     ringleader::fs::remove_file(&path).await
/// }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct OpenOptions {
    read: bool,
    write: bool,
    append: bool,
    truncate: bool,
    create: bool,
    create_new: bool,
    mode: u32,
    custom_flags: i32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl OpenOptions {
    /// All options off; mode `0o666` (before the umask).
    pub fn new() -> Self {
        OpenOptions {
            read: false,
            write: false,
            append: false,
            truncate: false,
            create: false,
            create_new: false,
            mode: 0o666,
            custom_flags: 0,
        }
    }

    /// Open for reading.
    pub fn read(&mut self, read: bool) -> &mut Self {
        self.read = read;
        self
    }

    /// Open for writing.
    pub fn write(&mut self, write: bool) -> &mut Self {
        self.write = write;
        self
    }

    /// Open for appending (`O_APPEND`, implies write). Linux ignores the offset of a
    /// positional write on such a file: every write appends.
    pub fn append(&mut self, append: bool) -> &mut Self {
        self.append = append;
        self
    }

    /// Truncate to length 0 (`O_TRUNC`; needs write).
    pub fn truncate(&mut self, truncate: bool) -> &mut Self {
        self.truncate = truncate;
        self
    }

    /// Create the file if missing (`O_CREAT`; needs write or append).
    pub fn create(&mut self, create: bool) -> &mut Self {
        self.create = create;
        self
    }

    /// Create the file, failing with `EEXIST` if it exists (`O_CREAT | O_EXCL`).
    pub fn create_new(&mut self, create_new: bool) -> &mut Self {
        self.create_new = create_new;
        self
    }

    /// Permission bits of a created file (before the umask).
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode;
        self
    }

    /// Extra `open(2)` flags ORed in (`libc::O_DIRECT`, ...). The access mode bits are
    /// ignored; use `read`/`write`.
    pub fn custom_flags(&mut self, flags: i32) -> &mut Self {
        self.custom_flags = flags;
        self
    }

    /// The `open(2)` flags these options stand for; `EINVAL` for a combination std rejects
    /// too (no access mode; create or truncate without write; append with truncate).
    pub(super) fn flags(&self) -> io::Result<i32> {
        let access = match (self.read, self.write, self.append) {
            (true, false, false) => libc::O_RDONLY,
            (false, true, false) => libc::O_WRONLY,
            (true, true, false) => libc::O_RDWR,
            (false, _, true) => libc::O_WRONLY | libc::O_APPEND,
            (true, _, true) => libc::O_RDWR | libc::O_APPEND,
            (false, false, false) => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
        };
        let writable = self.write || self.append;
        if !writable && (self.truncate || self.create || self.create_new) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        if self.append && self.truncate && !self.create_new {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let creation = match (self.create, self.truncate, self.create_new) {
            (false, false, false) => 0,
            (true, false, false) => libc::O_CREAT,
            (false, true, false) => libc::O_TRUNC,
            (true, true, false) => libc::O_CREAT | libc::O_TRUNC,
            (_, _, true) => libc::O_CREAT | libc::O_EXCL,
        };
        Ok(libc::O_CLOEXEC | access | creation | (self.custom_flags & !libc::O_ACCMODE))
    }

    /// The permission bits given to [`mode`](Self::mode).
    pub(super) fn mode_bits(&self) -> u32 {
        self.mode
    }

    /// Open `path` (relative paths from the current directory) with these options
    /// (`IORING_OP_OPENAT`, Linux 5.6).
    ///
    /// Errors name the path: `open "/x/y": No such file or directory (os error 2)`, with the
    /// errno's kind (`NotFound`) and the errno itself through [`super::raw_os_error`].
    pub async fn open(&self, path: impl AsRef<Path>) -> io::Result<File> {
        let path = path.as_ref();
        let cpath = c_path("open", path)?;
        let flags = match self.flags() {
            Ok(flags) => flags,
            Err(e) => return Err(super::error::path_error("open", &cpath, None, e)),
        };
        open_at(cpath, flags, self.mode).await
    }
}

/// Resources of an open: the path the kernel reads.
#[derive(Debug)]
pub struct OpenAt {
    path: CString,
}

impl Orphan for OpenAt {
    fn orphan_cqe(&mut self, cqe: &Cqe) {
        if cqe.result >= 0 {
            // SAFETY: a successful OPENAT result is a fresh fd that nothing else owns; its
            // op future is gone, so closing it here is the only release it gets.
            drop(unsafe { OwnedFd::from_raw_fd(cqe.result) });
        }
    }
}

impl Completable for OpenAt {
    type Output = io::Result<File>;
    fn complete(self, cqe: Cqe) -> io::Result<File> {
        if cqe.result < 0 {
            return Err(path_errno("open", &self.path, None, cqe.result));
        }
        // SAFETY: as in `orphan_cqe`: a fresh fd, owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(cqe.result) };
        Ok(File::from(fd))
    }
}

fn open_at(path: CString, flags: i32, mode: u32) -> Op<OpenAt> {
    let entry = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr())
        .flags(flags)
        .mode(mode)
        .build();
    // SAFETY: the path's bytes live on the heap in the `CString`, which is the op's data (its
    // buffer does not move with it) until the final CQE.
    unsafe { Op::submit(entry, OpenAt { path }) }
}
