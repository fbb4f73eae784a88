//! Ring setup: the flags ringleader asks for, the probe that falls back when the kernel
//! refuses one, and the record of what was applied and why.

use std::fmt;
use std::io;

use io_uring::IoUring;
use io_uring::squeue::{Entry, Entry128, EntryMarker};

use crate::ring::Ring;

/// io_uring setup flags ringleader knows how to use (`IORING_SETUP_*`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SetupFlags(u32);

impl SetupFlags {
    /// `IORING_SETUP_SQPOLL`: a kernel thread polls the SQ.
    pub const SQPOLL: Self = Self(1 << 1);
    /// `IORING_SETUP_SUBMIT_ALL` (5.18): keep submitting after an SQE fails to prep.
    pub const SUBMIT_ALL: Self = Self(1 << 7);
    /// `IORING_SETUP_COOP_TASKRUN` (5.19): no IPI to run task work.
    pub const COOP_TASKRUN: Self = Self(1 << 8);
    /// `IORING_SETUP_TASKRUN_FLAG` (5.19): the kernel flags pending task work in the SQ ring.
    pub const TASKRUN_FLAG: Self = Self(1 << 9);
    /// `IORING_SETUP_SINGLE_ISSUER` (6.0): only the creating thread submits.
    pub const SINGLE_ISSUER: Self = Self(1 << 12);
    /// `IORING_SETUP_DEFER_TASKRUN` (6.1): task work runs only when the owner enters.
    pub const DEFER_TASKRUN: Self = Self(1 << 13);

    /// No flags.
    pub const fn empty() -> Self {
        Self(0)
    }
    /// The raw `IORING_SETUP_*` bits.
    pub const fn bits(self) -> u32 {
        self.0
    }
    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
    /// The union of both.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
    /// `self` without the bits of `other`.
    #[must_use]
    pub const fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }
    /// The flags ringleader asks for by default.
    pub const fn default_set() -> Self {
        Self::SINGLE_ISSUER
            .union(Self::DEFER_TASKRUN)
            .union(Self::COOP_TASKRUN)
            .union(Self::TASKRUN_FLAG)
            .union(Self::SUBMIT_ALL)
    }

    const NAMES: [(SetupFlags, &'static str); 6] = [
        (Self::SQPOLL, "SQPOLL"),
        (Self::SUBMIT_ALL, "SUBMIT_ALL"),
        (Self::COOP_TASKRUN, "COOP_TASKRUN"),
        (Self::TASKRUN_FLAG, "TASKRUN_FLAG"),
        (Self::SINGLE_ISSUER, "SINGLE_ISSUER"),
        (Self::DEFER_TASKRUN, "DEFER_TASKRUN"),
    ];
}

impl std::ops::BitOr for SetupFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

impl fmt::Debug for SetupFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (flag, name) in Self::NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str(" | ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("(none)")?;
        }
        Ok(())
    }
}

/// What a ring was set up with, and why it differs from what was asked.
///
/// Query it from inside the runtime with [`crate::setup_info`].
#[derive(Clone, Debug)]
pub struct SetupInfo {
    /// The flags the [`Builder`](crate::Builder) asked for.
    pub requested: SetupFlags,
    /// The flags the kernel accepted.
    pub applied: SetupFlags,
    /// One line per flag that was dropped, with the kernel's reason.
    pub fallbacks: Vec<String>,
    /// SQ entries granted.
    pub sq_entries: u32,
    /// CQ entries granted.
    pub cq_entries: u32,
    /// Whether the ring fd is registered (`IORING_REGISTER_RING_FDS`).
    pub ring_fd_registered: bool,
    /// Whether the kernel buffers CQEs on overflow (`IORING_FEAT_NODROP`).
    pub nodrop: bool,
    /// The io-wq worker caps in force for this ring's thread, `[bounded, unbounded]`, as the
    /// kernel reports them after [`Builder::iowq_max_workers`](crate::Builder::iowq_max_workers)
    /// was applied; `None` if the kernel refused the registration (reason in `fallbacks`).
    pub iowq_max_workers: Option<[u32; 2]>,
    /// Whether the SQEs are 128 bytes (`IORING_SETUP_SQE128`, asked with
    /// [`Builder::sqe128`](crate::Builder::sqe128)).
    pub sqe128: bool,
}

/// The ring parameters a [`Builder`](crate::Builder) carries.
#[derive(Clone, Debug)]
pub(crate) struct RingConfig {
    pub(crate) sq_entries: u32,
    pub(crate) cq_entries: Option<u32>,
    pub(crate) flags: SetupFlags,
    pub(crate) sqpoll_idle_ms: Option<u32>,
    pub(crate) register_ring_fd: bool,
    /// `[bounded, unbounded]` for `IORING_REGISTER_IOWQ_MAX_WORKERS`; 0 keeps the kernel's.
    pub(crate) iowq_max_workers: [u32; 2],
    /// 128-byte SQEs (`IORING_SETUP_SQE128`).
    pub(crate) sqe128: bool,
}

/// The default io-wq caps, `[bounded, unbounded]` (see
/// [`Builder::iowq_max_workers`](crate::Builder::iowq_max_workers)): bounded work (regular
/// files, block devices) keeps the kernel's own cap, `min(SQ entries, 4 x CPUs)`; unbounded
/// work (splice, tee and other blocking ops on sockets, pipes and character devices), which
/// the kernel would otherwise let grow to `RLIMIT_NPROC` threads, gets 64 per ring.
pub(crate) const IOWQ_MAX_WORKERS: [u32; 2] = [0, 64];

impl Default for RingConfig {
    fn default() -> Self {
        Self {
            sq_entries: 256,
            cq_entries: None,
            flags: SetupFlags::default_set(),
            sqpoll_idle_ms: None,
            register_ring_fd: true,
            iowq_max_workers: IOWQ_MAX_WORKERS,
            sqe128: false,
        }
    }
}

/// Flags the probe may drop, in the order it drops them (least essential first).
const DROPPABLE: [(SetupFlags, &str); 5] = [
    (SetupFlags::DEFER_TASKRUN, "DEFER_TASKRUN"),
    (SetupFlags::SINGLE_ISSUER, "SINGLE_ISSUER"),
    (SetupFlags::TASKRUN_FLAG, "TASKRUN_FLAG"),
    (SetupFlags::COOP_TASKRUN, "COOP_TASKRUN"),
    (SetupFlags::SUBMIT_ALL, "SUBMIT_ALL"),
];

/// Build a ring with `cfg`, dropping refused flags one at a time.
pub(crate) fn build_ring(cfg: &RingConfig) -> io::Result<(Ring, SetupInfo)> {
    let mut requested = cfg.flags;
    if cfg.sqpoll_idle_ms.is_some() {
        requested = requested | SetupFlags::SQPOLL;
    }
    let mut flags = requested;
    let mut fallbacks = Vec::new();
    if flags.contains(SetupFlags::SQPOLL) && flags.contains(SetupFlags::DEFER_TASKRUN) {
        flags = flags.without(SetupFlags::DEFER_TASKRUN);
        fallbacks.push("DEFER_TASKRUN dropped: the kernel forbids it with SQPOLL".to_owned());
    }
    let mut drop_next = 0;
    loop {
        let built = if cfg.sqe128 {
            try_build::<Entry128>(cfg, flags).map(Ring::Sqe128)
        } else {
            try_build::<Entry>(cfg, flags).map(Ring::Sqe64)
        };
        match built {
            Ok(ring) => {
                let mut info = SetupInfo {
                    requested,
                    applied: flags,
                    fallbacks,
                    sq_entries: ring.params().sq_entries(),
                    cq_entries: ring.params().cq_entries(),
                    ring_fd_registered: false,
                    nodrop: ring.params().is_feature_nodrop(),
                    iowq_max_workers: None,
                    sqe128: ring.is_sqe128(),
                };
                cap_iowq(&ring, cfg.iowq_max_workers, &mut info);
                return Ok((ring, info));
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                // Find the next droppable flag that is still set.
                let Some(&(flag, name)) = DROPPABLE[drop_next..]
                    .iter()
                    .find(|(f, _)| flags.contains(*f))
                else {
                    return Err(setup_error(e, cfg));
                };
                drop_next = DROPPABLE.iter().position(|(f, _)| *f == flag).unwrap_or(0) + 1;
                flags = flags.without(flag);
                if flag == SetupFlags::SINGLE_ISSUER && flags.contains(SetupFlags::DEFER_TASKRUN) {
                    flags = flags.without(SetupFlags::DEFER_TASKRUN);
                }
                fallbacks.push(format!("{name} dropped: io_uring_setup returned EINVAL"));
            }
            Err(e) => return Err(setup_error(e, cfg)),
        }
    }
}

/// Apply `caps` (`IORING_REGISTER_IOWQ_MAX_WORKERS`, Linux 5.15) to the calling thread's
/// io-wq, which serves this ring: right after creation, before any op can start a worker.
/// A refusal is recorded, not fatal: the ring works, only without the cap.
fn cap_iowq(ring: &Ring, caps: [u32; 2], info: &mut SetupInfo) {
    let mut set = caps;
    if let Err(e) = ring.submitter().register_iowq_max_workers(&mut set) {
        info.fallbacks.push(format!(
            "io-wq workers not capped at {caps:?}: IORING_REGISTER_IOWQ_MAX_WORKERS: {e}"
        ));
        return;
    }
    // The kernel wrote back the previous caps; zeros ask for the ones now in force.
    let mut now = [0, 0];
    info.iowq_max_workers = ring
        .submitter()
        .register_iowq_max_workers(&mut now)
        .ok()
        .map(|()| now);
}

fn try_build<S: EntryMarker>(cfg: &RingConfig, flags: SetupFlags) -> io::Result<IoUring<S>> {
    let mut b = IoUring::<S>::builder();
    let cq = cfg.cq_entries.unwrap_or(cfg.sq_entries.saturating_mul(4));
    b.setup_cqsize(cq).setup_clamp();
    if flags.contains(SetupFlags::SUBMIT_ALL) {
        b.setup_submit_all();
    }
    if flags.contains(SetupFlags::COOP_TASKRUN) {
        b.setup_coop_taskrun();
    }
    if flags.contains(SetupFlags::TASKRUN_FLAG) {
        b.setup_taskrun_flag();
    }
    if flags.contains(SetupFlags::SINGLE_ISSUER) {
        b.setup_single_issuer();
    }
    if flags.contains(SetupFlags::DEFER_TASKRUN) {
        b.setup_defer_taskrun();
    }
    if flags.contains(SetupFlags::SQPOLL) {
        b.setup_sqpoll(cfg.sqpoll_idle_ms.unwrap_or(1000));
    }
    b.build(cfg.sq_entries)
}

/// Turn a setup failure into an error that says what is missing and what to do.
#[cold]
fn setup_error(e: io::Error, cfg: &RingConfig) -> io::Error {
    let hint = match e.raw_os_error() {
        Some(libc::ENOSYS) => {
            "the kernel has no io_uring (Linux 5.1+ needed; ringleader wants 6.1+)".to_owned()
        }
        Some(libc::EPERM) => {
            let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "?".to_owned());
            format!(
                "io_uring is refused: kernel.io_uring_disabled = {sysctl} (set it to 0, or add \
                 this user to kernel.io_uring_group), or a seccomp filter blocks io_uring_setup"
            )
        }
        Some(libc::ENOMEM) => format!(
            "not enough locked memory for a ring of {} entries: raise RLIMIT_MEMLOCK \
             (ulimit -l) or ask for fewer entries",
            cfg.sq_entries
        ),
        _ => format!("io_uring_setup failed with {} entries", cfg.sq_entries),
    };
    io::Error::new(e.kind(), format!("ringleader: {hint}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_debug_lists_names() {
        let f = SetupFlags::SINGLE_ISSUER | SetupFlags::SUBMIT_ALL;
        assert_eq!(format!("{f:?}"), "SUBMIT_ALL | SINGLE_ISSUER");
        assert_eq!(format!("{:?}", SetupFlags::empty()), "(none)");
    }

    #[test]
    fn sqpoll_drops_defer_taskrun_with_reason() {
        let cfg = RingConfig {
            sqpoll_idle_ms: Some(10),
            ..RingConfig::default()
        };
        let (_ring, info) = build_ring(&cfg).expect("ring");
        assert!(info.applied.contains(SetupFlags::SQPOLL));
        assert!(!info.applied.contains(SetupFlags::DEFER_TASKRUN));
        assert!(info.fallbacks.iter().any(|l| l.contains("DEFER_TASKRUN")));
    }
}
