//! [`GroupOutput`]: what a group resolves to — the leader's result and every member's,
//! delivered together after the last member's last CQE (G3).

use std::io;

use ringleader_executor::Cqe;

use super::hold::{canceled, result};

/// The results of a group, delivered when its last op has completed.
///
/// - `leader`: the leader's byte count (the data's length for a leader that fills the lease),
///   or its error; a group that failed validation is never submitted and reports an
///   `InvalidInput` (`EINVAL`) error here that names the problem, and a group on a lease that
///   a dropped or forgotten op still uses a `ResourceBusy` error carrying the
///   [`LeaseBusy`](ringleader_buf::LeaseBusy);
/// - `members`: each member's result, in the order the members were added. When the leader
///   failed, every member is `ECANCELED` and none was submitted (G4).
#[derive(Debug)]
#[must_use = "a group's failure is only reported in its output"]
pub struct GroupOutput {
    /// The leader's result.
    pub leader: io::Result<usize>,
    /// Each member's result, in member order.
    pub members: Vec<io::Result<usize>>,
}

impl GroupOutput {
    /// Whether the group failed: its leader, or any member, returned an error (G5). Short
    /// results are not failures.
    pub fn failed(&self) -> bool {
        self.leader.is_err() || self.members.iter().any(Result::is_err)
    }

    /// `Ok(self)` unless the group failed; then the leader's error, or the first failed
    /// member's. Sequencing groups with `?` gives G5's rule: a group after a failed one does
    /// not start.
    ///
    /// A short member is not a failure: a write or send that moved fewer bytes than the
    /// leader produced (a signal, a full socket buffer, the end of the space) is `Ok(n)` and
    /// `check` passes it. To finish it, compare each `members[i]` with `leader` and write the
    /// rest from the same lease with the plain forms, e.g. for a file member written at `pos`:
    /// `group::write_fixed_at(&dst, lease.view(n..), pos + n as u64)` (and `group::send(&sock,
    /// lease.view(n..))` for a socket; `LeaseExt::view` gives the remainder), repeating until
    /// the count reaches the leader's. Linked groups and lane sends need no resuming: a short
    /// op there fails the chain or the lane (G10, `Lane`).
    ///
    /// ```no_run
    /// # use ringleader::group::{Group, Leader, Member};
    /// # async fn f(lease: &mut ringleader::buf::Lease, src: &ringleader::fs::File,
    /// #            dst: &ringleader::fs::File) -> std::io::Result<()> {
    /// Group::new(lease)
    ///     .leader(Leader::read_fixed(src, 0))
    ///     .member(Member::write_fixed(dst, 0))
    ///     .await
    ///     .check()?;
    /// // Runs only if every op of the first group succeeded.
    /// Group::new(lease)
    ///     .leader(Leader::read_fixed(src, 4096))
    ///     .member(Member::write_fixed(dst, 4096))
    ///     .await
    ///     .check()?;
    /// # Ok(()) }
    /// ```
    pub fn check(self) -> io::Result<GroupOutput> {
        if !self.failed() {
            return Ok(self);
        }
        let GroupOutput { leader, members } = self;
        match leader {
            Err(e) => Err(e),
            Ok(_) => Err(members
                .into_iter()
                .find_map(Result::err)
                .expect("failed() found an error")),
        }
    }

    pub(crate) fn from_cqes(leader: &Cqe, members: impl IntoIterator<Item = Cqe>) -> GroupOutput {
        GroupOutput {
            leader: result(leader),
            members: members.into_iter().map(|c| result(&c)).collect(),
        }
    }

    /// A group refused before submission: `err` for the leader, `ECANCELED` for each member.
    pub(crate) fn refused(err: io::Error, members: usize) -> GroupOutput {
        GroupOutput {
            leader: Err(err),
            members: (0..members).map(|_| Err(canceled())).collect(),
        }
    }
}

/// The error of a group that cannot be built (overlapping or out-of-range members, a mode
/// the leader does not support): `InvalidInput`, the kind of `EINVAL`.
#[cold] // Only for groups refused at build time.
pub(crate) fn invalid(msg: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("ringleader group refused (EINVAL): {msg}"),
    )
}
