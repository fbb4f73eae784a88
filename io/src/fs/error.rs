//! Errors that name the op and the path they failed on, without losing the errno.
//!
//! `std::io::Error` holds either a bare OS code or a custom payload, never both, so a message
//! naming the path cannot also answer `raw_os_error()` directly. Path ops therefore return
//! `io::Error::new(kind, PathError { .. })`:
//!
//! - `err.kind()` is the kind of the original errno (`NotFound` for `ENOENT`, ...);
//! - `err.to_string()` is `open "/some/path": No such file or directory (os error 2)`;
//! - `err.source()` is the original `io::Error` (`raw_os_error()` works on it), and
//!   [`raw_os_error`] finds the errno of either form in one call.
//!
//! Errors of ops on an open [`File`](super::File) (reads, writes, syncs) carry no path and stay
//! bare `from_raw_os_error` errors, so `raw_os_error()` works on them directly.

use std::error::Error;
use std::ffi::{CStr, OsStr};
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The payload of an error of a path op: which op, which path(s), and the OS error.
#[derive(Debug)]
pub struct PathError {
    op: &'static str,
    path: PathBuf,
    to: Option<PathBuf>,
    source: io::Error,
}

impl PathError {
    /// The op that failed (`"open"`, `"statx"`, `"unlink"`, `"rename"`, `"mkdir"`, ...).
    pub fn op(&self) -> &'static str {
        self.op
    }

    /// The path the op was given (for `rename`, the source path).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The second path of a two-path op (`rename`'s destination).
    pub fn to(&self) -> Option<&Path> {
        self.to.as_deref()
    }

    /// The errno the kernel returned, if the error came from the kernel.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.op, self.path)?;
        if let Some(to) = &self.to {
            write!(f, " to {to:?}")?;
        }
        write!(f, ": {}", self.source)
    }
}

impl Error for PathError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}

/// The errno of `err`, whether it is a bare OS error or a [`PathError`] wrapping one.
///
/// ```
/// ringleader::block_on(async {
///     let err = ringleader::fs::File::open("/no/such/file").await.unwrap_err();
///     assert_eq!(err.raw_os_error(), None); // the message names the path...
///     assert_eq!(ringleader::fs::raw_os_error(&err), Some(libc::ENOENT)); // ...errno kept
/// });
/// ```
pub fn raw_os_error(err: &io::Error) -> Option<i32> {
    err.raw_os_error()
        .or_else(|| err.get_ref()?.downcast_ref::<PathError>()?.raw_os_error())
}

/// Wrap `source` with the op and path(s) it failed on, keeping its kind.
#[cold] // Only on the error path of a path op.
pub(super) fn path_error(
    op: &'static str,
    path: &CStr,
    to: Option<&CStr>,
    source: io::Error,
) -> io::Error {
    let to_path = |c: &CStr| PathBuf::from(OsStr::from_bytes(c.to_bytes()));
    io::Error::new(
        source.kind(),
        PathError {
            op,
            path: to_path(path),
            to: to.map(to_path),
            source,
        },
    )
}

/// The `-res` errno of a CQE as an error naming the op and path(s).
#[cold] // As above.
pub(super) fn path_errno(op: &'static str, path: &CStr, to: Option<&CStr>, res: i32) -> io::Error {
    path_error(op, path, to, io::Error::from_raw_os_error(-res))
}

/// `path` as the NUL-terminated string the kernel reads; an interior NUL is `InvalidInput`
/// naming the op and path.
pub(super) fn c_path(op: &'static str, path: &Path) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{op} {path:?}: path contains an interior NUL byte"),
        )
    })
}
