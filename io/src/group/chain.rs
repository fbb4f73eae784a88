//! [`Chain`]: groups run one after another on the same lease, stopping at the first failed
//! group (G5: a group chained after a failed group does not start).
//!
//! Each stage is a closure that receives the lease back from the previous group and builds
//! the next one, so the borrow checker still sees one exclusive borrow of the lease for the
//! whole chain. The same rule in plain code is `?` on [`GroupOutput::check`].

use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use ringleader_buf::Lease;

use super::group::{Group, GroupFuture};
use super::output::GroupOutput;

type Stage<'l> = Box<dyn FnOnce(&'l mut Lease) -> Group<'l> + 'l>;

/// Groups on one lease, in sequence; resolves to the outputs of the groups that ran.
///
/// ```
/// use std::{os::fd::AsRawFd, rc::Rc};
/// use ringleader::buf::FixedPool;
/// use ringleader::group::{Group, Leader, Member};
///
/// ringleader::block_on(async {
///     let pool = FixedPool::new(64, 1).unwrap();
///     let (r, w) = ringleader::pipe::pipe().await.unwrap();
///     let (r, w) = (Rc::new(r), Rc::new(w));
///     let mut lease = pool.lease(64).await.unwrap();
///     lease.extend_from_slice(b"twice");
///     let outs = Group::new(&mut lease)
///         .member(Member::read_fixed(&w, u64::MAX)) // reading a pipe's write end: EBADF
///         .then(|lease| Group::new(lease).member(Member::write_fixed(&w, u64::MAX)))
///         .await;
///     assert_eq!(outs.len(), 1, "the second group did not start");
///     assert!(outs[0].failed());
/// #   drop(r);
/// });
/// ```
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Chain<'l> {
    current: Option<GroupFuture<'l>>,
    next: VecDeque<Stage<'l>>,
    done: Vec<GroupOutput>,
}

impl<'l> Chain<'l> {
    /// A chain starting with `first`.
    pub fn new(first: Group<'l>) -> Chain<'l> {
        Chain {
            current: Some(first.into_future()),
            next: VecDeque::new(),
            done: Vec::new(),
        }
    }

    /// Run `next` on the lease after the groups so far, if none of them failed.
    pub fn then(mut self, next: impl FnOnce(&'l mut Lease) -> Group<'l> + 'l) -> Chain<'l> {
        self.next.push_back(Box::new(next));
        self
    }
}

impl Future for Chain<'_> {
    /// The output of each group that ran, in order; fewer than the stages when one failed.
    type Output = Vec<GroupOutput>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<GroupOutput>> {
        let this = self.get_mut();
        loop {
            let current = this
                .current
                .as_mut()
                .expect("Chain polled after completion");
            let out = ready!(Pin::new(&mut *current).poll(cx));
            let lease = current
                .take_lease()
                .expect("a completed group gives its lease back");
            this.current = None;
            let failed = out.failed();
            this.done.push(out);
            match this.next.pop_front() {
                Some(stage) if !failed => this.current = Some(stage(lease).into_future()),
                _ => return Poll::Ready(std::mem::take(&mut this.done)),
            }
        }
    }
}

impl fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chain")
            .field("current", &self.current)
            .field("stages_left", &self.next.len())
            .field("done", &self.done.len())
            .finish()
    }
}
