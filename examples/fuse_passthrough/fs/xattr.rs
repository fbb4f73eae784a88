//! Extended attributes: SETXATTR, GETXATTR, LISTXATTR, REMOVEXATTR, on the inode through
//! its `/proc/self/fd` path (the `f*xattr` calls refuse `O_PATH` fds).

use super::{Errno, Fs, Reply, name, sys};
use crate::abi::{self, InHeader};

impl Fs {
    /// The procfs path of the node's inode. A symlink's would lead to its target, and no
    /// call takes an `O_PATH` fd, so a symlink has no xattrs here (`ENOTSUP`, as libfuse's
    /// passthrough answers); `cp -a` and `tar` take that as "none".
    fn xattr_path(&self, hdr: &InHeader) -> Result<std::ffi::CString, Errno> {
        let inode = self.inodes.get(hdr.nodeid)?;
        if inode.is_symlink() {
            return Err(libc::ENOTSUP);
        }
        Ok(sys::proc_path(&inode.fd))
    }

    pub(super) fn setxattr(&self, hdr: &InHeader, arg: &[u8], rest: &[u8]) -> Result<(), Errno> {
        self.check_writable()?;
        let s: abi::SetxattrIn = abi::read(arg);
        let (n, value) = name(rest)?;
        let value = value.get(..s.size as usize).ok_or(libc::EINVAL)?;
        let p = self.xattr_path(hdr)?;
        // SAFETY: valid C strings; `value` is readable for its length.
        sys::cvt(unsafe {
            libc::setxattr(
                p.as_ptr(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                s.flags as i32,
            )
        })?;
        Ok(())
    }

    /// The size-query-or-fetch protocol of GETXATTR and LISTXATTR: with `size` 0 the reply
    /// is the needed size; otherwise the bytes, or `ERANGE` if they do not fit.
    fn sized(
        size: u32,
        out: &mut Reply,
        call: impl Fn(*mut libc::c_void, usize) -> isize,
    ) -> Result<(), Errno> {
        if size == 0 {
            let n = sys::cvt(call(std::ptr::null_mut(), 0))?;
            out.push(&abi::GetxattrOut {
                size: n as u32,
                padding: 0,
            });
            return Ok(());
        }
        let buf = out.grow(size as usize);
        match sys::cvt(call(buf.as_mut_ptr().cast(), buf.len())) {
            Ok(n) => {
                out.truncate(n as usize);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    pub(super) fn getxattr(
        &self,
        hdr: &InHeader,
        arg: &[u8],
        rest: &[u8],
        out: &mut Reply,
    ) -> Result<(), Errno> {
        let g: abi::GetxattrIn = abi::read(arg);
        let (n, _) = name(rest)?;
        let p = self.xattr_path(hdr)?;
        Fs::sized(g.size, out, |buf, len| {
            // SAFETY: valid C strings; `buf` is null with `len` 0 or writable for `len`.
            unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf, len) }
        })
    }

    pub(super) fn listxattr(
        &self,
        hdr: &InHeader,
        arg: &[u8],
        out: &mut Reply,
    ) -> Result<(), Errno> {
        let g: abi::GetxattrIn = abi::read(arg);
        let p = self.xattr_path(hdr)?;
        Fs::sized(g.size, out, |buf, len| {
            // SAFETY: a valid C string; `buf` is null with `len` 0 or writable for `len`.
            unsafe { libc::listxattr(p.as_ptr(), buf.cast(), len) }
        })
    }

    pub(super) fn removexattr(&self, hdr: &InHeader, rest: &[u8]) -> Result<(), Errno> {
        self.check_writable()?;
        let (n, _) = name(rest)?;
        let p = self.xattr_path(hdr)?;
        // SAFETY: valid C strings.
        sys::cvt(unsafe { libc::removexattr(p.as_ptr(), n.as_ptr()) })?;
        Ok(())
    }
}
