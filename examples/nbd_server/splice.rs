//! READ replies whose data never enters user memory: `SPLICE` the image's page-cache pages
//! into a pipe, then `SPLICE` the pipe into the socket after the reply's head.
//!
//! The other read paths copy the data twice on the server (page cache to a buffer with
//! `READ_FIXED`, buffer to the socket's memory on send). Splicing moves page references
//! instead, so the server's CPU per large read is the bookkeeping only; on loopback the
//! client's receive copies straight from the page cache. Measured with `bench nbd` (fio,
//! 256 KiB sequential reads at QD 8, server pinned to one core): see `bench/README.md`.
//!
//! # How
//!
//! 1. The request's task takes an empty pipe from the core's pool and splices the whole
//!    range into it (several splices if the kernel moves less at once). Any failure, end of
//!    file included, is an error reply: nothing has been sent yet, and the pipe is closed.
//! 2. The writer (`reply.rs`) puts the head in the connection's send lane, then splices the
//!    pipe into the socket in the same lane frame, so no other reply can come between them;
//!    a short splice is followed by another, in the frame, until all of it went out. The
//!    pipe, empty again, goes back to the pool; one that failed is closed.
//!
//! # Bounds
//!
//! - **Pipe slots.** A pipe of [`PIPE_CAPACITY`] has one slot per page, and a splice from the
//!   page cache takes a slot per page it touches: a READ is spliced only if the pages it
//!   spans fit ([`PIPE_PAGES`]), so an unaligned 1 MiB READ (257 pages) takes the group
//!   path instead of waiting forever for room in a pipe nobody drains.
//! - **Pipes per core** ([`PIPES_IN_USE_MAX`]): each spliced reply waiting for the writer
//!   holds a pipe (two fds). Past the bound READs take the group path, so clients that
//!   queue replies without reading them cannot exhaust the server's fds.
//! - **io-wq workers.** The kernel runs every splice in an io-wq worker, and a splice into a
//!   socket whose client stops reading blocks its worker until the stall timeout resets the
//!   connection. At most [`SOCKET_SPLICES_MAX`] splices into sockets run at once per core
//!   (well under the ring's 64 unbounded workers); past it the writer reads the pipe into
//!   memory (a pipe read never blocks: the data is there) and sends that with an ordinary
//!   send, which waits in the ring, not in a worker. So non-reading clients cannot take
//!   the workers every other client's splices need.

//! # What the client sees
//!
//! The pipe and then the socket hold *references* to the image's pages, not copies: a WRITE
//! to the same range that completes while the reply is still on its way may show in that
//! reply. Only requests in flight together can see that, and the protocol leaves their
//! order undefined; a client that waits for the READ's reply before writing sees the data of
//! the read. `--read-path group` or `batch` copy instead. `--direct` images never splice
//! (their pages are not in the page cache).

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use ringleader::buf::IoBuf;
use ringleader::fd;
use ringleader::fs::File;
use ringleader::net::{OwnedIo, TcpStream};
use ringleader::ops::Lane;
use ringleader::pipe::{splice, splice_in};

use crate::proto::NbdError;

/// Bytes one pipe holds (`F_SETPIPE_SZ`; the default `/proc/sys/fs/pipe-max-size`).
pub const PIPE_CAPACITY: usize = 1 << 20;
/// Pages (pipe slots) one pipe holds.
pub const PIPE_PAGES: u64 = (PIPE_CAPACITY / PAGE) as u64;
const PAGE: usize = 4096;
/// Pipes holding a reply per core, at most (see the module docs).
pub const PIPES_IN_USE_MAX: usize = 128;
/// Splices into sockets running at once per core, at most (see the module docs).
pub const SOCKET_SPLICES_MAX: usize = 16;
/// Empty pipes kept per core.
const POOL_MAX: usize = 64;

thread_local! {
    static POOL: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
    static PIPES_IN_USE: Cell<usize> = const { Cell::new(0) };
    static SOCKET_SPLICES: Cell<usize> = const { Cell::new(0) };
}

/// One unit of a per-core count, given back when dropped.
#[derive(Debug)]
struct Count(&'static std::thread::LocalKey<Cell<usize>>);

impl Count {
    /// A unit of `count` if it is below `max`.
    fn take(count: &'static std::thread::LocalKey<Cell<usize>>, max: usize) -> Option<Count> {
        count.with(|c| {
            (c.get() < max).then(|| {
                c.set(c.get() + 1);
                Count(count)
            })
        })
    }
}

impl Drop for Count {
    fn drop(&mut self) {
        self.0.with(|c| c.set(c.get() - 1));
    }
}

/// Whether a READ of `len` bytes at `pos` fits one pipe: its pages, not just its bytes.
pub fn fits(pos: u64, len: usize) -> bool {
    let first = pos / PAGE as u64;
    let end = (pos + len as u64).div_ceil(PAGE as u64);
    len <= PIPE_CAPACITY && end - first <= PIPE_PAGES
}

/// A pipe's two ends; a splice holds a reference to the end it uses until its final CQE.
#[derive(Debug)]
struct Pipe {
    r: Rc<OwnedFd>,
    w: Rc<OwnedFd>,
}

impl Pipe {
    /// An empty pipe from the pool, or a new one; `None` if none can be made (out of fds, or
    /// not allowed to grow it).
    fn take() -> Option<Pipe> {
        POOL.with_borrow_mut(Vec::pop).or_else(|| Pipe::new().ok())
    }

    fn new() -> io::Result<Pipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` has room for the two fds pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded: both fds are open and owned by nobody else.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: F_SETPIPE_SZ on an open pipe fd takes an int and touches no memory of ours.
        if unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, PIPE_CAPACITY as libc::c_int) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Pipe {
            r: Rc::new(r),
            w: Rc::new(w),
        })
    }

    /// Back to the pool: only ever called on an empty pipe.
    fn recycle(self) {
        POOL.with_borrow_mut(|p| {
            if p.len() < POOL_MAX {
                p.push(self);
            }
        });
    }
}

/// A READ's data, held in a pipe until the writer sends it.
#[derive(Debug)]
pub struct Spliced {
    pipe: Pipe,
    len: usize,
    _in_use: Count,
}

/// Splice `len` bytes at `pos` of `image` into a pipe. `Ok(None)`: this READ cannot be
/// spliced now (it does not [`fit`](fits) a pipe, the core's pipes are all in use, or no
/// pipe can be made); take another path.
pub async fn read(image: &File, pos: u64, len: usize) -> Result<Option<Spliced>, NbdError> {
    if !fits(pos, len) {
        return Ok(None);
    }
    let Some(in_use) = Count::take(&PIPES_IN_USE, PIPES_IN_USE_MAX) else {
        return Ok(None);
    };
    let Some(pipe) = Pipe::take() else {
        return Ok(None);
    };
    let mut done = 0;
    while done < len {
        let at = pos + done as u64;
        match splice(image, Some(at), &pipe.w, None, (len - done) as u32).await {
            // End of file: the image shrank under the server (its size is fixed at start-up).
            Ok(0) => return Err(NbdError::Io),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // The pipe is dropped (closed) with whatever it holds.
            Err(e) => return Err(NbdError::from_io(&e)),
        }
    }
    Ok(Some(Spliced {
        pipe,
        len,
        _in_use: in_use,
    }))
}

impl Spliced {
    /// Splice all of it into `stream` in `frame` (a lane frame whose earlier ops carry the
    /// reply's head), closing the frame once the last op has its place. When the core
    /// already has [`SOCKET_SPLICES_MAX`] splices into sockets running, the pipe is read
    /// into memory and sent instead (see the module docs). An error: the lane failed, or the
    /// stream; the pipe is closed.
    pub async fn send(self, stream: &TcpStream, frame: Lane) -> io::Result<()> {
        let Spliced { pipe, len, _in_use } = self;
        let Some(_splicing) = Count::take(&SOCKET_SPLICES, SOCKET_SPLICES_MAX) else {
            return copy_out(pipe, len, stream, frame).await;
        };
        let mut done = 0;
        while done < len {
            let op = splice_in(&frame, &pipe.r, None, stream, None, (len - done) as u32);
            match op.await {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) => return Err(e),
            }
        }
        drop(frame);
        pipe.recycle();
        Ok(())
    }
}

/// Read the pipe's `len` bytes into memory and send them in `frame` (an ordinary send, which
/// waits for a slow client in the ring instead of in an io-wq worker).
#[cold] // Only while the core's socket splices are all taken (clients not reading).
async fn copy_out(pipe: Pipe, len: usize, stream: &TcpStream, frame: Lane) -> io::Result<()> {
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        let have = buf.len();
        let (res, b) = fd::read(&pipe.r, buf.slice(have..len), u64::MAX).await;
        buf = b.into_inner();
        if res? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    let (res, _) = stream.send_in(&frame, buf).await;
    drop(frame);
    if res? != len {
        return Err(io::ErrorKind::WriteZero.into());
    }
    pipe.recycle();
    Ok(())
}
