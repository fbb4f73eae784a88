//! Requests on names and inodes: LOOKUP, GETATTR, SETATTR, READLINK, SYMLINK, MKNOD,
//! MKDIR, UNLINK, RMDIR, RENAME(2), LINK, STATFS, ACCESS.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, OwnedFd};

use super::{Errno, Fs, Reply, name, sys};
use crate::abi::{self, InHeader, fattr};

/// The FUSE attributes of a backing `stat`.
pub fn attr(st: &libc::stat) -> abi::Attr {
    abi::Attr {
        ino: st.st_ino,
        size: st.st_size as u64,
        blocks: st.st_blocks as u64,
        atime: st.st_atime as u64,
        mtime: st.st_mtime as u64,
        ctime: st.st_ctime as u64,
        atimensec: st.st_atime_nsec as u32,
        mtimensec: st.st_mtime_nsec as u32,
        ctimensec: st.st_ctime_nsec as u32,
        mode: st.st_mode,
        nlink: st.st_nlink as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev as u32,
        blksize: st.st_blksize as u32,
        flags: 0,
    }
}

impl Fs {
    /// Look `name` up in `parent` and count the lookup: the `fuse_entry_out` of LOOKUP,
    /// the create ops, LINK and READDIRPLUS.
    pub(super) fn lookup_entry(
        &self,
        parent: &OwnedFd,
        name: &CStr,
    ) -> Result<abi::EntryOut, Errno> {
        let fd = sys::openat(parent, name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
        let st = sys::stat_fd(fd.as_raw_fd())?;
        let id = self.inodes.add_lookup(fd, &st);
        Ok(self.entry_out(id, &st))
    }

    pub(super) fn entry_out(&self, id: u64, st: &libc::stat) -> abi::EntryOut {
        let t = self.opts.cache_timeout;
        abi::EntryOut {
            nodeid: id,
            generation: 0,
            entry_valid: t.as_secs(),
            attr_valid: t.as_secs(),
            entry_valid_nsec: t.subsec_nanos(),
            attr_valid_nsec: t.subsec_nanos(),
            attr: attr(st),
        }
    }

    fn attr_out(&self, st: &libc::stat, out: &mut Reply) {
        let t = self.opts.cache_timeout;
        out.push(&abi::AttrOut {
            attr_valid: t.as_secs(),
            attr_valid_nsec: t.subsec_nanos(),
            dummy: 0,
            attr: attr(st),
        });
    }

    pub(super) fn lookup(&self, hdr: &InHeader, rest: &[u8], out: &mut Reply) -> Result<(), Errno> {
        let (n, _) = name(rest)?;
        let parent = self.inodes.get(hdr.nodeid)?;
        out.push(&self.lookup_entry(&parent.fd, n)?);
        Ok(())
    }

    pub(super) fn getattr(&self, hdr: &InHeader, arg: &[u8], out: &mut Reply) -> Result<(), Errno> {
        let g: abi::GetattrIn = abi::read(arg);
        let st = match self.handles.file(g.fh) {
            Ok(f) if g.getattr_flags & abi::GETATTR_FH != 0 => sys::stat_fd(f.as_raw_fd())?,
            _ => sys::stat_fd(self.inodes.get(hdr.nodeid)?.fd.as_raw_fd())?,
        };
        self.attr_out(&st, out);
        Ok(())
    }

    pub(super) fn setattr(&self, hdr: &InHeader, arg: &[u8], out: &mut Reply) -> Result<(), Errno> {
        let s: abi::SetattrIn = abi::read(arg);
        let inode = self.inodes.get(hdr.nodeid)?;
        let changes = fattr::MODE
            | fattr::UID
            | fattr::GID
            | fattr::SIZE
            | fattr::ATIME
            | fattr::MTIME
            | fattr::ATIME_NOW
            | fattr::MTIME_NOW;
        if s.valid & changes != 0 {
            self.check_writable()?;
        }
        let handle = if s.valid & fattr::FH != 0 {
            self.handles.file(s.fh).ok()
        } else {
            None
        };
        let fd = inode.fd.as_raw_fd();
        if s.valid & fattr::MODE != 0 {
            if inode.is_symlink() {
                // Through procfs, chmod would follow the link and change its target; Linux
                // has no mode on a symlink to change.
                return Err(libc::EOPNOTSUPP);
            }
            let p = sys::proc_path(&inode.fd);
            // SAFETY: `p` is a valid C string naming the inode through procfs.
            sys::cvt(unsafe { libc::chmod(p.as_ptr(), s.mode & 0o7777) })?;
        }
        if s.valid & (fattr::UID | fattr::GID) != 0 {
            let uid = if s.valid & fattr::UID != 0 {
                s.uid
            } else {
                u32::MAX
            };
            let gid = if s.valid & fattr::GID != 0 {
                s.gid
            } else {
                u32::MAX
            };
            // SAFETY: `fd` is the inode's open O_PATH fd; the empty path is a C string.
            sys::cvt(unsafe {
                libc::fchownat(
                    fd,
                    c"".as_ptr(),
                    uid,
                    gid,
                    libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
                )
            })?;
        }
        if s.valid & fattr::SIZE != 0 {
            match &handle {
                // SAFETY: `h` is an open fd of this file.
                Some(h) => sys::cvt(unsafe { libc::ftruncate(h.as_raw_fd(), s.size as i64) })?,
                None => {
                    let p = sys::proc_path(&inode.fd);
                    // SAFETY: `p` is a valid C string.
                    sys::cvt(unsafe { libc::truncate(p.as_ptr(), s.size as i64) })?
                }
            };
        }
        if s.valid & (fattr::ATIME | fattr::MTIME | fattr::ATIME_NOW | fattr::MTIME_NOW) != 0 {
            let time = |set: u32, now: u32, sec: u64, nsec: u32| libc::timespec {
                tv_sec: sec as i64,
                tv_nsec: if s.valid & now != 0 {
                    libc::UTIME_NOW
                } else if s.valid & set != 0 {
                    i64::from(nsec)
                } else {
                    libc::UTIME_OMIT
                },
            };
            let times = [
                time(fattr::ATIME, fattr::ATIME_NOW, s.atime, s.atimensec),
                time(fattr::MTIME, fattr::MTIME_NOW, s.mtime, s.mtimensec),
            ];
            // SAFETY: `fd` is open; `times` is two valid timespecs; the path is "".
            sys::cvt(unsafe {
                libc::utimensat(
                    fd,
                    c"".as_ptr(),
                    times.as_ptr(),
                    libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
                )
            })?;
        }
        let st = sys::stat_fd(fd)?;
        self.attr_out(&st, out);
        Ok(())
    }

    pub(super) fn readlink(&self, hdr: &InHeader, out: &mut Reply) -> Result<(), Errno> {
        let inode = self.inodes.get(hdr.nodeid)?;
        let buf = out.grow(libc::PATH_MAX as usize);
        // SAFETY: `buf` is writable for its length; the fd is open; the path is "".
        let n = sys::cvt(unsafe {
            libc::readlinkat(
                inode.fd.as_raw_fd(),
                c"".as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        });
        match n {
            Ok(n) => {
                out.truncate(n as usize);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Give a new file to the caller when the server (root) made it for someone else.
    fn own(&self, hdr: &InHeader, parent: &OwnedFd, name: &CStr) -> Result<(), Errno> {
        if hdr.uid == 0 && hdr.gid == 0 {
            return Ok(());
        }
        let dir = sys::stat_fd(parent.as_raw_fd())?;
        // A set-group-ID directory gives its group to new files; keep it.
        let gid = if dir.st_mode & libc::S_ISGID != 0 {
            u32::MAX
        } else {
            hdr.gid
        };
        // SAFETY: `parent` is open and `name` a valid C string.
        sys::cvt(unsafe {
            libc::fchownat(
                parent.as_raw_fd(),
                name.as_ptr(),
                hdr.uid,
                gid,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })?;
        Ok(())
    }

    /// After a create op: set the owner and reply the new entry.
    fn created(
        &self,
        hdr: &InHeader,
        parent: &OwnedFd,
        name: &CStr,
        out: &mut Reply,
    ) -> Result<(), Errno> {
        self.own(hdr, parent, name)?;
        out.push(&self.lookup_entry(parent, name)?);
        Ok(())
    }

    pub(super) fn symlink(
        &self,
        hdr: &InHeader,
        rest: &[u8],
        out: &mut Reply,
    ) -> Result<(), Errno> {
        self.check_writable()?;
        let (n, rest) = name(rest)?;
        let (target, _) = name(rest)?;
        let parent = self.inodes.get(hdr.nodeid)?;
        // SAFETY: valid C strings and an open directory fd.
        sys::cvt(unsafe { libc::symlinkat(target.as_ptr(), parent.fd.as_raw_fd(), n.as_ptr()) })?;
        self.created(hdr, &parent.fd, n, out)
    }

    pub(super) fn mknod(
        &self,
        hdr: &InHeader,
        arg: &[u8],
        rest: &[u8],
        out: &mut Reply,
    ) -> Result<(), Errno> {
        self.check_writable()?;
        let m: abi::MknodIn = abi::read(arg);
        let (n, _) = name(rest)?;
        let parent = self.inodes.get(hdr.nodeid)?;
        // SAFETY: valid C string and an open directory fd.
        sys::cvt(unsafe {
            libc::mknodat(
                parent.fd.as_raw_fd(),
                n.as_ptr(),
                m.mode,
                libc::dev_t::from(m.rdev),
            )
        })?;
        self.created(hdr, &parent.fd, n, out)
    }

    pub(super) fn mkdir(
        &self,
        hdr: &InHeader,
        arg: &[u8],
        rest: &[u8],
        out: &mut Reply,
    ) -> Result<(), Errno> {
        self.check_writable()?;
        let m: abi::MkdirIn = abi::read(arg);
        let (n, _) = name(rest)?;
        let parent = self.inodes.get(hdr.nodeid)?;
        // SAFETY: valid C string and an open directory fd.
        sys::cvt(unsafe { libc::mkdirat(parent.fd.as_raw_fd(), n.as_ptr(), m.mode) })?;
        self.created(hdr, &parent.fd, n, out)
    }

    pub(super) fn unlink(&self, hdr: &InHeader, rest: &[u8], flags: i32) -> Result<(), Errno> {
        self.check_writable()?;
        let (n, _) = name(rest)?;
        let parent = self.inodes.get(hdr.nodeid)?;
        // SAFETY: valid C string and an open directory fd.
        sys::cvt(unsafe { libc::unlinkat(parent.fd.as_raw_fd(), n.as_ptr(), flags) })?;
        Ok(())
    }

    pub(super) fn rename(
        &self,
        hdr: &InHeader,
        newdir: u64,
        flags: u32,
        rest: &[u8],
    ) -> Result<(), Errno> {
        self.check_writable()?;
        let (old, rest) = name(rest)?;
        let (new, _) = name(rest)?;
        let from = self.inodes.get(hdr.nodeid)?;
        let to = self.inodes.get(newdir)?;
        // SAFETY: valid C strings and open directory fds.
        sys::cvt(unsafe {
            libc::renameat2(
                from.fd.as_raw_fd(),
                old.as_ptr(),
                to.fd.as_raw_fd(),
                new.as_ptr(),
                flags,
            )
        })?;
        Ok(())
    }

    pub(super) fn link(
        &self,
        hdr: &InHeader,
        arg: &[u8],
        rest: &[u8],
        out: &mut Reply,
    ) -> Result<(), Errno> {
        self.check_writable()?;
        let l: abi::LinkIn = abi::read(arg);
        let (n, _) = name(rest)?;
        let inode = self.inodes.get(l.oldnodeid)?;
        let parent = self.inodes.get(hdr.nodeid)?;
        // SAFETY: valid C strings and open fds. AT_EMPTY_PATH links the inode the O_PATH
        // fd holds (a symlink itself, not its target); it needs CAP_DAC_READ_SEARCH.
        let linked = sys::cvt(unsafe {
            libc::linkat(
                inode.fd.as_raw_fd(),
                c"".as_ptr(),
                parent.fd.as_raw_fd(),
                n.as_ptr(),
                libc::AT_EMPTY_PATH,
            )
        });
        match linked {
            Ok(_) => {}
            // Without the capability: through procfs, which reaches the same inode for
            // every file type but a symlink.
            Err(libc::ENOENT | libc::EPERM) if !inode.is_symlink() => {
                let p = sys::proc_path(&inode.fd);
                // SAFETY: valid C strings and an open directory fd.
                sys::cvt(unsafe {
                    libc::linkat(
                        libc::AT_FDCWD,
                        p.as_ptr(),
                        parent.fd.as_raw_fd(),
                        n.as_ptr(),
                        libc::AT_SYMLINK_FOLLOW,
                    )
                })?;
            }
            Err(e) => return Err(e),
        }
        out.push(&self.lookup_entry(&parent.fd, n)?);
        Ok(())
    }

    pub(super) fn statfs(&self, hdr: &InHeader, out: &mut Reply) -> Result<(), Errno> {
        let inode = self.inodes.get(hdr.nodeid)?;
        // SAFETY: zeroed is a valid `statvfs` (plain data).
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: the fd is open; `s` is writable.
        sys::cvt(unsafe { libc::fstatvfs(inode.fd.as_raw_fd(), &mut s) })?;
        out.push(&abi::Kstatfs {
            blocks: s.f_blocks,
            bfree: s.f_bfree,
            bavail: s.f_bavail,
            files: s.f_files,
            ffree: s.f_ffree,
            bsize: s.f_bsize as u32,
            namelen: s.f_namemax as u32,
            frsize: s.f_frsize as u32,
            ..Default::default()
        });
        Ok(())
    }

    pub(super) fn access(&self, hdr: &InHeader, arg: &[u8]) -> Result<(), Errno> {
        let a: abi::AccessIn = abi::read(arg);
        let inode = self.inodes.get(hdr.nodeid)?;
        if self.opts.readonly && a.mask & libc::W_OK as u32 != 0 {
            return Err(libc::EROFS);
        }
        let p = sys::proc_path(&inode.fd);
        // SAFETY: `p` is a valid C string.
        sys::cvt(unsafe { libc::faccessat(libc::AT_FDCWD, p.as_ptr(), a.mask as i32, 0) })?;
        Ok(())
    }
}
