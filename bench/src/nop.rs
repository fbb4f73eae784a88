//! NOP throughput: `ringleader::ops::nop().await` from many tasks, against the raw loop a runtime
//! can only approach.
//!
//! Both sides use a ring set up the same way (ringleader's defaults): `SINGLE_ISSUER |
//! DEFER_TASKRUN | COOP_TASKRUN | TASKRUN_FLAG | SUBMIT_ALL`, SQ 256, CQ 1024, ring fd
//! registered. The raw loop pushes `B` NOP SQEs, submits them and waits for `B` completions in
//! one `io_uring_enter`, reaps the `B` CQEs, and repeats: one syscall per `B` ops and nothing
//! else. ringleader with `B` tasks each awaiting NOPs in a loop does the same work plus task
//! polls, wakers and its op table.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use io_uring::{IoUring, opcode};
use ringleader::{
    Builder,
    runtime::{LocalRuntime, SetupFlags},
};

/// SQ entries of both rings.
pub const SQ_ENTRIES: u32 = 256;
/// CQ entries of both rings.
pub const CQ_ENTRIES: u32 = 1024;
/// Setup flags of both rings (ringleader's default set).
pub const FLAGS: SetupFlags = SetupFlags::default_set();

/// A single-core ringleader runtime with the ring parameters above, spelled out so that a
/// change of ringleader's defaults does not silently change what the raw loop is compared to.
pub fn ringleader_runtime() -> io::Result<LocalRuntime> {
    Builder::new()
        .entries(SQ_ENTRIES)
        .cq_entries(CQ_ENTRIES)
        .setup_flags(FLAGS)
        .register_ring_fd(true)
        .build_local()
}

/// `tasks` tasks each awaiting `per_task` NOPs one after another; returns the time from the
/// first spawn until every task has been joined.
///
/// # Panics
/// If a NOP fails or a task panics.
pub fn ringleader_nops(rt: &LocalRuntime, tasks: usize, per_task: u64) -> Duration {
    rt.block_on(async move {
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                ringleader::spawn(async move {
                    for _ in 0..per_task {
                        ringleader::ops::nop().await.expect("ringleader NOP failed");
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.expect("ringleader NOP task failed");
        }
        start.elapsed()
    })
}

/// A plain `io-uring` ring set up like ringleader's.
pub struct RawRing {
    ring: IoUring,
}

impl fmt::Debug for RawRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (sq, cq) = self.entries();
        f.debug_struct("RawRing")
            .field("sq", &sq)
            .field("cq", &cq)
            .finish()
    }
}

impl RawRing {
    /// Build the ring; every flag of [`FLAGS`] is required (no fallback: the comparison would
    /// be meaningless).
    pub fn new() -> io::Result<Self> {
        let mut b = IoUring::builder();
        b.setup_cqsize(CQ_ENTRIES)
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_coop_taskrun()
            .setup_taskrun_flag()
            .setup_submit_all();
        let ring = b.build(SQ_ENTRIES)?;
        Ok(RawRing { ring })
    }

    /// SQ and CQ entries the kernel granted.
    pub fn entries(&self) -> (u32, u32) {
        (
            self.ring.params().sq_entries(),
            self.ring.params().cq_entries(),
        )
    }

    /// `total / batch` rounds of: push `batch` NOPs, `io_uring_enter(batch, batch,
    /// GETEVENTS)`, reap `batch` CQEs. Returns the time of the rounds (ring fd registration
    /// is outside it).
    ///
    /// # Panics
    /// If `batch` is 0 or larger than the SQ.
    pub fn nops(&mut self, batch: usize, total: u64) -> io::Result<Duration> {
        assert!(
            batch > 0 && batch <= self.entries().0 as usize,
            "batch {batch} must be in 1..=SQ entries"
        );
        let rounds = total / batch as u64;
        let nop = opcode::Nop::new().build().user_data(0x5eed);
        let (mut submitter, mut sq, mut cq) = self.ring.split();
        // Per split: the registered index lives in this `Submitter` and is released below.
        submitter.register_ring_fd()?;
        let start = Instant::now();
        for _ in 0..rounds {
            sq.sync();
            for _ in 0..batch {
                // SAFETY: a NOP SQE carries no pointer for the kernel to follow.
                unsafe { sq.push(&nop) }.expect("SQ full although the last round was reaped");
            }
            sq.sync();
            let mut reaped = 0;
            while reaped < batch {
                submitter.submit_and_wait(batch - reaped)?;
                cq.sync();
                for cqe in &mut cq {
                    if cqe.result() < 0 {
                        return Err(io::Error::from_raw_os_error(-cqe.result()));
                    }
                    reaped += 1;
                }
            }
        }
        let elapsed = start.elapsed();
        submitter.unregister_ring_fd()?;
        Ok(elapsed)
    }
}
