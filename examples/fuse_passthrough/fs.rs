//! The passthrough file system: every FUSE request becomes `*at()` syscalls on the source
//! directory, relative to `O_PATH` fds the inode table keeps (never to a path string built
//! from the mount, which would loop through FUSE). It does no I/O of its own on /dev/fuse
//! and knows nothing of the transport: a transport hands it one decoded request at a time.
//!
//! # API for transports (stable; `classic.rs` and the io_uring transport both use it)
//!
//! ```text
//! let fs = Arc::new(Fs::new(source, Options { .. })?);     // Send + Sync, one per mount
//! let mut out = Reply::new();                               // one per request slot, reused
//! out.clear();
//! match fs.dispatch(&hdr, arg0, rest, &mut out) {
//!     Ok(Answer::Reply) => /* reply: no error, out.payload() as the out args */,
//!     Ok(Answer::None)  => /* FORGET, BATCH_FORGET, INTERRUPT: send nothing */,
//!     Err(errno)        => /* reply with error = -errno and an empty payload */,
//! }
//! ```
//!
//! - `hdr` is the request's `fuse_in_header`; `arg0` its fixed first argument (the ring
//!   entry's `op_in`, or on /dev/fuse the [`abi::arg0_len`] bytes after the header: see
//!   [`abi::split_request`]); `rest` everything after it (names, write data, xattr values),
//!   with or without the `total_extlen` extensions at its end.
//! - [`dispatch`](Fs::dispatch) answers every opcode, INIT included, and READ and WRITE with
//!   a synchronous `pread`/`pwrite`. A transport that wants to do the data I/O itself (e.g.
//!   `READ_FIXED`/`WRITE_FIXED` into a registered payload) calls the two steps instead:
//!   [`read_io`](Fs::read_io)`(arg0)` or [`write_io`](Fs::write_io)`(arg0, data_len)`
//!   resolve the handle to a [`DataIo`] (backing fd, offset, length, already checked),
//!   the transport reads or writes, then replies: a READ's payload is the bytes read (a
//!   short count is fine: it is EOF); a WRITE's is [`Fs::write_done`]`(n, &mut out)`; an
//!   I/O error is replied as `-errno`.
//! - Errors are the backing file system's errno, positive ([`Errno`]).
//! - INIT: the reply offers what the kernel offered of this server's set plus
//!   [`Options::extra_init_flags`] (the io_uring transport adds
//!   `abi::init::OVER_IO_URING`); [`Fs::init_flags`] says what was agreed (0 before INIT).

mod dir;
mod file;
mod inodes;
mod mirror;
mod node;
mod sys;
mod xattr;

use std::ffi::CStr;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::abi::{self, InHeader, Pod, op};
use file::Handles;
use inodes::Inodes;

/// A positive errno value.
pub type Errno = i32;

/// What the transport does after a successful [`Fs::dispatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Answer {
    /// Reply with error 0 and [`Reply::payload`] as the out arguments.
    Reply,
    /// Send nothing (FORGET, BATCH_FORGET, INTERRUPT).
    None,
}

/// Mount-wide settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Refuse every change with `EROFS` (the mount is also `MS_RDONLY`).
    pub readonly: bool,
    /// Largest WRITE (and READ) the kernel may send; the INIT reply's `max_write`.
    pub max_write: u32,
    /// INIT flags asked for beyond the server's own set, if the kernel offers them.
    pub extra_init_flags: u64,
    /// How long the kernel may cache entries and attributes.
    pub cache_timeout: Duration,
    /// Directories every change is made to as well (`--mirror`, see `fs/mirror.rs`).
    pub mirrors: Vec<PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            readonly: false,
            max_write: 1 << 20,
            extra_init_flags: 0,
            cache_timeout: Duration::from_secs(1),
            mirrors: Vec::new(),
        }
    }
}

/// One request's reply: room for the `fuse_out_header` (filled by [`Reply::frame`] for
/// /dev/fuse), then the out arguments ([`Reply::payload`]). Reuse it across requests.
#[derive(Debug)]
pub struct Reply {
    buf: Vec<u8>,
}

const OUT_HEADER: usize = std::mem::size_of::<abi::OutHeader>();

impl Default for Reply {
    fn default() -> Reply {
        Reply::new()
    }
}

impl Reply {
    pub fn new() -> Reply {
        Reply {
            buf: vec![0; OUT_HEADER],
        }
    }

    /// Empty the payload (keeps the allocation).
    pub fn clear(&mut self) {
        self.buf.truncate(OUT_HEADER);
    }

    /// The out arguments so far.
    #[allow(
        dead_code,
        reason = "for the io_uring transport, which copies the payload"
    )]
    pub fn payload(&self) -> &[u8] {
        &self.buf[OUT_HEADER..]
    }

    pub fn push<T: Pod>(&mut self, v: &T) {
        self.buf.extend_from_slice(v.as_bytes());
    }

    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// `n` zeroed bytes appended to the payload, to be filled in place; [`truncate`]
    /// (Self::truncate) gives back what was not used.
    pub fn grow(&mut self, n: usize) -> &mut [u8] {
        let at = self.buf.len();
        self.buf.resize(at + n, 0);
        &mut self.buf[at..]
    }

    /// Keep the first `n` bytes of the payload.
    pub fn truncate(&mut self, n: usize) {
        self.buf.truncate(OUT_HEADER + n);
    }

    /// Move the reply out, leaving an empty one.
    pub fn take(&mut self) -> Reply {
        std::mem::take(self)
    }

    /// The buffer: header room, then the payload.
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }

    /// A reply made of a buffer from [`into_vec`](Self::into_vec) or
    /// [`into_frame`](Self::into_frame), its payload kept.
    pub fn from_vec(mut buf: Vec<u8>) -> Reply {
        if buf.len() < OUT_HEADER {
            buf.resize(OUT_HEADER, 0);
        }
        Reply { buf }
    }

    /// [`frame`](Self::frame), by value: the buffer to write to /dev/fuse.
    pub fn into_frame(mut self, unique: u64, error: i32) -> Vec<u8> {
        self.frame(unique, error);
        self.buf
    }

    /// The whole /dev/fuse reply: the header (`error` is 0 or `-errno`; an error reply
    /// carries no payload) followed by the payload.
    pub fn frame(&mut self, unique: u64, error: i32) -> &[u8] {
        if error != 0 {
            self.clear();
        }
        let hdr = abi::OutHeader {
            len: self.buf.len() as u32,
            error,
            unique,
        };
        self.buf[..OUT_HEADER].copy_from_slice(hdr.as_bytes());
        &self.buf
    }
}

/// The backing side of one READ or WRITE, resolved and checked by [`Fs::read_io`] or
/// [`Fs::write_io`]: `len` bytes at `offset` of `fd` (for a WRITE, `len` is the data
/// length; the data is the request's `rest`).
#[derive(Debug, Clone)]
pub struct DataIo {
    pub fd: Arc<OwnedFd>,
    pub offset: u64,
    pub len: usize,
}

/// The passthrough file system of one mount. Shared by every core (`Send + Sync`): the
/// inode and handle tables are behind mutexes held only for table updates, never across a
/// syscall on the backing files.
#[derive(Debug)]
pub struct Fs {
    inodes: Inodes,
    handles: Handles,
    mirrors: mirror::Mirrors,
    opts: Options,
    init_flags: AtomicU64,
}

impl Fs {
    /// Serve `source` (a directory).
    pub fn new(source: &Path, opts: Options) -> io::Result<Fs> {
        let root = sys::open_path_dir(source).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("opening --source {}: {e}", source.display()),
            )
        })?;
        let mirrors = mirror::Mirrors::new(&root, &opts.mirrors)?;
        Ok(Fs {
            inodes: Inodes::new(root)?,
            handles: Handles::default(),
            mirrors,
            opts,
            init_flags: AtomicU64::new(0),
        })
    }

    /// The INIT flags agreed with the kernel (0 before INIT).
    #[allow(dead_code, reason = "for the io_uring transport")]
    pub fn init_flags(&self) -> u64 {
        self.init_flags.load(Ordering::Acquire)
    }

    /// The largest READ or WRITE the kernel may send.
    pub fn max_write(&self) -> u32 {
        self.opts.max_write
    }

    /// Node ids the kernel holds a lookup count on (the root included): for tests and
    /// statistics.
    #[allow(dead_code, reason = "for transports and tests")]
    pub fn live_nodes(&self) -> usize {
        self.inodes.len()
    }

    /// Answer one request (see the module doc). `out` should be empty
    /// ([`Reply::clear`]).
    pub fn dispatch(
        &self,
        hdr: &InHeader,
        arg: &[u8],
        rest: &[u8],
        out: &mut Reply,
    ) -> Result<Answer, Errno> {
        let ext = (hdr.total_extlen as usize * 8).min(rest.len());
        let rest = &rest[..rest.len() - ext];
        match hdr.opcode {
            op::INIT => self.init(arg, out),
            op::DESTROY => Ok(()),
            op::FORGET => {
                let f: abi::ForgetIn = abi::read(arg);
                self.inodes.forget(hdr.nodeid, f.nlookup);
                return Ok(Answer::None);
            }
            op::BATCH_FORGET => {
                self.batch_forget(arg, rest);
                return Ok(Answer::None);
            }
            op::INTERRUPT => return Ok(Answer::None),
            op::LOOKUP => self.lookup(hdr, rest, out),
            op::GETATTR => self.getattr(hdr, arg, out),
            op::SETATTR => self.setattr(hdr, arg, out),
            op::READLINK => self.readlink(hdr, out),
            op::SYMLINK => self.symlink(hdr, rest, out),
            op::MKNOD => self.mknod(hdr, arg, rest, out),
            op::MKDIR => self.mkdir(hdr, arg, rest, out),
            op::UNLINK => self.unlink(hdr, rest, 0),
            op::RMDIR => self.unlink(hdr, rest, libc::AT_REMOVEDIR),
            op::RENAME => {
                let r: abi::RenameIn = abi::read(arg);
                self.rename(hdr, r.newdir, 0, rest)
            }
            op::RENAME2 => {
                let r: abi::Rename2In = abi::read(arg);
                self.rename(hdr, r.newdir, r.flags, rest)
            }
            op::LINK => self.link(hdr, arg, rest, out),
            op::STATFS => self.statfs(hdr, out),
            op::ACCESS => self.access(hdr, arg),
            op::OPEN => self.open(hdr, arg, out),
            op::CREATE => self.create(hdr, arg, rest, out),
            op::READ => self.read_sync(arg, out),
            op::WRITE => self.write_sync(arg, rest, out),
            op::FLUSH => self.flush(arg),
            op::FSYNC => self.fsync(arg, false),
            op::RELEASE => self.release(arg),
            op::FALLOCATE => self.fallocate(arg),
            op::LSEEK => self.lseek(arg, out),
            op::COPY_FILE_RANGE => self.copy_file_range(arg, out, false),
            op::COPY_FILE_RANGE_64 => self.copy_file_range(arg, out, true),
            op::OPENDIR => self.opendir(hdr, out),
            op::READDIR => self.readdir(hdr, arg, out, false),
            op::READDIRPLUS => self.readdir(hdr, arg, out, true),
            op::RELEASEDIR => self.releasedir(arg),
            op::FSYNCDIR => self.fsync(arg, true),
            op::SETXATTR => self.setxattr(hdr, arg, rest),
            op::GETXATTR => self.getxattr(hdr, arg, rest, out),
            op::LISTXATTR => self.listxattr(hdr, arg, out),
            op::REMOVEXATTR => self.removexattr(hdr, rest),
            _ => Err(libc::ENOSYS),
        }?;
        self.mirror(hdr, arg, rest, out)?;
        Ok(Answer::Reply)
    }

    fn init(&self, arg: &[u8], out: &mut Reply) -> Result<(), Errno> {
        use abi::init::*;
        let i: abi::InitIn = abi::read(arg);
        if i.major != abi::KERNEL_VERSION || i.minor < 31 {
            // 6.18 speaks 7.45; anything older than 7.31 lacks what this server relies on.
            return Err(libc::EPROTO);
        }
        let mut offered = u64::from(i.flags);
        if offered & INIT_EXT != 0 {
            offered |= u64::from(i.flags2) << 32;
        }
        let want = ASYNC_READ
            | BIG_WRITES
            | AUTO_INVAL_DATA
            | DO_READDIRPLUS
            | READDIRPLUS_AUTO
            | ASYNC_DIO
            | PARALLEL_DIROPS
            | MAX_PAGES
            | INIT_EXT
            | self.opts.extra_init_flags;
        let agreed = want & offered;
        let page = 4096;
        let reply = abi::InitOut {
            major: abi::KERNEL_VERSION,
            minor: abi::KERNEL_MINOR_VERSION,
            max_readahead: i.max_readahead,
            flags: agreed as u32,
            flags2: (agreed >> 32) as u32,
            max_background: 64,
            congestion_threshold: 48,
            max_write: self.opts.max_write,
            time_gran: 1,
            max_pages: (self.opts.max_write / page).max(1) as u16,
            ..Default::default()
        };
        out.push(&reply);
        self.init_flags.store(agreed, Ordering::Release);
        Ok(())
    }

    fn batch_forget(&self, arg: &[u8], rest: &[u8]) {
        let b: abi::BatchForgetIn = abi::read(arg);
        let one = std::mem::size_of::<abi::ForgetOne>();
        for chunk in rest.chunks_exact(one).take(b.count as usize) {
            let f: abi::ForgetOne = abi::read(chunk);
            self.inodes.forget(f.nodeid, f.nlookup);
        }
    }

    fn check_writable(&self) -> Result<(), Errno> {
        if self.opts.readonly {
            Err(libc::EROFS)
        } else {
            Ok(())
        }
    }
}

/// The NUL-terminated name at the start of `bytes`, and what follows it.
fn name(bytes: &[u8]) -> Result<(&CStr, &[u8]), Errno> {
    let n = CStr::from_bytes_until_nul(bytes).map_err(|_| libc::EINVAL)?;
    let len = n.to_bytes_with_nul().len();
    if n.is_empty() {
        return Err(libc::EINVAL);
    }
    Ok((n, &bytes[len..]))
}
