//! Where each member works in the lease, and the G7 checks, done when a group is built.
//!
//! Rules (docs/design.md §4 G7): members that read the lease share it and may overlap; a member that
//! writes into the lease needs a range no other member touches; every range lies inside the
//! lease's capacity; a member that writes into the lease is never in a lane (lanes order
//! sends on a stream socket: a read or recv there would wait behind other tasks' sends while
//! the group's drop waits for it, and a short one would fail the lane).
//! A violation refuses the whole group with `InvalidInput` (`EINVAL`) naming the members;
//! nothing is submitted.

use std::io;
use std::rc::Rc;

use io_uring::squeue::Entry;
use ringleader_buf::LeaseRef;

use super::hold::Hold;
use super::output::invalid;
use super::spec::Member;
use super::sqe;
use super::vectored::{iovecs, nonempty, writev_entry};

/// Bytes of a range starting at `off`, at most `max` long, within `produced` bytes.
pub(crate) fn clamp(produced: usize, off: usize, max: usize) -> usize {
    produced.saturating_sub(off).min(max)
}

/// A member resolved against the lease: bytes `off..off + max`.
#[derive(Clone, Debug)]
pub(crate) struct Placed {
    pub(crate) member: Member,
    pub(crate) off: usize,
    pub(crate) max: usize,
    /// The length follows the leader's result (`clamp(result - off, 0, max)`), so the member
    /// sees exactly the bytes produced (G6); otherwise it is `max`.
    pub(crate) follows: bool,
}

impl Placed {
    /// The member's length once the leader completed with `leader_result`.
    pub(crate) fn len_after(&self, leader_result: i32) -> usize {
        if self.follows {
            clamp(leader_result.max(0) as usize, self.off, self.max)
        } else {
            self.max
        }
    }

    /// The member's SQE and data on the lease at `base`: full length, or cut to the leader's
    /// result when it is known. Its data holds a reference made from `keep`: a kernel
    /// writer if the member writes into the lease, a kernel reader otherwise.
    pub(crate) fn build(
        &self,
        base: *mut u8,
        index: Option<u16>,
        keep: &LeaseRef,
        leader_result: Option<i32>,
    ) -> Built {
        let access = if self.member.writes_lease() {
            keep.kernel_writer()
        } else {
            keep.kernel_reader()
        };
        let hold = Hold::new(Some(access), Some(self.member.fd()));
        let len = leader_result.map_or(self.max, |r| self.len_after(r));
        if let Some((fd, prefix)) = self.member.prefixed() {
            // Two iovecs (the prefix, then the lease range) in a `Vec`, a `msghdr` pointing
            // at them in another: both heap arrays the `Hold` owns, which stay put when it
            // moves.
            let mut iov = vec![
                libc::iovec {
                    iov_base: prefix.as_ptr().cast_mut().cast(),
                    iov_len: prefix.len(),
                },
                libc::iovec {
                    iov_base: base.wrapping_add(self.off).cast(),
                    iov_len: len,
                },
            ];
            // SAFETY: `msghdr` is plain data; all zeroes is a valid empty header.
            let mut msg: Vec<libc::msghdr> = vec![unsafe { std::mem::zeroed() }];
            msg[0].msg_iov = iov.as_mut_ptr();
            msg[0].msg_iovlen = 2;
            let entry =
                self.member
                    .finish(sqe::sendmsg(fd, msg.as_ptr(), self.member.send_flags()));
            // The lease iovec, for the prep hook (its length follows the leader).
            let data_iov = iov.as_mut_ptr().wrapping_add(1);
            return Built {
                entry,
                hold: hold
                    .with_iov(iov)
                    .with_msg(msg)
                    .with_prefix(Rc::clone(prefix)),
                iov: Some(data_iov),
            };
        }
        match self.member.ranges() {
            None => {
                let ptr = base.wrapping_add(self.off);
                Built {
                    entry: self
                        .member
                        .finish(self.member.entry(ptr, sqe::len32(len), index)),
                    hold,
                    iov: None,
                }
            }
            Some(ranges) => {
                let produced = match leader_result {
                    Some(r) if self.follows => Some(r.max(0) as usize),
                    _ => None,
                };
                // Empty iovecs are refused by the kernel (`EFAULT`): empty ranges get none,
                // and one a known leader result empties is packed out now (one the result
                // empties later is packed by the group's prep hook, `vectored.rs`).
                let mut iov = iovecs(base, &nonempty(ranges), produced);
                iov.retain(|v| v.iov_len > 0);
                let (fd, pos) = self.member.vectored_target();
                let ptr = iov.as_mut_ptr();
                let entry = writev_entry(fd, ptr, iov.len(), index, pos, self.member.force_async);
                Built {
                    entry,
                    hold: hold.with_iov(iov),
                    iov: Some(ptr),
                }
            }
        }
    }
}

/// A member ready to submit: its SQE, its data, and for a vectored member the iovec array
/// the SQE points at (owned by `hold`).
pub(crate) struct Built {
    pub(crate) entry: Entry,
    pub(crate) hold: Hold,
    pub(crate) iov: Option<*mut libc::iovec>,
}

/// How the leader fills the lease.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    /// Bytes members may use (the lease's or buffer's capacity).
    pub(crate) cap: usize,
    /// The open end of a reading member when the leader produces nothing (the lease's data).
    pub(crate) data_len: usize,
    /// Whether the leader writes the lease from its start.
    pub(crate) produces: bool,
    /// Zero-fill mode: members that read the leader's output get their full length (G6).
    pub(crate) zero_fill: bool,
}

/// Resolve every member's range, or refuse the group.
pub(crate) fn place(members: &[Member], shape: Shape) -> io::Result<Vec<Placed>> {
    if shape.cap > u32::MAX as usize {
        return Err(invalid(format!(
            "a lease of {} bytes; group members address at most 4 GiB",
            shape.cap
        )));
    }
    let mut placed = Vec::with_capacity(members.len());
    for (i, m) in members.iter().enumerate() {
        let writes = m.writes_lease();
        if writes && m.lane.is_some() {
            return Err(invalid(format!(
                "member {i} ({m:?}) writes into the lease and is in a lane; lanes order the \
                 sends of a stream socket: only members that read the lease (send, send_zc, \
                 send_prefixed, write) may join one"
            )));
        }
        let open_end = if writes || shape.produces {
            shape.cap
        } else {
            shape.data_len
        };
        if let Some(ranges) = m.ranges() {
            placed.push(place_vectored(i, m, ranges, shape)?);
            continue;
        }
        let end = m.end.unwrap_or(open_end);
        if m.start > end || end > shape.cap {
            return Err(invalid(format!(
                "member {i} ({m:?}) covers lease bytes {}..{end}, outside the lease's {} bytes",
                m.start, shape.cap
            )));
        }
        placed.push(Placed {
            member: m.clone(),
            off: m.start,
            max: end - m.start,
            follows: shape.produces && !writes && !shape.zero_fill,
        });
    }
    for (i, a) in placed.iter().enumerate() {
        if !a.member.writes_lease() {
            continue;
        }
        for (j, b) in placed.iter().enumerate() {
            let overlap = a.off.max(b.off) < (a.off + a.max).min(b.off + b.max);
            if i != j && overlap {
                return Err(invalid(format!(
                    "member {i} ({:?}, lease bytes {}..{}) writes into the lease where member \
                     {j} ({:?}, bytes {}..{}) works too; members that write into a lease need \
                     disjoint ranges",
                    a.member,
                    a.off,
                    a.off + a.max,
                    b.member,
                    b.off,
                    b.off + b.max
                )));
            }
        }
    }
    Ok(placed)
}

/// A vectored member: every range inside the lease; its extent spans them all.
fn place_vectored(
    i: usize,
    m: &Member,
    ranges: &[(usize, usize)],
    shape: Shape,
) -> io::Result<Placed> {
    if m.start != 0 || m.end.is_some() {
        return Err(invalid(format!(
            "member {i} ({m:?}) is vectored: its ranges place it, `at` does not apply"
        )));
    }
    if ranges.is_empty() || ranges.len() > 1024 {
        return Err(invalid(format!(
            "member {i} ({m:?}) has {} ranges; a vectored op takes 1 to 1024 (IOV_MAX)",
            ranges.len()
        )));
    }
    if let Some(&(a, b)) = ranges.iter().find(|&&(a, b)| a > b || b > shape.cap) {
        return Err(invalid(format!(
            "member {i} ({m:?}) covers lease bytes {a}..{b}, outside the lease's {} bytes",
            shape.cap
        )));
    }
    let start = ranges.iter().map(|r| r.0).min().unwrap_or(0);
    let end = ranges.iter().map(|r| r.1).max().unwrap_or(0);
    Ok(Placed {
        member: m.clone(),
        off: start,
        max: end - start,
        follows: shape.produces && !shape.zero_fill,
    })
}
