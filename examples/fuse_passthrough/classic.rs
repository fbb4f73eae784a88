//! The classic transport: requests are `read(2)` from /dev/fuse and replies `write(2)`
//! back, both as ringleader ops (`IORING_OP_READ`/`WRITE` on a non-blocking /dev/fuse fd:
//! an empty queue answers `EAGAIN` and io_uring waits with a poll, not a thread). READ and
//! WRITE data moves between the backing file and the request/reply buffers with ring ops
//! too; every other request is answered by [`Fs::dispatch`] on the core's thread.
//!
//! Each core serves its own /dev/fuse fd (the mount's, or a `FUSE_DEV_IOC_CLONE` of it:
//! clones share the session's request queue, and a reply must go to the fd its request
//! came from) with [`READERS`] tasks, each owning one request buffer, so a core keeps a few
//! requests in flight while one waits on backing I/O.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;

use ringleader::buf::{IoBuf, IoBufMut};

use crate::abi::{self, op};
use crate::fs::{Answer, DataIo, Fs, Reply};

/// Request tasks per core.
pub const READERS: usize = 4;

/// Serve `fuse` (this core's /dev/fuse fd) until the connection ends: `Ok` when the
/// mount went away (`ENODEV`), `Err` on any other failure of /dev/fuse itself.
pub async fn serve(fs: Arc<Fs>, fuse: OwnedFd) -> io::Result<()> {
    let fuse = Rc::new(fuse);
    let tasks: Vec<_> = (0..READERS)
        .map(|_| ringleader::spawn(reader(Arc::clone(&fs), Rc::clone(&fuse))))
        .collect();
    let mut result = Ok(());
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(e),
            Err(e) => result = Err(io::Error::other(format!("a reader task failed: {e}"))),
        }
    }
    result
}

/// One request at a time: read, answer, reply.
async fn reader(fs: Arc<Fs>, fuse: Rc<OwnedFd>) -> io::Result<()> {
    // /dev/fuse refuses reads into less than max(8 KiB, 4 KiB + max_write) bytes.
    let size = (fs.max_write() as usize + 4096).max(abi::MIN_READ_BUFFER);
    let mut req: Vec<u8> = Vec::with_capacity(size);
    let mut out = Reply::new();
    loop {
        req.clear();
        let (n, buf) = ringleader::fd::read(&fuse, req, u64::MAX).await;
        req = buf;
        match n {
            Ok(_) => {}
            // The mount is gone (unmounted, or the connection aborted).
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(()),
            // A request interrupted before it was read, or a spurious wake-up.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT | libc::EINTR | libc::EAGAIN)
                ) => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("reading /dev/fuse: {e}"))),
        }
        let Some((hdr, arg, rest)) = abi::split_request(&req) else {
            continue;
        };
        out.clear();
        let answer = match hdr.opcode {
            op::READ => match fs.read_io(arg) {
                Ok(io) => {
                    let (r, back) = read_into(io, out.take()).await;
                    out = back;
                    r.map(|()| Answer::Reply)
                }
                Err(e) => Err(e),
            },
            op::WRITE => {
                let rest_at = rest.as_ptr() as usize - req.as_ptr() as usize;
                match fs.write_io(arg, rest.len()) {
                    Ok(io) => {
                        let mirrors = fs.mirror_fds(&io.fd);
                        let offset = io.offset;
                        let (r, back) = write_from(io, req, rest_at).await;
                        req = back;
                        let mut r = r.and_then(|n| mirrors.map(|m| (n, m)));
                        // `--mirror`: the bytes the source got, to every mirror, or the WRITE
                        // fails.
                        if let Ok((n, m)) = r.as_mut() {
                            for mfd in std::mem::take(m) {
                                let io = DataIo {
                                    fd: Arc::new(mfd),
                                    offset,
                                    len: *n,
                                };
                                let (w, back) = write_from(io, req, rest_at).await;
                                req = back;
                                if w != Ok(*n) {
                                    r = Err(w.err().unwrap_or(libc::EIO));
                                    break;
                                }
                            }
                        }
                        r.map(|(n, _)| {
                            Fs::write_done(n, &mut out);
                            Answer::Reply
                        })
                    }
                    Err(e) => Err(e),
                }
            }
            _ => fs.dispatch(&hdr, arg, rest, &mut out),
        };
        let error = match answer {
            Ok(Answer::None) => continue,
            Ok(Answer::Reply) => 0,
            Err(errno) => -errno,
        };
        let frame = out.into_frame(hdr.unique, error);
        let (w, frame) = ringleader::fd::write(&fuse, frame, u64::MAX).await;
        out = Reply::from_vec(frame);
        match w {
            Ok(_) => {}
            // The request was interrupted and is gone; nothing waits for this reply.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(()),
            Err(e) => return Err(io::Error::new(e.kind(), format!("writing /dev/fuse: {e}"))),
        }
    }
}

/// `buf[start..end]` for an op on a backing file, owning that file's fd: the op's data
/// keeps it (and so the fd number) until the op's final CQE, even if the future is dropped
/// first and the handle is released meanwhile.
///
/// Invariants (kept by `read_into` and `write_from`, never changed while an op owns the
/// value): `start <= buf.len()` and `end <= buf.capacity()`. A write's range is
/// initialised (`end <= buf.len()`); a read's lies past `buf.len()` and need not be, and
/// the read's completion extends `buf.len()` over what the kernel filled.
struct Backed {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    _fd: Arc<OwnedFd>,
}

impl Backed {
    fn ptr(&self) -> *const u8 {
        // SAFETY: `start <= len <= capacity`: the offset stays within (or one past) the
        // Vec's allocation.
        unsafe { self.buf.as_ptr().add(self.start) }
    }
}

// SAFETY: the pointer is into the Vec's heap buffer, which does not move with `Backed`;
// the `bytes_init` bytes after it are below `buf.len()`, so initialised.
unsafe impl IoBuf for Backed {
    fn stable_ptr(&self) -> *const u8 {
        self.ptr()
    }
    fn bytes_init(&self) -> usize {
        self.buf.len().min(self.end) - self.start
    }
    fn bytes_total(&self) -> usize {
        self.end - self.start
    }
}

// SAFETY: as for `IoBuf`, and the `bytes_total` bytes after the pointer are within the
// Vec's capacity, so writable; `set_init` extends the length only over bytes the kernel
// wrote, which follow the initialised `..start` directly.
unsafe impl IoBufMut for Backed {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.ptr().cast_mut()
    }
    unsafe fn set_init(&mut self, n: usize) {
        if self.start + n > self.buf.len() {
            // SAFETY: the caller (the op's completion) says the kernel initialised the `n`
            // bytes after `start`, and `start <= len`, so `..start + n` is initialised;
            // `start + n <= end <= capacity`.
            unsafe { self.buf.set_len(self.start + n) };
        }
    }
}

/// A READ's data: up to `io.len` bytes from the backing file, appended to `out`'s payload
/// (short only at end of file).
async fn read_into(io: DataIo, out: Reply) -> (Result<(), i32>, Reply) {
    let mut frame = out.into_vec();
    let start = frame.len();
    // Room for the data without zeroing it: the read fills it and sets the length.
    frame.reserve(io.len);
    let mut done = 0;
    let mut result = Ok(());
    while done < io.len {
        let b = Backed {
            buf: frame,
            start: start + done,
            end: start + io.len,
            _fd: Arc::clone(&io.fd),
        };
        // SAFETY: the fd stays open until the op's final CQE: `b`, the op's buffer, owns
        // an `Arc` of it.
        let (r, b) =
            unsafe { ringleader::fd::read_raw(io.fd.as_raw_fd(), b, io.offset + done as u64) }
                .await;
        frame = b.buf;
        match r {
            Ok(0) => break,
            Ok(n) => {
                done += n;
                debug_assert_eq!(frame.len(), start + done);
            }
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => {
                if done == 0 {
                    result = Err(e.raw_os_error().unwrap_or(libc::EIO));
                }
                break;
            }
        }
    }
    frame.truncate(start + done);
    (result, Reply::from_vec(frame))
}

/// A WRITE's data (`req[at..at + io.len]`) to the backing file; the bytes written.
async fn write_from(io: DataIo, req: Vec<u8>, at: usize) -> (Result<usize, i32>, Vec<u8>) {
    let mut req = req;
    let mut done = 0;
    while done < io.len {
        let b = Backed {
            buf: req,
            start: at + done,
            end: at + io.len,
            _fd: Arc::clone(&io.fd),
        };
        // SAFETY: as in `read_into`: the buffer owns the fd until the final CQE.
        let (r, b) =
            unsafe { ringleader::fd::write_raw(io.fd.as_raw_fd(), b, io.offset + done as u64) }
                .await;
        req = b.buf;
        match r {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) if done == 0 => return (Err(e.raw_os_error().unwrap_or(libc::EIO)), req),
            Err(_) => break,
        }
    }
    (Ok(done), req)
}
