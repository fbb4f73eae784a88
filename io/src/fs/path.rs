//! Operations on paths: unlink, rmdir, rename, mkdir and statx by name.
//!
//! Each op owns its path `CString`s until the final CQE, and every error names the op and the
//! path(s) (see [`PathError`](super::PathError)). Relative paths start at the current
//! directory (`AT_FDCWD`).

use std::ffi::CString;
use std::io;
use std::path::Path;

use io_uring::{opcode, types};
use ringleader_executor::{Completable, Cqe, Op, Orphan};

use super::Metadata;
use super::error::{c_path, path_errno};
use super::metadata::statx_path;

/// Resources of a path op: its path(s).
#[derive(Debug)]
pub struct PathOp {
    op: &'static str,
    path: CString,
    to: Option<CString>,
}

impl Orphan for PathOp {}

impl Completable for PathOp {
    type Output = io::Result<()>;
    fn complete(self, cqe: Cqe) -> io::Result<()> {
        if cqe.result < 0 {
            return Err(path_errno(
                self.op,
                &self.path,
                self.to.as_deref(),
                cqe.result,
            ));
        }
        Ok(())
    }
}

fn submit(entry: io_uring::squeue::Entry, data: PathOp) -> Op<PathOp> {
    // SAFETY: the SQE's path pointers were taken from the `CString`s in `data`, whose heap
    // bytes do not move when `data` does; `data` is kept until the final CQE.
    unsafe { Op::submit(entry, data) }
}

fn unlink(op: &'static str, path: &Path, flags: i32) -> io::Result<Op<PathOp>> {
    let path = c_path(op, path)?;
    let entry = opcode::UnlinkAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr())
        .flags(flags)
        .build();
    Ok(submit(entry, PathOp { op, path, to: None }))
}

/// Remove a file (`IORING_OP_UNLINKAT`, Linux 5.11).
pub async fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    unlink("unlink", path.as_ref(), 0)?.await
}

/// Remove an empty directory (`IORING_OP_UNLINKAT` with `AT_REMOVEDIR`, Linux 5.11).
pub async fn remove_dir(path: impl AsRef<Path>) -> io::Result<()> {
    unlink("rmdir", path.as_ref(), libc::AT_REMOVEDIR)?.await
}

/// Rename `from` to `to`, replacing `to` if it exists (`IORING_OP_RENAMEAT`, Linux 5.11).
pub async fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    let from = c_path("rename", from.as_ref())?;
    let to = c_path("rename", to.as_ref())?;
    let entry = opcode::RenameAt::new(
        types::Fd(libc::AT_FDCWD),
        from.as_ptr(),
        types::Fd(libc::AT_FDCWD),
        to.as_ptr(),
    )
    .build();
    let data = PathOp {
        op: "rename",
        path: from,
        to: Some(to),
    };
    submit(entry, data).await
}

/// Create a directory with mode `0o777` before the umask (`IORING_OP_MKDIRAT`, Linux 5.15).
pub async fn create_dir(path: impl AsRef<Path>) -> io::Result<()> {
    let path = c_path("mkdir", path.as_ref())?;
    let entry = opcode::MkDirAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr())
        .mode(0o777)
        .build();
    let data = PathOp {
        op: "mkdir",
        path,
        to: None,
    };
    submit(entry, data).await
}

/// Metadata of the file at `path`, following symlinks (`IORING_OP_STATX`, Linux 5.6).
pub async fn metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    statx_path(c_path("statx", path.as_ref())?, true).await
}

/// Metadata of `path` itself, not following a final symlink (`IORING_OP_STATX`, Linux 5.6).
pub async fn symlink_metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    statx_path(c_path("statx", path.as_ref())?, false).await
}
