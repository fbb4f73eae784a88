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
//! # Failure
//!
//! An op of a lane that fails (`res < 0`), that moves fewer bytes than its SQE asked (for
//! `SEND`, `SEND_ZC`, `WRITE`, `WRITE_FIXED`, whose SQE `len` is the byte count), or whose
//! future is dropped before its result, **fails the lane**: the stream may now hold part of
//! a frame, so nothing queued may follow. Queued and later ops complete with `ECANCELED`
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
//! use ringleader_executor::Lane;
//!
//! ringleader_executor::block_on(async {
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

use crate::context::{self, DriverRef, Unavailable};
use crate::core::Deferred;

/// No lane: the key ordinary slots carry.
pub(crate) const NO_LANE: u32 = u32::MAX;

/// One lane in the op table.
#[derive(Debug, Default)]
pub(crate) struct LaneState {
    /// Handles plus slots that refer to the lane (deferred, queued or in the kernel until
    /// their result).
    pub(crate) refs: u32,
    /// Ops waiting for their turn, in order (keys of slots dropped meanwhile are skipped).
    pub(crate) queue: VecDeque<u64>,
    /// The chain in the kernel: each op's key and the result it must have.
    pub(crate) in_flight: VecDeque<(u64, Option<u32>)>,
    pub(crate) failed: bool,
    /// Already listed in `OpTable::lanes_ready`.
    pub(crate) marked: bool,
}

/// The result an op must have for its lane to go on: the SQE's length for the ops whose
/// `len` is a byte count; otherwise only "not an error" is checked.
pub(crate) fn expected_result(entry: &Entry) -> Option<u32> {
    let code = entry.get_opcode() as u8;
    [
        opcode::Send::CODE,
        opcode::SendZc::CODE,
        opcode::Write::CODE,
        opcode::WriteFixed::CODE,
    ]
    .contains(&code)
    .then(|| crate::sys::sqe_len(entry))
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
/// its last op are gone. A lane belongs to the core it was made on.
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
