//! Lanes: ops that must reach the kernel one after another, such as the sends of several
//! tasks (or of group members) on one stream socket.
//!
//! io_uring runs the SQEs it is given concurrently. Two sends on one TCP socket can
//! interleave their bytes: a send that meets a full socket buffer waits for room and resumes
//! later, after another op's bytes went out. Frames of a protocol must not interleave, so a
//! socket shared by several producers needs its sends ordered. A [`Lane`] does it in the
//! driver, without a task in between:
//!
//! - an op submitted into a lane ([`crate::Op::submit_in`], or a group member with
//!   [`crate::MemberSpec::lane`]) waits in its slot, outside the SQ, while earlier ops of the
//!   lane are in the kernel;
//! - before each `io_uring_enter`, the driver pushes the queued ops of every idle lane as one
//!   `IOSQE_IO_LINK` chain: the kernel starts each op when the previous one finished, so a
//!   burst of replies still costs one enter, and they reach the socket whole and in order;
//! - when the chain's last result arrives, the next queued ops go.
//!
//! # Frames of several ops
//!
//! The lane orders *ops*: each one's bytes go out whole, in the order the ops entered the
//! lane. An op enters when it is submitted, a group member when its leader completes. A
//! protocol frame sent as several ops (a head now, then data from a lease that is still
//! being filled) would let any op that enters in between go between its parts. A frame
//! takes its place instead: [`Lane::frame`] gives a handle whose ops run at the place the
//! frame took when it was made, in their own order, and the lane's later ops wait until the
//! frame is closed: its last handle dropped **and** every group member submitted into it
//! having taken its place (its leader completed, or it was dropped). Close a frame as soon
//! as its last op is submitted: until then the lane waits for it, and a forgotten frame
//! handle stops the lane for good (its later ops never run; nothing is freed early). Never
//! wait, with a frame open, for something that ops queued behind it must finish first (a
//! pool slot their sends hold, say): take what the frame needs before making it.
//!
//! # Failure
//!
//! An op of a lane that fails (`res < 0`), that moves fewer bytes than its SQE asked (for
//! `SEND`, `SEND_ZC`, `WRITE`, `WRITE_FIXED`, whose SQE `len` is the byte count, and
//! `SENDMSG`, whose iovecs say how many), or whose future is dropped before its result,
//! **fails the lane**: the stream may now hold part of a frame, so nothing queued may
//! follow. Queued and later ops complete with `ECANCELED`
//! without reaching the kernel; ops already chained behind the failed one are cancelled by
//! the kernel (a short or failed op breaks an `IO_LINK` chain). Use `MSG_WAITALL` on stream
//! sends in a lane: io_uring then completes a send only when all of it went out (or the
//! connection failed).
//!
//! A `SEND_ZC` lets the lane go on at its result; its buffer is still held until the
//! notification.
//!
//! # Example
//!
//! ```
//! use ringleader::ops::Lane;
//!
//! ringleader::block_on(async {
//!     let lane = Lane::new();
//!     assert!(!lane.is_failed());
//!     let again = lane.clone(); // handles share the lane
//!     drop(lane);
//!     assert!(!again.is_failed());
//! });
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;

use io_uring::opcode;
use io_uring::squeue::Entry;
use slab::Slab;

use crate::context::{self, DriverRef, Unavailable};
use crate::core::Deferred;

/// No lane: the key ordinary slots carry.
pub(crate) const NO_LANE: u32 = u32::MAX;

/// Queue entries with this bit are the place of an open frame (`FRAME_MARK | frame key`),
/// not op keys (whose generation leaves bit 63 clear).
const FRAME_MARK: u64 = 1 << 63;

/// One lane, or one frame of a lane, in the op table.
///
/// A frame has no queue or chain of its own: its ops go into its lane's queue, just before
/// the frame's mark, and the mark holds back everything behind it until the frame closes.
#[derive(Debug)]
pub(crate) struct LaneState {
    /// Handles plus slots that refer to the lane (deferred, queued or in the kernel until
    /// their result), plus, for a lane, its frames.
    pub(crate) refs: u32,
    /// Handles plus deferred group members: whoever may still add an op. A frame closes
    /// when this reaches zero.
    joiners: u32,
    /// A frame's lane (whose queue and chain it uses); `NO_LANE` for a lane.
    root: u32,
    /// Ops waiting for their turn, in order, and the marks of open frames. Only a lane's.
    pub(crate) queue: VecDeque<u64>,
    /// The chain in the kernel: each op's key and the result it must have. Only a lane's.
    pub(crate) in_flight: VecDeque<(u64, Option<u32>)>,
    /// Only a lane's: a frame fails with its lane.
    pub(crate) failed: bool,
    /// Already listed in `OpTable::lanes_ready`.
    pub(crate) marked: bool,
}

impl LaneState {
    fn new(root: u32) -> LaneState {
        LaneState {
            refs: 1,
            joiners: 1,
            root,
            queue: VecDeque::new(),
            in_flight: VecDeque::new(),
            failed: false,
            marked: false,
        }
    }
}

/// Whether a queue entry is a frame's mark rather than an op's key.
pub(crate) fn is_mark(entry: u64) -> bool {
    entry & FRAME_MARK != 0
}

/// The lane whose queue and chain `key` uses: `key` itself, or a frame's lane.
pub(crate) fn root(lanes: &Slab<LaneState>, key: u32) -> u32 {
    match lanes[key as usize].root {
        NO_LANE => key,
        root => root,
    }
}

/// A new lane with one handle.
pub(crate) fn new_lane(lanes: &mut Slab<LaneState>) -> u32 {
    let key = lanes.insert(LaneState::new(NO_LANE));
    u32::try_from(key).expect("fewer than 4 billion lanes")
}

/// A new frame with one handle, placed where an op submitted into `of` (a lane or a frame)
/// now would be.
pub(crate) fn new_frame(lanes: &mut Slab<LaneState>, of: u32) -> u32 {
    let root = root(lanes, of);
    let key =
        u32::try_from(lanes.insert(LaneState::new(root))).expect("fewer than 4 billion lanes");
    lanes[root as usize].refs += 1;
    if !lanes[root as usize].failed {
        enqueue(lanes, of, FRAME_MARK | u64::from(key));
    }
    key
}

/// One more handle on `key`, or a group member deferred into it: both may add an op.
pub(crate) fn join(lanes: &mut Slab<LaneState>, key: u32) {
    let l = &mut lanes[key as usize];
    l.refs += 1;
    l.joiners += 1;
}

/// A handle on `key`, or a deferred member, will add no op (any more). The last one closes
/// a frame: its mark leaves the queue and what waited behind it may go.
pub(crate) fn leave(lanes: &mut Slab<LaneState>, key: u32, ready: &mut Vec<u32>) {
    let l = &mut lanes[key as usize];
    l.joiners -= 1;
    if l.joiners > 0 || l.root == NO_LANE {
        return;
    }
    let root = l.root;
    let r = &mut lanes[root as usize];
    let mark = FRAME_MARK | u64::from(key);
    if let Some(at) = r.queue.iter().rposition(|&e| e == mark) {
        r.queue.remove(at);
    }
    if !r.queue.is_empty() {
        mark_ready(r, root, ready);
    }
}

/// Queue `entry` (an op's key or a frame's mark) at the place of `key`'s ops: the back of a
/// lane's queue, or just before a frame's mark. The lane must not have failed.
pub(crate) fn enqueue(lanes: &mut Slab<LaneState>, key: u32, entry: u64) {
    let root = root(lanes, key);
    let queue = &mut lanes[root as usize].queue;
    if key == root {
        return queue.push_back(entry);
    }
    let mark = FRAME_MARK | u64::from(key);
    match queue.iter().rposition(|&e| e == mark) {
        Some(at) => queue.insert(at, entry),
        None => {
            // An open frame of a lane that has not failed always has its mark.
            debug_assert!(false, "frame {key} has no place in lane {root}");
            queue.push_back(entry);
        }
    }
}

/// Take op `ud` (queued in `key`) out of its lane's queue.
pub(crate) fn unqueue(lanes: &mut Slab<LaneState>, key: u32, ud: u64) {
    let root = root(lanes, key);
    lanes[root as usize].queue.retain(|&e| e != ud);
}

/// Drop one reference to `key`; the last one removes it (and a frame's reference to its
/// lane).
pub(crate) fn unref(lanes: &mut Slab<LaneState>, key: u32) {
    let l = &mut lanes[key as usize];
    l.refs -= 1;
    if l.refs == 0 {
        let root = l.root;
        lanes.remove(key as usize);
        if root != NO_LANE {
            unref(lanes, root);
        }
    }
}

/// List lane `key` for the driver's next flush, once, if it has nothing in the kernel.
pub(crate) fn mark_ready(l: &mut LaneState, key: u32, ready: &mut Vec<u32>) {
    if !l.marked && l.in_flight.is_empty() {
        l.marked = true;
        ready.push(key);
    }
}

/// The result an op must have for its lane to go on: the SQE's length for the ops whose
/// `len` is a byte count, the iovecs' total for `SENDMSG`; otherwise only "not an error" is
/// checked.
pub(crate) fn expected_result(entry: &Entry) -> Option<u32> {
    let code = entry.get_opcode() as u8;
    if code == opcode::SendMsg::CODE {
        return sendmsg_len(entry);
    }
    [
        opcode::Send::CODE,
        opcode::SendZc::CODE,
        opcode::Write::CODE,
        opcode::WriteFixed::CODE,
    ]
    .contains(&code)
    .then(|| crate::sys::sqe_len(entry))
}

/// The bytes a `SENDMSG` SQE asks to send: the sum of its iovecs' lengths (`None` if it
/// does not fit a result).
/// Read when the op leaves the lane's queue for the kernel (a group member's iovecs were
/// cut to its leader's result before it entered the queue).
fn sendmsg_len(entry: &Entry) -> Option<u32> {
    let msg = crate::sys::sqe_addr(entry) as *const libc::msghdr;
    // SAFETY: an op enters a lane under `Op::submit_in`'s contract (or a group member under
    // `GroupOp::submit`'s): every pointer in its SQE, so the `msghdr` and the iovec array it
    // points at, stays valid until the op's final CQE, and the op's data owns that memory
    // (nothing else writes it). The op has not reached the kernel yet. Only the header and
    // the iovecs' lengths are read, never the bytes they point at.
    let total = unsafe {
        let msg = msg.read_unaligned();
        let iovs = msg.msg_iov.cast_const();
        (0..msg.msg_iovlen).try_fold(0usize, |sum, i| {
            sum.checked_add(iovs.add(i).read_unaligned().iov_len)
        })
    };
    total.and_then(|t| u32::try_from(t).ok())
}

/// Whether `entry` is a stream send whose `msg_flags` may take `MSG_MORE`.
pub(crate) fn is_send(entry: &Entry) -> bool {
    let code = entry.get_opcode() as u8;
    [
        opcode::Send::CODE,
        opcode::SendMsg::CODE,
        opcode::SendZc::CODE,
    ]
    .contains(&code)
}

/// An ordered submission lane on the current core's ring (see the module docs).
///
/// Cloning gives another handle on the same lane. The lane lives until its last handle and
/// its last op are gone. A lane belongs to the core it was made on. [`Lane::frame`] gives a
/// handle on a frame of the lane: ops submitted through it keep together.
pub struct Lane {
    driver: DriverRef,
    key: u32,
    _not_send: PhantomData<*const ()>,
}

impl Lane {
    /// A new, empty lane on the current core.
    ///
    /// # Panics
    /// Outside a ringleader runtime.
    pub fn new() -> Lane {
        let (driver, key) = DriverRef::current_with(|d| d.ops.lane_new());
        Lane {
            driver,
            key,
            _not_send: PhantomData,
        }
    }

    /// Whether an op of the lane failed (see the module docs): every later op completes
    /// with `ECANCELED`.
    ///
    /// # Panics
    /// Off the lane's core.
    pub fn is_failed(&self) -> bool {
        self.driver
            .with(|d| d.ops.lane_failed(self.key))
            .expect("ringleader: a lane used off the core it was made on")
    }

    /// A frame in this lane (or, called on a frame, in that frame): a handle whose ops run
    /// at the place in the lane this call takes, one after another, before every op that
    /// enters the lane after this call (see the module docs). The frame closes when its
    /// last handle is dropped and every group member submitted into it has taken its place;
    /// until then the lane's later ops wait.
    ///
    /// For a frame sent as several ops: a head from memory and data from a lease a read is
    /// still filling, say. Clones are handles on the same frame. In a failed lane, its ops
    /// complete with `ECANCELED`.
    ///
    /// ```
    /// use ringleader::ops::Lane;
    ///
    /// ringleader::block_on(async {
    ///     let lane = Lane::new();
    ///     let frame = lane.frame(); // takes its place now
    ///     // ... submit the frame's ops into `frame`, then:
    ///     drop(frame); // the lane's later ops may go
    ///     assert!(!lane.is_failed());
    /// });
    /// ```
    ///
    /// # Panics
    /// Off the lane's core.
    pub fn frame(&self) -> Lane {
        let key = self
            .driver
            .with(|d| d.ops.lane_frame(self.key))
            .expect("ringleader: a lane used off the core it was made on");
        Lane {
            driver: self.driver,
            key,
            _not_send: PhantomData,
        }
    }

    /// The lane's key on `driver`, checking it is the lane's own driver.
    pub(crate) fn key_for(&self, driver: DriverRef) -> u32 {
        assert!(
            self.driver == driver,
            "ringleader: an op submitted into a lane of another core"
        );
        self.key
    }
}

impl Default for Lane {
    fn default() -> Self {
        Lane::new()
    }
}

impl Clone for Lane {
    fn clone(&self) -> Self {
        self.driver
            .with(|d| d.ops.lane_retain(self.key))
            .expect("ringleader: a lane used off the core it was made on");
        Lane {
            driver: self.driver,
            key: self.key,
            _not_send: PhantomData,
        }
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        // Off its core, or after the runtime is gone, the lane went with its driver. Dropped
        // inside a driver call (a waker's drop): released by the event loop.
        match self.driver.access(|d| d.ops.lane_release(self.key)) {
            Ok(()) | Err(Unavailable::Elsewhere) => {}
            Err(Unavailable::Busy) => context::defer(Deferred::LaneRelease(self.key)),
        }
    }
}

impl fmt::Debug for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lane").field("key", &self.key).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(key: u32) -> u64 {
        FRAME_MARK | u64::from(key)
    }

    #[test]
    fn a_frames_ops_keep_its_place_and_its_mark_holds_the_rest() {
        let mut lanes = Slab::new();
        let mut ready = Vec::new();
        let lane = new_lane(&mut lanes);
        enqueue(&mut lanes, lane, 1);
        let f = new_frame(&mut lanes, lane);
        enqueue(&mut lanes, lane, 2); // after the frame
        enqueue(&mut lanes, f, 3); // in the frame: before 2
        let g = new_frame(&mut lanes, f); // a frame in the frame: after 3, before f's later ops
        enqueue(&mut lanes, f, 4);
        enqueue(&mut lanes, g, 5);
        let q = |lanes: &Slab<LaneState>| -> Vec<u64> {
            lanes[lane as usize].queue.iter().copied().collect()
        };
        assert_eq!(q(&lanes), Vec::from([1, 3, 5, mark(g), 4, mark(f), 2]));
        // A deferred member keeps `f` open after its handle is gone.
        join(&mut lanes, f);
        leave(&mut lanes, f, &mut ready);
        assert_eq!(q(&lanes), Vec::from([1, 3, 5, mark(g), 4, mark(f), 2]));
        enqueue(&mut lanes, f, 6);
        leave(&mut lanes, f, &mut ready);
        leave(&mut lanes, g, &mut ready);
        assert_eq!(q(&lanes), Vec::from([1, 3, 5, 4, 6, 2]));
        assert_eq!(ready, [lane], "a closed frame readies its lane once");
        // The lane lives until its frames are gone too.
        unref(&mut lanes, lane);
        unref(&mut lanes, g);
        unref(&mut lanes, f);
        assert!(lanes.contains(lane as usize));
        unref(&mut lanes, f);
        assert!(lanes.is_empty());
    }

    #[test]
    fn sendmsg_expects_its_iovecs_total() {
        let (a, b) = ([0u8; 16], vec![0u8; 1000]);
        let mut iov = [
            libc::iovec {
                iov_base: a.as_ptr().cast_mut().cast(),
                iov_len: a.len(),
            },
            libc::iovec {
                iov_base: b.as_ptr().cast_mut().cast(),
                iov_len: b.len(),
            },
        ];
        // SAFETY: `msghdr` is plain data; all zeroes is a valid empty header.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = iov.len();
        let entry = opcode::SendMsg::new(io_uring::types::Fd(0), &raw const msg).build();
        assert_eq!(expected_result(&entry), Some(1016));
    }
}
