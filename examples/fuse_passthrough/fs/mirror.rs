//! `--mirror DIR`: every change a request makes to the source is made to each mirror too,
//! after the source's succeeded, at the same relative path.
//!
//! A node's relative path comes from the kernel (`/proc/self/fd/N` of the node's `O_PATH`
//! fd, or of an open file's fd, minus the source's own path), so renames made through the
//! mount are followed. A file unlinked while open has no path any more; its writes go to
//! the source only (its mirror copy was unlinked with it).
//!
//! Mirrored: WRITE, SETATTR size and mode, FALLOCATE, COPY_FILE_RANGE (the bytes copied
//! into the destination), CREATE, MKNOD, MKDIR, SYMLINK, LINK, UNLINK, RMDIR, RENAME and
//! RENAME2 (with its flags). Not mirrored: ownership, times, xattrs. A mirror's failure
//! fails the request with its errno (the source has changed already); later requests go on.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{Errno, Fs, Reply, name, sys};
use crate::abi::{self, InHeader, fattr, op};

/// The mirror directories and the source's own path.
#[derive(Debug)]
pub struct Mirrors {
    /// The source directory's path as `/proc/self/fd` shows it.
    source: PathBuf,
    dirs: Vec<OwnedFd>,
}

impl Mirrors {
    /// Open each mirror directory (it must exist and be a directory, and be neither the
    /// source nor inside it, nor contain it).
    pub fn new(source: &OwnedFd, mirrors: &[PathBuf]) -> std::io::Result<Mirrors> {
        let source = fd_path(source).ok_or_else(|| std::io::Error::other("source has no path"))?;
        let mut dirs = Vec::with_capacity(mirrors.len());
        for m in mirrors {
            let fd = sys::open_path_dir(m).map_err(|e| {
                std::io::Error::new(e.kind(), format!("opening --mirror {}: {e}", m.display()))
            })?;
            let p = fd_path(&fd).unwrap_or_default();
            if p.starts_with(&source) || source.starts_with(&p) {
                return Err(std::io::Error::other(format!(
                    "--mirror {} overlaps --source {}",
                    m.display(),
                    source.display()
                )));
            }
            dirs.push(fd);
        }
        Ok(Mirrors { source, dirs })
    }

    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    /// The path of `fd`'s file relative to the source (`.` for the source itself), or
    /// `None` if it has none (unlinked).
    fn rel(&self, fd: &OwnedFd) -> Option<CString> {
        let p = fd_path(fd)?;
        let r = p.strip_prefix(&self.source).ok()?;
        let r = if r.as_os_str().is_empty() {
            Path::new(".")
        } else {
            r
        };
        CString::new(r.as_os_str().as_bytes()).ok()
    }

    /// `dir_rel/name`.
    fn join(dir: &CStr, name: &CStr) -> CString {
        let mut v = dir.to_bytes().to_vec();
        v.push(b'/');
        v.extend_from_slice(name.to_bytes());
        CString::new(v).expect("no NUL in either part")
    }

    /// Run `f` on each mirror's directory fd; the first error.
    fn each(&self, mut f: impl FnMut(&OwnedFd) -> Result<(), Errno>) -> Result<(), Errno> {
        let mut first = Ok(());
        for d in &self.dirs {
            if let Err(e) = f(d)
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        first
    }

    /// Each mirror's copy of the file behind `fd`, opened for writing (none if the file
    /// has no path any more).
    pub fn open_for_write(&self, fd: &OwnedFd) -> Result<Vec<OwnedFd>, Errno> {
        let Some(rel) = self.rel(fd) else {
            return Ok(Vec::new());
        };
        self.dirs
            .iter()
            .map(|d| sys::openat(d, &rel, libc::O_WRONLY | libc::O_NOFOLLOW, 0))
            .collect()
    }
}

/// The path `/proc/self/fd/N` names, unless the file was unlinked.
fn fd_path(fd: &OwnedFd) -> Option<PathBuf> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
    if link.as_os_str().as_bytes().ends_with(b" (deleted)") {
        return None;
    }
    Some(link)
}

fn cvt(r: libc::c_int) -> Result<(), Errno> {
    sys::cvt(r).map(drop)
}

impl Fs {
    /// Make the change the successful request `hdr` made to the source in every mirror
    /// (`out` is its reply).
    pub(super) fn mirror(
        &self,
        hdr: &InHeader,
        arg: &[u8],
        rest: &[u8],
        out: &Reply,
    ) -> Result<(), Errno> {
        let m = &self.mirrors;
        if m.is_empty() {
            return Ok(());
        }
        let node_rel = || -> Result<CString, Errno> {
            let inode = self.inodes.get(hdr.nodeid)?;
            m.rel(&inode.fd).ok_or(libc::ENOENT)
        };
        match hdr.opcode {
            op::WRITE => {
                let w: abi::WriteIn = abi::read(arg);
                let n: abi::WriteOut = abi::read(out.payload());
                let fd = self.handles.file(w.fh)?;
                self.mirror_write(&fd, &rest[..n.size as usize], w.offset)
            }
            op::SETATTR => {
                let s: abi::SetattrIn = abi::read(arg);
                let rel = node_rel()?;
                m.each(|d| {
                    if s.valid & fattr::SIZE != 0 {
                        let f = sys::openat(d, &rel, libc::O_WRONLY | libc::O_NOFOLLOW, 0)?;
                        // SAFETY: `f` is open; ftruncate takes plain integers.
                        cvt(unsafe { libc::ftruncate(f.as_raw_fd(), s.size as i64) })?;
                    }
                    if s.valid & fattr::MODE != 0 {
                        // SAFETY: a valid C string; fchmodat reads it.
                        cvt(unsafe {
                            libc::fchmodat(d.as_raw_fd(), rel.as_ptr(), s.mode & 0o7777, 0)
                        })?;
                    }
                    Ok(())
                })
            }
            op::FALLOCATE => {
                let f: abi::FallocateIn = abi::read(arg);
                let fd = self.handles.file(f.fh)?;
                for c in m.open_for_write(&fd)? {
                    // SAFETY: `c` is open; fallocate takes plain integers.
                    cvt(unsafe {
                        libc::fallocate(
                            c.as_raw_fd(),
                            f.mode as i32,
                            f.offset as i64,
                            f.length as i64,
                        )
                    })?;
                }
                Ok(())
            }
            op::COPY_FILE_RANGE | op::COPY_FILE_RANGE_64 => {
                let c: abi::CopyFileRangeIn = abi::read(arg);
                let n = if hdr.opcode == op::COPY_FILE_RANGE_64 {
                    abi::read::<abi::CopyFileRangeOut>(out.payload()).bytes_copied as usize
                } else {
                    abi::read::<abi::WriteOut>(out.payload()).size as usize
                };
                let to = self.handles.file(c.fh_out)?;
                // The bytes now in the destination, read back from the source side.
                let reader = sys::reopen(&to, libc::O_RDONLY)?;
                let mut buf = vec![0; n];
                let got = sys::pread(&reader, &mut buf, c.off_out)?;
                self.mirror_write(&to, &buf[..got], c.off_out)
            }
            op::CREATE | op::MKNOD | op::MKDIR | op::SYMLINK => {
                let (new, rest2) = name(rest)?;
                let dir = node_rel()?;
                let path = Mirrors::join(&dir, new);
                let inode = self.inodes.get(hdr.nodeid)?;
                let st = stat_at(&inode.fd, new)?;
                let target = if hdr.opcode == op::SYMLINK {
                    Some(CStr::from_bytes_until_nul(rest2).map_err(|_| libc::EINVAL)?)
                } else {
                    None
                };
                let mode = st.st_mode & 0o7777;
                m.each(|d| {
                    let (dfd, p) = (d.as_raw_fd(), path.as_ptr());
                    match st.st_mode & libc::S_IFMT {
                        // SAFETY: a valid C string relative to `dfd`; a plain mode.
                        libc::S_IFDIR => cvt(unsafe { libc::mkdirat(dfd, p, mode) }),
                        libc::S_IFLNK => {
                            let t = target.unwrap_or(c"").as_ptr();
                            // SAFETY: valid C strings; symlinkat only reads them.
                            cvt(unsafe { libc::symlinkat(t, dfd, p) })
                        }
                        // SAFETY: a valid C string relative to `dfd`; plain integers.
                        kind => cvt(unsafe { libc::mknodat(dfd, p, kind | mode, st.st_rdev) }),
                    }?;
                    // Creation applied the umask-free mode; make it exact all the same.
                    if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
                        // SAFETY: a valid C string.
                        cvt(unsafe { libc::fchmodat(d.as_raw_fd(), path.as_ptr(), mode, 0) })?;
                    }
                    Ok(())
                })
            }
            op::LINK => {
                let l: abi::LinkIn = abi::read(arg);
                let (new, _) = name(rest)?;
                let old = self.inodes.get(l.oldnodeid)?;
                let old = m.rel(&old.fd).ok_or(libc::ENOENT)?;
                let path = Mirrors::join(&node_rel()?, new);
                m.each(|d| {
                    // SAFETY: valid C strings, both relative to `d`.
                    cvt(unsafe {
                        libc::linkat(d.as_raw_fd(), old.as_ptr(), d.as_raw_fd(), path.as_ptr(), 0)
                    })
                })
            }
            op::UNLINK | op::RMDIR => {
                let (old, _) = name(rest)?;
                let path = Mirrors::join(&node_rel()?, old);
                let flags = if hdr.opcode == op::RMDIR {
                    libc::AT_REMOVEDIR
                } else {
                    0
                };
                m.each(|d| {
                    // SAFETY: a valid C string relative to `d`.
                    cvt(unsafe { libc::unlinkat(d.as_raw_fd(), path.as_ptr(), flags) })
                })
            }
            op::RENAME | op::RENAME2 => {
                let (newdir, flags) = if hdr.opcode == op::RENAME2 {
                    let r: abi::Rename2In = abi::read(arg);
                    (r.newdir, r.flags)
                } else {
                    (abi::read::<abi::RenameIn>(arg).newdir, 0)
                };
                let (old, rest2) = name(rest)?;
                let (new, _) = name(rest2)?;
                let from = Mirrors::join(&node_rel()?, old);
                let newdir = self.inodes.get(newdir)?;
                let to = Mirrors::join(&m.rel(&newdir.fd).ok_or(libc::ENOENT)?, new);
                m.each(|d| {
                    // SAFETY: valid C strings relative to `d`; plain flags.
                    cvt(unsafe {
                        libc::renameat2(
                            d.as_raw_fd(),
                            from.as_ptr(),
                            d.as_raw_fd(),
                            to.as_ptr(),
                            flags,
                        )
                    })
                })
            }
            _ => Ok(()),
        }
    }

    /// Write `data` at `offset` to each mirror's copy of `fd`'s file.
    pub(super) fn mirror_write(&self, fd: &OwnedFd, data: &[u8], offset: u64) -> Result<(), Errno> {
        for c in self.mirrors.open_for_write(fd)? {
            let mut done = 0;
            while done < data.len() {
                match sys::pwrite(&c, &data[done..], offset + done as u64)? {
                    0 => return Err(libc::EIO),
                    n => done += n,
                }
            }
        }
        Ok(())
    }

    /// Each mirror's copy of `fd`'s file, opened for writing (for transports that write the
    /// mirrors themselves, as the io_uring one does with group members).
    pub fn mirror_fds(&self, fd: &OwnedFd) -> Result<Vec<OwnedFd>, Errno> {
        if self.mirrors.is_empty() {
            return Ok(Vec::new());
        }
        self.mirrors.open_for_write(fd)
    }
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`.
fn stat_at(dir: &OwnedFd, name: &CStr) -> Result<libc::stat, Errno> {
    // SAFETY: an all-zero `stat` is valid plain data; fstatat writes it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a writable stat.
    cvt(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(st)
}
