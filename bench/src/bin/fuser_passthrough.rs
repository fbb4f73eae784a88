//! `fuser_passthrough`: the Rust FUSE peer of the `fuse` bench, a passthrough file system
//! on the `fuser` crate (classic /dev/fuse, `fuser`'s own mount and request loop).
//!
//! ```text
//! fuser_passthrough --source DIR --mount DIR [--threads N]
//! ```
//!
//! # Model
//!
//! Addressed by path, as the simplest passthrough servers are: every node the kernel knows
//! is a backing path under `--source`, and its node id is the backing inode number (the
//! source's root is node 1). `fuser` runs `--threads` request loops, each on its own clone
//! of the /dev/fuse fd (`FUSE_DEV_IOC_CLONE`), all sharing this file system (`&self`
//! methods), so the node and directory tables are behind mutexes held for a table update
//! only. An open file's handle is its backing fd; READ and WRITE are `pread`/`pwrite` on it.
//! A directory handle is a snapshot of its entries taken at OPENDIR.
//!
//! Not done (the bench does not need it): xattrs (`ENOSYS`, which the kernel remembers),
//! locks, READDIRPLUS, renaming a directory that has known descendants other than by
//! rewriting their paths. The mount uses `default_permissions` and `allow_other`; the
//! process sets its umask to 0 (the kernel applied the caller's already). SIGTERM ends the
//! process by the default action: the connection aborts, the bench unmounts with
//! `umount -l`.

use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, Request, SessionACL, TimeOrNow, WriteFlags,
};

const USAGE: &str = "\
usage: fuser_passthrough --source DIR --mount DIR [--threads N]

A passthrough FUSE file system on the fuser crate: shows DIR (--source) at --mount.
Runs until unmounted or killed (the bench's Rust FUSE peer; see bench/README.md).

  --threads N   request loops, each on its own clone of the /dev/fuse fd (default 2)
  -h, --help    this text";

/// How long the kernel may cache entries and attributes (the same second as ringleader's
/// server and bindfs's libfuse default).
const TTL: Duration = Duration::from_secs(1);

/// A node the kernel knows: its backing path and how many replies handed it out.
#[derive(Debug)]
struct Node {
    path: PathBuf,
    lookups: u64,
}

/// One directory entry of a handle's snapshot: node id, type, name.
type DirEntry = (u64, FileType, OsString);

#[derive(Debug)]
struct Passthrough {
    root: PathBuf,
    root_ino: u64,
    nodes: Mutex<HashMap<u64, Node>>,
    /// Directory handles: the entries (`ino`, type, name) read at OPENDIR.
    dirs: Mutex<HashMap<u64, Vec<DirEntry>>>,
    next_dir: AtomicU64,
}

fn errno(e: &std::io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

fn last_errno() -> Errno {
    errno(&std::io::Error::last_os_error())
}

fn cpath(p: &Path) -> CString {
    // A path from the kernel and the source never holds a NUL byte.
    CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

fn kind(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        libc::S_IFSOCK => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

fn timespec(t: Option<TimeOrNow>) -> libc::timespec {
    match t {
        None => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        Some(TimeOrNow::Now) => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        Some(TimeOrNow::SpecificTime(t)) => {
            let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
            libc::timespec {
                tv_sec: d.as_secs() as libc::time_t,
                tv_nsec: d.subsec_nanos().into(),
            }
        }
    }
}

impl Passthrough {
    fn ino_of(&self, md: &fs::Metadata) -> u64 {
        if md.ino() == self.root_ino {
            1
        } else {
            md.ino()
        }
    }

    fn attr(&self, md: &fs::Metadata) -> FileAttr {
        FileAttr {
            ino: INodeNo(self.ino_of(md)),
            size: md.size(),
            blocks: md.blocks(),
            atime: time(md.atime(), md.atime_nsec()),
            mtime: time(md.mtime(), md.mtime_nsec()),
            ctime: time(md.ctime(), md.ctime_nsec()),
            crtime: UNIX_EPOCH,
            kind: kind(md.mode()),
            perm: (md.mode() & 0o7777) as u16,
            nlink: md.nlink() as u32,
            uid: md.uid(),
            gid: md.gid(),
            rdev: md.rdev() as u32,
            blksize: md.blksize() as u32,
            flags: 0,
        }
    }

    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        if ino.0 == 1 {
            return Ok(self.root.clone());
        }
        let nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        nodes
            .get(&ino.0)
            .map(|n| n.path.clone())
            .ok_or(Errno::ESTALE)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.path(parent)?.join(name))
    }

    /// Stat `path` and count one more lookup of its node.
    fn remember(&self, path: PathBuf) -> Result<FileAttr, Errno> {
        let md = fs::symlink_metadata(&path).map_err(|e| errno(&e))?;
        let attr = self.attr(&md);
        if attr.ino.0 != 1 {
            let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
            let node = nodes.entry(attr.ino.0).or_insert(Node { path, lookups: 0 });
            node.lookups += 1;
        }
        Ok(attr)
    }

    fn entry(&self, path: PathBuf, reply: ReplyEntry) {
        match self.remember(path) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn open_fd(path: &Path, flags: i32, mode: u32) -> Result<i32, Errno> {
        // The server's alignment is not the client's: O_DIRECT stays with the client, as
        // in ringleader's server.
        let flags = flags & !(libc::O_DIRECT | libc::O_NOCTTY) | libc::O_CLOEXEC;
        // SAFETY: `cpath` is a NUL-terminated path that lives across the call.
        let fd = unsafe { libc::open(cpath(path).as_ptr(), flags, mode) };
        if fd < 0 { Err(last_errno()) } else { Ok(fd) }
    }

    /// The open file behind handle `fh`, borrowed (the handle owns the fd until RELEASE).
    fn file(fh: FileHandle) -> std::mem::ManuallyDrop<fs::File> {
        use std::os::fd::FromRawFd;
        // SAFETY: `fh` is an fd this server opened at OPEN/CREATE and closes only at
        // RELEASE, after which the kernel sends no request with it; `ManuallyDrop` keeps
        // this borrow from closing it.
        std::mem::ManuallyDrop::new(unsafe { fs::File::from_raw_fd(fh.0 as i32) })
    }
}

fn ok_or(r: i32, reply: ReplyEmpty) {
    if r == 0 {
        reply.ok()
    } else {
        reply.error(last_errno())
    }
}

impl Filesystem for Passthrough {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // As ringleader's server: 1 MiB writes, parallel lookups in one directory, and
        // parallel O_DIRECT requests from one client, when the kernel offers them.
        let _ = config.set_max_write(1 << 20);
        for f in [InitFlags::FUSE_PARALLEL_DIROPS, InitFlags::FUSE_ASYNC_DIO] {
            let _ = config.add_capabilities(f);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.child(parent, name) {
            Ok(p) => self.entry(p, reply),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = nodes.get_mut(&ino.0) {
            n.lookups = n.lookups.saturating_sub(nlookup);
            if n.lookups == 0 {
                nodes.remove(&ino.0);
            }
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let md = match fh {
            Some(fh) => Self::file(fh).metadata(),
            None => match self.path(ino) {
                Ok(p) => fs::symlink_metadata(p),
                Err(e) => return reply.error(e),
            },
        };
        match md {
            Ok(md) => reply.attr(&TTL, &self.attr(&md)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let path = match self.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let c = cpath(&path);
        let r = (|| {
            if let Some(mode) = mode
                // SAFETY: `c` is a NUL-terminated path alive across the call.
                && unsafe { libc::chmod(c.as_ptr(), mode & 0o7777) } != 0
            {
                return Err(last_errno());
            }
            if (uid.is_some() || gid.is_some())
                // SAFETY: `c` is a NUL-terminated path alive across the call.
                && unsafe { libc::lchown(c.as_ptr(), uid.unwrap_or(!0), gid.unwrap_or(!0)) } != 0
            {
                return Err(last_errno());
            }
            if let Some(size) = size {
                let r = match fh {
                    Some(fh) => Self::file(fh).set_len(size),
                    None => fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.set_len(size)),
                };
                r.map_err(|e| errno(&e))?;
            }
            if atime.is_some() || mtime.is_some() {
                let times = [timespec(atime), timespec(mtime)];
                // SAFETY: `c` is a NUL-terminated path and `times` two `timespec`s, both
                // alive across the call.
                let r = unsafe {
                    libc::utimensat(
                        libc::AT_FDCWD,
                        c.as_ptr(),
                        times.as_ptr(),
                        libc::AT_SYMLINK_NOFOLLOW,
                    )
                };
                if r != 0 {
                    return Err(last_errno());
                }
            }
            fs::symlink_metadata(&path).map_err(|e| errno(&e))
        })();
        match r {
            Ok(md) => reply.attr(&TTL, &self.attr(&md)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self
            .path(ino)
            .and_then(|p| fs::read_link(p).map_err(|e| errno(&e)))
        {
            Ok(t) => reply.data(t.as_os_str().as_bytes()),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let Ok(p) = self.child(parent, name) else {
            return reply.error(Errno::ESTALE);
        };
        // SAFETY: `cpath` is a NUL-terminated path alive across the call.
        if unsafe { libc::mknod(cpath(&p).as_ptr(), mode, rdev.into()) } != 0 {
            return reply.error(last_errno());
        }
        self.entry(p, reply)
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let Ok(p) = self.child(parent, name) else {
            return reply.error(Errno::ESTALE);
        };
        // SAFETY: `cpath` is a NUL-terminated path alive across the call.
        if unsafe { libc::mkdir(cpath(&p).as_ptr(), mode) } != 0 {
            return reply.error(last_errno());
        }
        self.entry(p, reply)
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.child(parent, name) {
            Ok(p) => match fs::remove_file(p) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            },
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.child(parent, name) {
            Ok(p) => match fs::remove_dir(p) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            },
            Err(e) => reply.error(e),
        }
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let Ok(p) = self.child(parent, link_name) else {
            return reply.error(Errno::ESTALE);
        };
        match std::os::unix::fs::symlink(target, &p) {
            Ok(()) => self.entry(p, reply),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (Ok(from), Ok(to)) = (self.child(parent, name), self.child(newparent, newname)) else {
            return reply.error(Errno::ESTALE);
        };
        let (cf, ct) = (cpath(&from), cpath(&to));
        // SAFETY: both paths are NUL-terminated and alive across the call.
        let r = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                cf.as_ptr(),
                libc::AT_FDCWD,
                ct.as_ptr(),
                flags.bits(),
            )
        };
        if r != 0 {
            return reply.error(last_errno());
        }
        // Nodes under the old name (the file itself, a directory's descendants) move.
        let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        for n in nodes.values_mut() {
            if let Ok(rest) = n.path.strip_prefix(&from) {
                n.path = if rest.as_os_str().is_empty() {
                    to.clone()
                } else {
                    to.join(rest)
                };
            }
        }
        reply.ok()
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let (Ok(from), Ok(to)) = (self.path(ino), self.child(newparent, newname)) else {
            return reply.error(Errno::ESTALE);
        };
        match fs::hard_link(from, &to) {
            Ok(()) => self.entry(to, reply),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let fd = self
            .path(ino)
            .and_then(|p| Self::open_fd(&p, flags.0 & !(libc::O_CREAT | libc::O_EXCL), 0));
        match fd {
            Ok(fd) => reply.opened(FileHandle(fd as u64), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut buf = vec![0u8; size as usize];
        let f = Self::file(fh);
        let mut done = 0;
        while done < buf.len() {
            match f.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return reply.error(errno(&e)),
            }
        }
        reply.data(&buf[..done])
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match Self::file(fh).write_all_at(data, offset) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Close a duplicate, so the backing file system's close-time errors reach `close`.
        // SAFETY: `fh` is an open fd this server owns (see `file`).
        let dup = unsafe { libc::dup(fh.0 as i32) };
        if dup < 0 {
            return reply.error(last_errno());
        }
        // SAFETY: `dup` was just returned by dup(2) and is closed once, here.
        ok_or(unsafe { libc::close(dup) }, reply)
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // SAFETY: RELEASE ends the handle: the kernel sends no more requests with `fh`.
        unsafe { libc::close(fh.0 as i32) };
        reply.ok()
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let f = Self::file(fh);
        match if datasync {
            f.sync_data()
        } else {
            f.sync_all()
        } {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let path = match self.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let parent = path.parent().map_or(1, |p| {
            fs::symlink_metadata(p).map_or(1, |m| self.ino_of(&m))
        });
        let mut entries = vec![
            (ino.0, FileType::Directory, OsString::from(".")),
            (parent, FileType::Directory, OsString::from("..")),
        ];
        let rd = match fs::read_dir(&path) {
            Ok(rd) => rd,
            Err(e) => return reply.error(errno(&e)),
        };
        for e in rd.flatten() {
            let ft = e.file_type().ok();
            let kind = match ft {
                Some(t) if t.is_dir() => FileType::Directory,
                Some(t) if t.is_symlink() => FileType::Symlink,
                _ => FileType::RegularFile,
            };
            let ino = std::os::unix::fs::DirEntryExt::ino(&e);
            entries.push((ino, kind, e.file_name()));
        }
        let fh = self.next_dir.fetch_add(1, Ordering::Relaxed);
        let mut dirs = self.dirs.lock().unwrap_or_else(|e| e.into_inner());
        dirs.insert(fh, entries);
        reply.opened(FileHandle(fh), FopenFlags::empty())
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let dirs = self.dirs.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entries) = dirs.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok()
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let mut dirs = self.dirs.lock().unwrap_or_else(|e| e.into_inner());
        dirs.remove(&fh.0);
        reply.ok()
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // SAFETY: `statvfs` is plain data; all-zero is a valid value to be overwritten.
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: a NUL-terminated path alive across the call and a writable `statvfs`.
        if unsafe { libc::statvfs(cpath(&self.root).as_ptr(), &mut s) } != 0 {
            return reply.error(last_errno());
        }
        reply.statfs(
            s.f_blocks,
            s.f_bfree,
            s.f_bavail,
            s.f_files,
            s.f_ffree,
            s.f_bsize as u32,
            s.f_namemax as u32,
            s.f_frsize as u32,
        )
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        match self.path(ino) {
            // SAFETY: a NUL-terminated path alive across the call.
            Ok(p) => ok_or(
                unsafe { libc::access(cpath(&p).as_ptr(), mask.bits()) },
                reply,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let Ok(p) = self.child(parent, name) else {
            return reply.error(Errno::ESTALE);
        };
        let fd = match Self::open_fd(&p, flags | libc::O_CREAT, mode) {
            Ok(fd) => fd,
            Err(e) => return reply.error(e),
        };
        match self.remember(p) {
            Ok(attr) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(fd as u64),
                FopenFlags::empty(),
            ),
            Err(e) => {
                // SAFETY: `fd` was opened above and handed to no one.
                unsafe { libc::close(fd) };
                reply.error(e)
            }
        }
    }
}

fn main() -> std::process::ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (mut source, mut mount, mut threads) = (None, None, 2usize);
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("--source") => source = args.next().map(PathBuf::from),
            Some("--mount") => mount = args.next().map(PathBuf::from),
            Some("--threads") => match args.next().and_then(|v| v.to_str()?.parse().ok()) {
                Some(n) if n > 0 => threads = n,
                _ => {
                    eprintln!("fuser_passthrough: --threads takes a positive number");
                    return std::process::ExitCode::from(2);
                }
            },
            Some("-h" | "--help") => {
                println!("{USAGE}");
                return std::process::ExitCode::SUCCESS;
            }
            _ => {
                eprintln!("fuser_passthrough: unknown argument {a:?}\n{USAGE}");
                return std::process::ExitCode::from(2);
            }
        }
    }
    let (Some(source), Some(mount)) = (source, mount) else {
        eprintln!("{USAGE}");
        return std::process::ExitCode::from(2);
    };
    let root = match fs::canonicalize(&source).and_then(|r| Ok((fs::metadata(&r)?.ino(), r))) {
        Ok((ino, root)) => (ino, root),
        Err(e) => {
            eprintln!("fuser_passthrough: {}: {e}", source.display());
            return std::process::ExitCode::FAILURE;
        }
    };
    // SAFETY: umask only sets the process's file mode creation mask.
    unsafe { libc::umask(0) };
    let fs = Passthrough {
        root: root.1,
        root_ino: root.0,
        nodes: Mutex::new(HashMap::new()),
        dirs: Mutex::new(HashMap::new()),
        next_dir: AtomicU64::new(1),
    };
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("fuser_passthrough".into()),
        MountOption::DefaultPermissions,
    ];
    config.acl = SessionACL::All;
    config.n_threads = Some(threads);
    config.clone_fd = true;
    println!(
        "fuser_passthrough: serving {} at {} ({threads} threads)",
        source.display(),
        mount.display()
    );
    match fuser::mount(fs, &mount, &config) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fuser_passthrough: {}: {e}", mount.display());
            std::process::ExitCode::FAILURE
        }
    }
}
