//! Per-ring counters, for tests and for users who want to see what the runtime did.

/// Counters of one core's ring, read with [`crate::stats`].
///
/// They prove mechanisms in tests (a wake came through `MSG_RING`; the SQ-full path ran) and
/// cost one add each on paths that already touch the ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// `io_uring_enter` calls.
    pub enters: u64,
    /// Enters that submitted at least one SQE.
    pub submits: u64,
    /// Enters that blocked for a completion.
    pub waits: u64,
    /// SQEs pushed.
    pub sqes_pushed: u64,
    /// CQEs reaped.
    pub cqes_reaped: u64,
    /// Times a push found the SQ full and flushed it.
    pub sq_full: u64,
    /// Ticks that found `IORING_SQ_CQ_OVERFLOW` set and flushed the kernel's overflow list.
    pub cq_overflow: u64,
    /// CQEs the kernel dropped (the CQ ring's overflow counter: it could not even queue them
    /// on its overflow list). Their ops never complete; their resources are leaked, never
    /// freed. Zero on a healthy system.
    pub cqes_dropped: u64,
    /// `ASYNC_CANCEL`s pushed for dropped ops.
    pub cancels: u64,
    /// Cross-core wake-ups this core sent through `MSG_RING` (its own ring or the
    /// ring-less `IORING_REGISTER_SEND_MSG_RING`).
    pub msg_ring_sent: u64,
    /// `MSG_RING` sends that failed (the target ring had gone).
    pub msg_ring_failed: u64,
    /// Cross-core wake-up CQEs received.
    pub msg_ring_received: u64,
    /// Group members the driver pushed after their leader's CQE.
    pub group_members_pushed: u64,
    /// Batches in which group members were pushed (one per group, unless a group had more
    /// members than the SQ has entries).
    pub group_batches: u64,
    /// Lane chains pushed (each one `IOSQE_IO_LINK` chain of a lane's queued ops).
    pub lane_chains: u64,
    /// Ops pushed through lanes.
    pub lane_ops: u64,
    /// Spins before parking ([`crate::Builder::spin_before_park`]) that found nothing to do
    /// and parked.
    pub spin_parks: u64,
    /// Spins that lost their CPU to another thread, after which the adaptive spin sat out
    /// the next idle periods (see [`crate::Builder::spin_before_park`]).
    pub spin_holdoffs: u64,
    /// Op, group and stream futures dropped while the driver was borrowed further up the
    /// stack (inside a waker's clone or drop, or a `with_submitter` closure): their resources
    /// were handed to the event loop, which parks and cancels them at its next tick, so they
    /// are released at the final CQE as for any other drop.
    pub drops_deferred: u64,
    /// Drops of ops that write into lent memory which stopped waiting for the kernel at
    /// their bound (the op's resources stay parked until its final CQE; the memory stays
    /// inaccessible meanwhile), or skipped the wait because the core was shutting down or
    /// the driver was borrowed.
    pub settle_timeouts: u64,
    /// Ops waiting for a CQE now.
    pub ops_in_flight: u64,
    /// Op slots occupied now (in flight, or completed and not yet collected).
    pub slots_occupied: u64,
    /// Tasks on this core that have started and not finished.
    pub tasks_active: u64,
}
