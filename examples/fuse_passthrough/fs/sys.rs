//! Thin wrappers over the libc calls the file system makes: errno as a positive
//! [`Errno`], owned fds, and `/proc/self/fd/N` paths for the calls that take no `O_PATH`
//! fd (open, xattrs, chmod, truncate).

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::Errno;

/// The calling thread's errno.
pub fn errno() -> Errno {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// `Ok(r)` for `r >= 0`, else the errno.
pub fn cvt<T: Copy + PartialOrd + Default>(r: T) -> Result<T, Errno> {
    if r < T::default() {
        Err(errno())
    } else {
        Ok(r)
    }
}

/// Take ownership of a freshly returned fd.
fn owned(fd: RawFd) -> Result<OwnedFd, Errno> {
    let fd = cvt(fd)?;
    // SAFETY: `fd` was just returned by a successful open-like call of this thread and is
    // owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `open(path, O_PATH | O_DIRECTORY)`: the source directory's root.
pub fn open_path_dir(path: &Path) -> std::io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: `c` is a valid NUL-terminated string for the call's duration.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    owned(fd).map_err(std::io::Error::from_raw_os_error)
}

/// `openat(dir, name, flags, mode)`.
pub fn openat(dir: &OwnedFd, name: &CStr, flags: i32, mode: u32) -> Result<OwnedFd, Errno> {
    // SAFETY: `dir` is an open fd, `name` a valid C string; the kernel only reads them.
    owned(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode,
        )
    })
}

/// `/proc/self/fd/N`: reopens or names the file an `O_PATH` fd refers to.
pub fn proc_path(fd: &OwnedFd) -> CString {
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL in a number")
}

/// Open the file behind an `O_PATH` fd for I/O with `flags`.
pub fn reopen(fd: &OwnedFd, flags: i32) -> Result<OwnedFd, Errno> {
    let p = proc_path(fd);
    // SAFETY: `p` is a valid C string; open only reads it.
    owned(unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC) })
}

/// `fstatat(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)`: the attributes of the file an
/// fd (`O_PATH` or not) refers to.
pub fn stat_fd(fd: RawFd) -> Result<libc::stat, Errno> {
    // SAFETY: zeroed is a valid `stat` (plain data); fstatat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open (the caller holds it), the empty path is a valid C string and
    // `st` is writable.
    cvt(unsafe {
        libc::fstatat(
            fd,
            c"".as_ptr(),
            &mut st,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(st)
}

/// `pread` into `buf`; returns the bytes read (short at EOF).
pub fn pread(fd: &OwnedFd, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: `rest` is writable for `rest.len()` bytes; `fd` is open.
        let n = unsafe {
            libc::pread(
                fd.as_raw_fd(),
                rest.as_mut_ptr().cast(),
                rest.len(),
                (offset + done as u64) as i64,
            )
        };
        match cvt(n) {
            Ok(0) => break,
            Ok(n) => done += n as usize,
            Err(libc::EINTR) => {}
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
}

/// `pwrite` of all of `buf` unless an error or a zero-length write stops it; returns the
/// bytes written.
pub fn pwrite(fd: &OwnedFd, buf: &[u8], offset: u64) -> Result<usize, Errno> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &buf[done..];
        // SAFETY: `rest` is readable for `rest.len()` bytes; `fd` is open.
        let n = unsafe {
            libc::pwrite(
                fd.as_raw_fd(),
                rest.as_ptr().cast(),
                rest.len(),
                (offset + done as u64) as i64,
            )
        };
        match cvt(n) {
            Ok(0) => break,
            Ok(n) => done += n as usize,
            Err(libc::EINTR) => {}
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
}
