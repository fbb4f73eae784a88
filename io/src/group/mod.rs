//! Groups: a leader op fills a lease, member ops borrow it zero-copy (docs/design.md §4, G1–G10).
//!
//! # Model
//!
//! A **lease** is kernel-visible memory held by one owner: a [`FixedPool`] slot
//! ([`Lease`], registered, so members can use `READ_FIXED`/`WRITE_FIXED`/`SEND_ZC` with a
//! fixed buffer), a [`BufRing`] buffer the kernel picks for a recv, or a [`PipeLease`] whose
//! data stays in kernel pages. A **group** is one *leader* op that fills the lease and N
//! *member* ops that use it once the leader has succeeded:
//!
//! ```text
//!   leader (READ_FIXED / RECV / SPLICE / NOP)
//!      │ CQE reaped: members pushed by the driver, all in one batch, lengths from the result
//!      ├── member WRITE_FIXED  ─┐
//!      ├── member SEND_ZC      ─┼─ run concurrently; the group resolves after the last CQE
//!      └── member TEE / READ.. ─┘  (SEND_ZC: its notification), with every op's result
//! ```
//!
//! Two forms, the same guarantees:
//!
//! - **plain**: single ops on borrowed views of a lease ([`read_fixed_at`],
//!   [`write_fixed_at`], [`send`], [`send_zc`], [`recv`]; also
//!   [`File::read_fixed_at`](crate::fs::File::read_fixed_at) and friends), composed with
//!   `join!`. Views come from [`LeaseExt`]: shared [`LeaseSlice`]s for ops that read the
//!   lease, disjoint [`LeaseSliceMut`]s (split like `split_at_mut`) for ops that write into it;
//! - **groups** with the kernel proposal's semantics: [`Group`] on a `&mut Lease`,
//!   [`RecvGroup`] on a buffer ring, [`PipeGroup`] on a `&mut PipeLease`, and [`Chain`] to
//!   run groups in sequence until one fails.
//!
//! ```
//! use ringleader::buf::FixedPool;
//! use ringleader::fs::File;
//! use ringleader::group::{Group, Leader, Member};
//!
//! ringleader::block_on(async {
//!     let dir = std::env::temp_dir();
//!     let id = std::process::id();
//!     std::fs::write(dir.join(format!("rl-grp-src-{id}")), b"one block of data")?;
//!     let src = File::open(dir.join(format!("rl-grp-src-{id}"))).await?;
//!     let a = File::create(dir.join(format!("rl-grp-a-{id}"))).await?;
//!     let b = File::create(dir.join(format!("rl-grp-b-{id}"))).await?;
//!
//!     let pool = FixedPool::new(1 << 16, 4)?;
//!     let mut lease = pool.lease(1 << 16).await?;
//!     let out = Group::new(&mut lease)
//!         .leader(Leader::read_fixed(&src, 0))  // READ_FIXED: 17 bytes (short: EOF)
//!         .member(Member::write_fixed(&a, 0))  // each member writes exactly those 17
//!         .member(Member::write_fixed(&b, 0))
//!         .await
//!         .check()?;
//!     assert_eq!(out.leader?, 17);
//!     assert_eq!(std::fs::read(dir.join(format!("rl-grp-b-{id}")))?, b"one block of data");
//!     for f in ["src", "a", "b"] {
//!         std::fs::remove_file(dir.join(format!("rl-grp-{f}-{id}")))?;
//!     }
//!     Ok::<_, std::io::Error>(())
//! }).unwrap();
//! ```
//!
//! # The contract (docs/design.md §4) and where it is kept
//!
//! - **G1** the executor's `GroupOp`: members wait outside the SQ and the driver pushes them
//!   all together when it reaps the leader's CQE, in the same tick, without a task poll;
//! - **G2** members are independent SQEs: no order among them;
//! - **G3** a group future resolves after every op's final CQE, `SEND_ZC` notifications
//!   included, and reports every result together ([`GroupOutput`]);
//! - **G4** a failed leader completes every member with `ECANCELED`, unsubmitted;
//! - **G5** a failed member fails only itself; [`GroupOutput::failed`], and [`Chain`] /
//!   [`GroupOutput::check`] stop a sequence at a failed group;
//! - **G6** members that read the leader's output get exactly the bytes it produced, or, in
//!   [`Group::zero_fill`] mode, the full length with the tail zeroed;
//! - **G7** overlap and range rules: views (`split_at_mut`) at compile time; group members
//!   at build time (`layout.rs`), as an `InvalidInput` (`EINVAL`) error, nothing submitted;
//! - **G8** every op keeps a `LeaseRef` (or the buffer ring's `Pick`) and its fd in its op
//!   data until its final CQE, which the executor keeps even if the future is dropped (and
//!   leaks if it is forgotten): a slot is never reused under the kernel;
//! - **G9** a group holds `&mut` on its lease, and a plain op future a `&` (readers) or a
//!   `&mut` view (writers), for their whole life; what outlives those borrows is the lease
//!   access rule below;
//! - **G10** [`Group::linked`]: one `IOSQE_IO_LINK` chain; chains broken by short results
//!   are finished by the runtime (`linked.rs`).
//!
//! # The lease access rule: drop, forget, panic
//!
//! A borrow ends when its future is dropped or `mem::forget`-ed; the kernel's use of the
//! lease does not. So the `LeaseRef` in each op's data has an access kind
//! ([`LeaseAccess`](ringleader_buf::LeaseAccess)): a **kernel writer** for the ops that write
//! into the lease (a `read_fixed`/`recv` leader, which zero-fill mode extends to the driver's
//! write at its CQE; `Member::read_fixed`/`Member::recv`; plain [`read_fixed_at`] and
//! [`recv`]), a **kernel reader** for those that read it (`write_fixed`, `write`,
//! `writev_fixed`, `send`, `send_zc`, `send_prefixed`; plain [`write_fixed_at`], [`send`],
//! [`send_zc`], [`sendv`]). While a writer is in flight the lease refuses `&` and `&mut`
//! access to its bytes; while a reader is, `&mut` (a panic naming the slot and the counts;
//! the `try_` forms return [`LeaseBusy`](ringleader_buf::LeaseBusy)). Hence:
//!
//! - **awaited**: every reference is released at the op's final CQE, before the future
//!   resolves; the lease is free again;
//! - **dropped**: the op is cancelled and its data (with its reference) released at its final
//!   CQE, `SEND_ZC` notification included. Ops that write into the lease also wait for that
//!   CQE in the drop (`settle_on_drop`), so the lease is usually free when the drop returns;
//!   ops that read it do not wait: the lease refuses `&mut` until the kernel is done;
//! - **forgotten**: the reference is leaked with the future: the lease refuses access
//!   forever (a writer: all access; a reader: `&mut`) and its slot is never reused;
//! - **panic**: unwinding through an op future drops it (as above);
//! - a new op or group on a lease that a dropped or forgotten op still uses in a conflicting
//!   way (any kernel op, for one that writes into the lease; a writer, for one that only
//!   reads it) is not submitted: it resolves to an `io::Error` of kind `ResourceBusy`.
//!
//! The counts are per slot. A view made with [`LeaseExt::view_mut`] on a free lease is never
//! refused because of the ops started from it or from its splits (they work on other
//! bytes); see `view.rs`.
//!
//! # Invariants
//!
//! - An SQE built here points only into a lease slot (or chosen ring buffer) and names only
//!   fds that its op's data keeps alive until its final CQE (`hold.rs`); the op's data holds
//!   a `LeaseRef` of the kind that matches what the SQE does to the lease.
//! - A group submits nothing before its first poll; dropping it un-polled does no I/O.
//!
//! Minimum kernel: 5.19 (buffer rings; fixed buffers and splice/tee are older); 6.0 for
//! `SEND_ZC`. Design notes: `docs/groups.md`.
//!
//! [`FixedPool`]: ringleader_buf::FixedPool
//! [`BufRing`]: ringleader_buf::BufRing
//! [`PipeLease`]: ringleader_buf::PipeLease
//! [`Lease`]: ringleader_buf::Lease

mod chain;
mod fd;
#[expect(
    clippy::module_inception,
    reason = "`group/group.rs` holds the `Group` type, as `pipe.rs` holds `PipeGroup`"
)]
mod group;
mod hold;
mod layout;
mod linked;
mod output;
mod pipe;
mod plain;
mod ring;
mod spec;
mod sqe;
mod vectored;
mod view;

/// `docs/groups.md`, whose example runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/groups.md")]
pub struct GroupsGuide;

pub use chain::Chain;
pub use fd::{FdHold, IoFd};
pub use group::{Group, GroupFuture};
pub use output::GroupOutput;
pub use pipe::{PipeGroup, PipeGroupFuture};
pub use plain::{LeaseIo, SENDV_MAX, read_fixed_at, recv, send, send_zc, sendv, write_fixed_at};
pub use ring::{RecvGroup, RecvGroupFuture};
pub use spec::{Leader, Member};
pub use view::{LeaseExt, LeaseSlice, LeaseSliceMut};
