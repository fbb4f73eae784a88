//! [`IoFd`]: what a leader or member op needs from the fd it works on.
//!
//! An op keeps the fd open until its final CQE by holding a reference to the fd's owner in its
//! op data (the same rule the fs and net ops follow), so a group future that is dropped or
//! forgotten never lets an fd number be closed and reused under an SQE the kernel may still
//! run. A borrowed `&File` or `&TcpStream` is only used to take that reference.

use std::any::Any;
use std::fmt;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use crate::fs::File;
use crate::net::OwnedIo;

/// A raw fd plus a counted reference to its owner, kept in an op's data until its final CQE.
#[derive(Clone)]
pub struct FdHold {
    pub(crate) raw: RawFd,
    /// Never read: it keeps the fd's owner alive.
    pub(crate) _keep: Rc<dyn Any>,
}

impl fmt::Debug for FdHold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FdHold").field("fd", &self.raw).finish()
    }
}

mod sealed {
    pub trait Sealed {}
}

/// An fd a group op can use: a [`File`], a stream socket ([`TcpStream`](crate::net::TcpStream),
/// [`UnixStream`](crate::net::UnixStream)), an `Rc<OwnedFd>` (pipes, anything else), or an
/// `Arc<OwnedFd>` (an fd shared by several cores, such as a file server's backing files).
///
/// The op takes a reference to the fd's owner, so the fd stays open until the op's final
/// CQE even if the value is dropped first.
pub trait IoFd: sealed::Sealed {
    /// The fd and a reference that keeps it open.
    fn fd_hold(&self) -> FdHold;
}

impl sealed::Sealed for File {}
impl IoFd for File {
    fn fd_hold(&self) -> FdHold {
        let keep: Rc<OwnedFd> = self.shared_fd();
        FdHold {
            raw: keep.as_raw_fd(),
            _keep: keep,
        }
    }
}

impl<S: OwnedIo + AsRawFd> sealed::Sealed for S {}
impl<S: OwnedIo + AsRawFd> IoFd for S {
    fn fd_hold(&self) -> FdHold {
        let keep: Rc<dyn Any> = Rc::clone(self.socket()) as Rc<dyn Any>;
        FdHold {
            raw: self.as_raw_fd(),
            _keep: keep,
        }
    }
}

impl sealed::Sealed for Rc<OwnedFd> {}
impl IoFd for Rc<OwnedFd> {
    fn fd_hold(&self) -> FdHold {
        FdHold {
            raw: self.as_raw_fd(),
            _keep: Rc::clone(self) as Rc<dyn Any>,
        }
    }
}

impl sealed::Sealed for std::sync::Arc<OwnedFd> {}
impl IoFd for std::sync::Arc<OwnedFd> {
    fn fd_hold(&self) -> FdHold {
        FdHold {
            raw: self.as_raw_fd(),
            _keep: Rc::new(std::sync::Arc::clone(self)) as Rc<dyn Any>,
        }
    }
}
