//! Opening a path relative to a directory under `openat2(2)`'s resolution rules
//! (`IORING_OP_OPENAT2`, Linux 5.6): [`Resolve`], [`OpenOptions::open_at`] and
//! [`File::open_beneath`].
//!
//! `RESOLVE_BENEATH` makes the kernel refuse, atomically with the lookup, every path that
//! would leave the directory: an absolute path, a `..` above it, a symlink (at any component)
//! whose target lies outside it. Checking a path in userspace and then opening it races with
//! whoever can change the tree (a symlink swapped in between); this does not.
//!
//! Like `OPENAT`, the op's data owns the path's `CString` and the `open_how` until the final
//! CQE, and a fd that arrives for a dropped open is closed. It also holds the directory's fd:
//! the kernel resolves the SQE's dirfd number when it issues the SQE, which may be after
//! the caller dropped its `File`.

use std::ffi::CString;
use std::io;
use std::ops::BitOr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use io_uring::{opcode, types};
use ringleader_executor::{Completable, Cqe, Op, Orphan};

use super::error::{c_path, path_errno, path_error};
use super::{File, OpenOptions, SharedFd};

/// How [`OpenOptions::open_at`] resolves a path: the `RESOLVE_*` flags of `openat2(2)`,
/// combined with `|`.
///
/// ```
/// use ringleader::fs::Resolve;
/// let r = Resolve::BENEATH | Resolve::NO_MAGICLINKS;
/// assert!(r.contains(Resolve::BENEATH));
/// assert_eq!(r.bits(), libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Resolve(u64);

impl Resolve {
    /// No restriction: resolve as `openat(2)` does.
    pub const NONE: Resolve = Resolve(0);
    /// Refuse (`EXDEV`) any path that leaves the directory: absolute paths, `..` above it,
    /// symlinks pointing out of it.
    pub const BENEATH: Resolve = Resolve(libc::RESOLVE_BENEATH);
    /// Treat the directory as the root: `/` and `..` stop at it (a chroot for this lookup).
    pub const IN_ROOT: Resolve = Resolve(libc::RESOLVE_IN_ROOT);
    /// Refuse (`ELOOP`) "magic links" such as `/proc/self/fd/N` at any component.
    pub const NO_MAGICLINKS: Resolve = Resolve(libc::RESOLVE_NO_MAGICLINKS);
    /// Refuse (`ELOOP`) every symlink at any component.
    pub const NO_SYMLINKS: Resolve = Resolve(libc::RESOLVE_NO_SYMLINKS);
    /// Refuse (`EXDEV`) crossing a mount point.
    pub const NO_XDEV: Resolve = Resolve(libc::RESOLVE_NO_XDEV);

    /// The raw `RESOLVE_*` bits.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Resolve) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for Resolve {
    type Output = Resolve;
    fn bitor(self, rhs: Resolve) -> Resolve {
        Resolve(self.0 | rhs.0)
    }
}

impl OpenOptions {
    /// Open `path` relative to the directory `dir`, resolved under `resolve`
    /// (`IORING_OP_OPENAT2`, Linux 5.6).
    ///
    /// With [`Resolve::BENEATH`], a path that would leave `dir` fails with `EXDEV`
    /// (`ErrorKind::CrossesDevices`); with [`Resolve::NO_MAGICLINKS`] or
    /// [`Resolve::NO_SYMLINKS`], a refused link fails with `ELOOP`. Errors name the path as
    /// given (relative to `dir`), with the errno reachable through
    /// [`raw_os_error`](super::raw_os_error).
    ///
    /// ```
    /// use ringleader::fs::{File, OpenOptions, Resolve};
    /// ringleader::block_on(async {
    ///     let base = std::env::temp_dir().join(format!("rl-doc-at-{}", std::process::id()));
    ///     std::fs::create_dir_all(base.join("served"))?;
    ///     std::fs::write(base.join("served/ok.txt"), b"ok")?;
    ///     std::fs::write(base.join("secret.txt"), b"secret")?;
    ///     let dir = File::open(base.join("served")).await?;
    ///     let beneath = Resolve::BENEATH | Resolve::NO_MAGICLINKS;
    ///     let opts = OpenOptions::new().read(true).clone();
    ///     assert!(opts.open_at(&dir, "ok.txt", beneath).await.is_ok());
    ///     let err = opts.open_at(&dir, "../secret.txt", beneath).await.unwrap_err();
    ///     assert_eq!(ringleader::fs::raw_os_error(&err), Some(libc::EXDEV));
    ///     std::fs::remove_dir_all(&base)
    /// }).unwrap();
    /// ```
    pub async fn open_at(
        &self,
        dir: &File,
        path: impl AsRef<Path>,
        resolve: Resolve,
    ) -> io::Result<File> {
        let cpath = c_path("open", path.as_ref())?;
        let flags = match self.flags() {
            Ok(flags) => flags,
            Err(e) => return Err(path_error("open", &cpath, None, e)),
        };
        open_at2(dir.shared_fd(), cpath, flags, self.mode_bits(), resolve).await
    }
}

impl File {
    /// Open `path` for reading, refusing any path that resolves outside the directory
    /// `dir`: `..` above it, an absolute path, a symlink that points out (`EXDEV`), or a
    /// magic link such as `/proc/self/fd/N` (`ELOOP`). Symlinks that stay inside `dir` are
    /// followed. `OpenOptions::open_at` with `Resolve::BENEATH | Resolve::NO_MAGICLINKS`
    /// (`IORING_OP_OPENAT2`, Linux 5.6).
    pub async fn open_beneath(dir: &File, path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .open_at(dir, path, Resolve::BENEATH | Resolve::NO_MAGICLINKS)
            .await
    }
}

/// Resources of an `openat2`: the path and the `open_how` the kernel reads, and the
/// directory whose fd number the SQE names.
#[derive(Debug)]
pub struct OpenAt2 {
    path: CString,
    _how: Box<types::OpenHow>,
    _dir: SharedFd,
}

impl Orphan for OpenAt2 {
    fn orphan_cqe(&mut self, cqe: &Cqe) {
        if cqe.result >= 0 {
            // SAFETY: a successful OPENAT2 result is a fresh fd that nothing else owns; its
            // op future is gone, so closing it here is the only release it gets.
            drop(unsafe { OwnedFd::from_raw_fd(cqe.result) });
        }
    }
}

impl Completable for OpenAt2 {
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

fn open_at2(dir: SharedFd, path: CString, flags: i32, mode: u32, resolve: Resolve) -> Op<OpenAt2> {
    let how = Box::new(
        types::OpenHow::new()
            // `flags` holds only non-negative open(2) flag bits; openat2 takes them as u64.
            .flags(flags as u32 as u64)
            .mode(
                if flags & libc::O_CREAT != 0 || flags & libc::O_TMPFILE == libc::O_TMPFILE {
                    u64::from(mode)
                } else {
                    // openat2 refuses (EINVAL) a mode without O_CREAT or O_TMPFILE.
                    0
                },
            )
            .resolve(resolve.bits()),
    );
    let entry = opcode::OpenAt2::new(types::Fd(dir.as_raw_fd()), path.as_ptr(), &*how).build();
    let data = OpenAt2 {
        path,
        _how: how,
        _dir: dir,
    };
    // SAFETY: the path's bytes (in the `CString`'s heap buffer) and the boxed `open_how` do
    // not move when `data` does, and `data` is the op's until the final CQE; it also holds
    // the directory's fd, so the dirfd number the kernel resolves at issue still names it.
    unsafe { Op::submit(entry, data) }
}
