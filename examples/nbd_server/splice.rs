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
//! The kernel runs every splice in an io-wq worker. A pipe holds at most [`PIPE_CAPACITY`]:
//! larger reads take the group path.
//!
//! # What the client sees
//!
//! The pipe and then the socket hold *references* to the image's pages, not copies: a WRITE
//! to the same range that completes while the reply is still on its way may show in that
//! reply. Only requests in flight together can see that, and the protocol leaves their
//! order undefined; a client that waits for the READ's reply before writing sees the data of
//! the read. `--read-path group` or `batch` copy instead. `--direct` images never splice
//! (their pages are not in the page cache).

use std::cell::RefCell;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use ringleader::fs::File;
use ringleader::net::TcpStream;
use ringleader::ops::Lane;
use ringleader::pipe::{splice, splice_in};

use crate::proto::NbdError;

/// Bytes one pipe holds (`F_SETPIPE_SZ`; the default `/proc/sys/fs/pipe-max-size`).
pub const PIPE_CAPACITY: usize = 1 << 20;
/// Empty pipes kept per core.
const POOL_MAX: usize = 64;

thread_local! {
    static POOL: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
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
}

/// Splice `len <= PIPE_CAPACITY` bytes at `pos` of `image` into a pipe. `Ok(None)`: no pipe
/// can be had now; take another path.
pub async fn read(image: &File, pos: u64, len: usize) -> Result<Option<Spliced>, NbdError> {
    debug_assert!(len <= PIPE_CAPACITY);
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
    Ok(Some(Spliced { pipe, len }))
}

impl Spliced {
    /// Splice all of it into `stream` in `frame` (a lane frame whose earlier ops carry the
    /// reply's head), closing the frame once the last splice has its place. An error: the
    /// lane failed, or the stream; the pipe is closed.
    pub async fn send(self, stream: &TcpStream, frame: Lane) -> io::Result<()> {
        let Spliced { pipe, len } = self;
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
