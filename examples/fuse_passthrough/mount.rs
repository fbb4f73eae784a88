//! Mounting and unmounting: `mount(2)` of a `fuse` file system on a /dev/fuse fd (as root,
//! no fusermount), `FUSE_DEV_IOC_CLONE` for one fd per core, `umount2(2)`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::abi;

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn open_dev() -> io::Result<OwnedFd> {
    // Non-blocking: an io_uring read of an empty queue then returns EAGAIN and the ring
    // waits with a poll instead of parking an io-wq thread in the read.
    // SAFETY: a valid C string; the returned fd is checked before it is owned.
    let fd = unsafe {
        libc::open(
            c"/dev/fuse".as_ptr(),
            libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("opening /dev/fuse: {e}")));
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Mount `source`'s view at `mountpoint`; returns the session's /dev/fuse fd. The kernel
/// queues FUSE_INIT on it at once; mount(2) does not wait for the answer.
pub fn mount(source: &Path, mountpoint: &Path, readonly: bool) -> io::Result<OwnedFd> {
    let fuse = open_dev()?;
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // `default_permissions`: the kernel checks access against the attributes (which are
    // the backing files'), so the server needs no ACCESS policy of its own; `allow_other`:
    // every user sees the mount, as with the backing directory.
    let opts = format!(
        "fd={},rootmode=40000,user_id={uid},group_id={gid},default_permissions,allow_other",
        fuse.as_raw_fd()
    );
    let opts = CString::new(opts).expect("no NUL");
    let src = cstr(source)?;
    let target = cstr(mountpoint)?;
    let mut flags = libc::MS_NOSUID | libc::MS_NODEV;
    if readonly {
        flags |= libc::MS_RDONLY;
    }
    // SAFETY: valid C strings; the data argument is the NUL-terminated option string the
    // fuse file system parses.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            c"fuse.ringleader".as_ptr(),
            flags,
            opts.as_ptr().cast(),
        )
    };
    if r != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!(
                "mounting {} (fuse, as uid {uid}): {e}",
                mountpoint.display()
            ),
        ));
    }
    Ok(fuse)
}

/// A new /dev/fuse fd on the same session as `fuse` (its own processing queue; replies go
/// to the fd the request was read from).
pub fn clone_dev(fuse: &OwnedFd) -> io::Result<OwnedFd> {
    let new = open_dev()?;
    let mut session = fuse.as_raw_fd() as u32;
    // SAFETY: FUSE_DEV_IOC_CLONE reads one u32 (the session's fd number) from the pointer,
    // which is valid for the call.
    let r = unsafe { libc::ioctl(new.as_raw_fd(), abi::DEV_IOC_CLONE, &mut session) };
    if r != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("FUSE_DEV_IOC_CLONE: {e}")));
    }
    Ok(new)
}

/// `umount2(mountpoint, flags)`.
pub fn unmount(mountpoint: &Path, flags: i32) -> io::Result<()> {
    let target = cstr(mountpoint)?;
    // SAFETY: a valid C string.
    if unsafe { libc::umount2(target.as_ptr(), flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
