//! Open files: the handle table and OPEN, CREATE, READ, WRITE, FLUSH, FSYNC, RELEASE,
//! FALLOCATE, LSEEK, COPY_FILE_RANGE, plus the READ/WRITE steps transports call to do the
//! data I/O themselves.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{DataIo, Errno, Fs, Reply, name, sys};
use crate::abi::{self, InHeader};

/// Open file and directory handles (`fh`). A handle is one backing fd, opened at OPEN,
/// CREATE or OPENDIR and closed at RELEASE(DIR) or when the last request using it ends.
#[derive(Debug)]
pub struct Handles {
    files: Mutex<HashMap<u64, Arc<OwnedFd>>>,
    /// A directory handle's fd carries a position (`getdents64`), hence its own lock.
    dirs: Mutex<HashMap<u64, Arc<Mutex<OwnedFd>>>>,
    next: AtomicU64,
}

impl Default for Handles {
    fn default() -> Handles {
        Handles {
            files: Mutex::default(),
            dirs: Mutex::default(),
            next: AtomicU64::new(1),
        }
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update under these locks is one insert or remove: a poisoned lock is consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Handles {
    pub fn file(&self, fh: u64) -> Result<Arc<OwnedFd>, Errno> {
        lock(&self.files).get(&fh).cloned().ok_or(libc::EBADF)
    }

    pub fn dir(&self, fh: u64) -> Result<Arc<Mutex<OwnedFd>>, Errno> {
        lock(&self.dirs).get(&fh).cloned().ok_or(libc::EBADF)
    }

    fn add_file(&self, fd: OwnedFd) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.files).insert(fh, Arc::new(fd));
        fh
    }

    pub fn add_dir(&self, fd: OwnedFd) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.dirs).insert(fh, Arc::new(Mutex::new(fd)));
        fh
    }

    fn remove_file(&self, fh: u64) -> Option<Arc<OwnedFd>> {
        lock(&self.files).remove(&fh)
    }

    pub fn remove_dir(&self, fh: u64) -> Option<Arc<Mutex<OwnedFd>>> {
        lock(&self.dirs).remove(&fh)
    }
}

/// The flags a client's open becomes on the backing file: no `O_CREAT`/`O_EXCL` (the
/// file exists), no `O_NOFOLLOW` (procfs reopens go through a link), no `O_DIRECT` (the
/// server's I/O alignment is not the client's), no controlling terminal.
fn backing_flags(flags: u32) -> i32 {
    (flags as i32)
        & !(libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY | libc::O_NOFOLLOW | libc::O_DIRECT)
}

impl Fs {
    fn check_open_flags(&self, flags: u32) -> Result<(), Errno> {
        let acc = flags as i32 & libc::O_ACCMODE;
        if acc != libc::O_RDONLY || flags as i32 & libc::O_TRUNC != 0 {
            self.check_writable()?;
        }
        Ok(())
    }

    pub(super) fn open(&self, hdr: &InHeader, arg: &[u8], out: &mut Reply) -> Result<(), Errno> {
        let o: abi::OpenIn = abi::read(arg);
        self.check_open_flags(o.flags)?;
        let inode = self.inodes.get(hdr.nodeid)?;
        let fd = sys::reopen(&inode.fd, backing_flags(o.flags))?;
        out.push(&abi::OpenOut {
            fh: self.handles.add_file(fd),
            open_flags: 0,
            backing_id: 0,
        });
        Ok(())
    }

    pub(super) fn create(
        &self,
        hdr: &InHeader,
        arg: &[u8],
        rest: &[u8],
        out: &mut Reply,
    ) -> Result<(), Errno> {
        self.check_writable()?;
        let c: abi::CreateIn = abi::read(arg);
        let (n, _) = name(rest)?;
        let parent = self.inodes.get(hdr.nodeid)?;
        let flags = backing_flags(c.flags) | libc::O_CREAT | (c.flags as i32 & libc::O_EXCL);
        let fd = sys::openat(&parent.fd, n, flags, c.mode)?;
        let entry = (|| {
            if hdr.uid != 0 || hdr.gid != 0 {
                let dir = sys::stat_fd(parent.fd.as_raw_fd())?;
                let gid = if dir.st_mode & libc::S_ISGID != 0 {
                    u32::MAX
                } else {
                    hdr.gid
                };
                // SAFETY: `fd` is the open new file.
                sys::cvt(unsafe { libc::fchown(fd.as_raw_fd(), hdr.uid, gid) })?;
            }
            self.lookup_entry(&parent.fd, n)
        })()?;
        out.push(&entry);
        out.push(&abi::OpenOut {
            fh: self.handles.add_file(fd),
            open_flags: 0,
            backing_id: 0,
        });
        Ok(())
    }

    /// READ, step 1: the backing fd and range of a READ request (`arg0` is its
    /// `fuse_read_in`). The transport then reads up to `len` bytes at `offset` and replies
    /// them as the payload.
    pub fn read_io(&self, arg: &[u8]) -> Result<DataIo, Errno> {
        let r: abi::ReadIn = abi::read(arg);
        Ok(DataIo {
            fd: self.handles.file(r.fh)?,
            offset: r.offset,
            len: r.size.min(self.opts.max_write) as usize,
        })
    }

    /// WRITE, step 1: the backing fd and range of a WRITE request (`arg0` is its
    /// `fuse_write_in`, `data_len` the length of the data that came with it). The
    /// transport then writes the data at `offset` and replies [`Fs::write_done`].
    pub fn write_io(&self, arg: &[u8], data_len: usize) -> Result<DataIo, Errno> {
        self.check_writable()?;
        let w: abi::WriteIn = abi::read(arg);
        if (w.size as usize) > data_len {
            return Err(libc::EIO);
        }
        Ok(DataIo {
            fd: self.handles.file(w.fh)?,
            offset: w.offset,
            len: w.size as usize,
        })
    }

    /// WRITE, step 2: the reply payload for `written` bytes.
    pub fn write_done(written: usize, out: &mut Reply) {
        out.push(&abi::WriteOut {
            size: written as u32,
            padding: 0,
        });
    }

    pub(super) fn read_sync(&self, arg: &[u8], out: &mut Reply) -> Result<(), Errno> {
        let io = self.read_io(arg)?;
        let buf = out.grow(io.len);
        let n = sys::pread(&io.fd, buf, io.offset);
        match n {
            Ok(n) => {
                out.truncate(n);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    pub(super) fn write_sync(&self, arg: &[u8], rest: &[u8], out: &mut Reply) -> Result<(), Errno> {
        let io = self.write_io(arg, rest.len())?;
        let n = sys::pwrite(&io.fd, &rest[..io.len], io.offset)?;
        Fs::write_done(n, out);
        Ok(())
    }

    pub(super) fn flush(&self, arg: &[u8]) -> Result<(), Errno> {
        let f: abi::FlushIn = abi::read(arg);
        let fd = self.handles.file(f.fh)?;
        // Report what a close of the client's fd would: close a duplicate, which runs the
        // backing file system's flush without closing the handle.
        // SAFETY: `fd` is open; dup returns a new fd that is closed right away.
        let dup = sys::cvt(unsafe { libc::dup(fd.as_raw_fd()) })?;
        // SAFETY: `dup` is the fd just returned, owned by nobody else.
        sys::cvt(unsafe { libc::close(dup) })?;
        Ok(())
    }

    pub(super) fn fsync(&self, arg: &[u8], dir: bool) -> Result<(), Errno> {
        let f: abi::FsyncIn = abi::read(arg);
        let datasync = f.fsync_flags & 1 != 0;
        let run = |fd: i32| {
            // SAFETY: `fd` is an open fd the caller holds.
            sys::cvt(unsafe {
                if datasync {
                    libc::fdatasync(fd)
                } else {
                    libc::fsync(fd)
                }
            })
        };
        if dir {
            let d = self.handles.dir(f.fh)?;
            let fd = lock(&d);
            run(fd.as_raw_fd())?;
        } else {
            run(self.handles.file(f.fh)?.as_raw_fd())?;
        }
        Ok(())
    }

    pub(super) fn release(&self, arg: &[u8]) -> Result<(), Errno> {
        let r: abi::ReleaseIn = abi::read(arg);
        self.handles.remove_file(r.fh);
        Ok(())
    }

    pub(super) fn fallocate(&self, arg: &[u8]) -> Result<(), Errno> {
        self.check_writable()?;
        let f: abi::FallocateIn = abi::read(arg);
        let fd = self.handles.file(f.fh)?;
        // SAFETY: `fd` is open; fallocate takes plain integers.
        sys::cvt(unsafe {
            libc::fallocate(
                fd.as_raw_fd(),
                f.mode as i32,
                f.offset as i64,
                f.length as i64,
            )
        })?;
        Ok(())
    }

    pub(super) fn lseek(&self, arg: &[u8], out: &mut Reply) -> Result<(), Errno> {
        let l: abi::LseekIn = abi::read(arg);
        let fd = self.handles.file(l.fh)?;
        // SAFETY: `fd` is open. Only SEEK_DATA/SEEK_HOLE reach the server; the handle's
        // position is not used by the server's positioned I/O.
        let off =
            sys::cvt(unsafe { libc::lseek(fd.as_raw_fd(), l.offset as i64, l.whence as i32) })?;
        out.push(&abi::LseekOut { offset: off as u64 });
        Ok(())
    }

    pub(super) fn copy_file_range(
        &self,
        arg: &[u8],
        out: &mut Reply,
        wide: bool,
    ) -> Result<(), Errno> {
        self.check_writable()?;
        let c: abi::CopyFileRangeIn = abi::read(arg);
        let from = self.handles.file(c.fh_in)?;
        let to = self.handles.file(c.fh_out)?;
        let mut off_in = c.off_in as i64;
        let mut off_out = c.off_out as i64;
        let len = if wide {
            c.len
        } else {
            c.len.min(u64::from(u32::MAX) & !0xfff)
        };
        // SAFETY: both fds are open; the offsets are writable locals.
        let n = sys::cvt(unsafe {
            libc::copy_file_range(
                from.as_raw_fd(),
                &mut off_in,
                to.as_raw_fd(),
                &mut off_out,
                len as usize,
                c.flags as u32,
            )
        })? as u64;
        if wide {
            out.push(&abi::CopyFileRangeOut { bytes_copied: n });
        } else {
            Fs::write_done(n as usize, out);
        }
        Ok(())
    }

    pub(super) fn opendir(&self, hdr: &InHeader, out: &mut Reply) -> Result<(), Errno> {
        let inode = self.inodes.get(hdr.nodeid)?;
        let fd = sys::openat(&inode.fd, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        out.push(&abi::OpenOut {
            fh: self.handles.add_dir(fd),
            open_flags: 0,
            backing_id: 0,
        });
        Ok(())
    }

    pub(super) fn releasedir(&self, arg: &[u8]) -> Result<(), Errno> {
        let r: abi::ReleaseIn = abi::read(arg);
        self.handles.remove_dir(r.fh);
        Ok(())
    }
}
