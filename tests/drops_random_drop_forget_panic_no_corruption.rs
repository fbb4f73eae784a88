//! Issue 12, "prove it": 100,000 seeded random ops of every kind that reads or writes a lease
//! or an owned buffer, each ended at a random point in a random way, never corrupt memory,
//! never reuse a buffer under the kernel, and leak exactly what `mem::forget` leaks.
//!
//! Each op is made, then taken to a **stage** — unpolled (made, never polled: plain ops are
//! already pushed, groups are not), in flight (polled once, maybe fed, a few ticks), or done
//! (the kernel has finished every op it started, nothing collected) — and then meets its
//! **fate**: awaited, dropped, `mem::forget`-ed, dropped by a task that panics there
//! (`JoinError::Panic`), aborted (`JoinHandle::abort`), or dropped by user code running inside
//! the runtime: in a `with_submitter` closure, or in a waker's `clone` or `drop` while the
//! runtime stores it (`tests/support/borrowed_drop.rs`). Ops that must outlive the test's
//! stack frame (tasks, waker slots) own their lease through an `Rc<RefCell<_>>`; the others
//! borrow it from the stack, as users do, so a forgotten op ends its borrow for real.
//!
//! Cases: plain ops (`fd::read`/`write` on pipes, `lease_ops::read_fixed`/`write_fixed`/
//! `recv`), lease views (`group::read_fixed_at`/`write_fixed_at`/`send`/`send_zc`/`sendv`/
//! `recv`), groups (read leader with `write_fixed`, `send`, `send_zc`, `writev_fixed` members,
//! plain and zero-fill; striped reads; kernel-linked), chains, lanes (`send_in`,
//! `Member::in_lane`, `send_prefixed`, raw `Op::submit_in`), `RecvGroup`, `PipeGroup`. A third
//! of the iterations first fill every output pipe and socket, so that writes and sends wait in
//! the kernel until the test drains them.
//!
//! After the fates, every lease the test can still reach is tried with its `try_` accessors:
//! `&` is refused (busy) or gives bytes that never change afterwards and that only the lease
//! or the op could have put there; `&mut` is refused, or granted, and then half the time the
//! test scribbles over the lease, which no kernel op may see any more. Every free pool slot is
//! leased as a canary; then all inputs are fed and outputs drained until no op is in flight
//! (for a forgotten op too: it leaks, it still runs). Canaries must be intact;
//! each output holds what the op wrote, whole where the API promises it (pipe writes, lane
//! frames, datagrams), a prefix otherwise; awaited ops give exact results. Accounting, exact
//! after every iteration: op slots occupied = those of the forgotten ops; pool slots, buffer-
//! ring buffers, counted heap buffers and fds missing = those the forgotten ops hold; leases of
//! forgotten ops refuse access forever, every other lease is free. At the end of each seed a
//! census of the buffer ring, the fds, and the quarantine allocator (`tests/support/
//! quarantine.rs`, this binary's global allocator: a kernel write into a freed heap block
//! aborts with a report).
//!
//! On failure the case, seed and op are printed (also on a quarantine abort, from a `SIGABRT`
//! handler); `RINGLEADER_DROPS_SEED=<seed>` reruns that seed alone.

#[path = "support/borrowed_drop.rs"]
mod borrowed_drop;
mod common;
mod group_util;
#[path = "support/quarantine.rs"]
mod quarantine;

#[global_allocator]
static ALLOC: quarantine::Quarantine = quarantine::Quarantine;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream as StdUnix;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, Once, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use borrowed_drop::{Bystander, Trigger, drop_while_borrowed};
use common::{CountedBuf, Rng, fd_count, get};
use futures::poll;
use group_util::{pending, put, take};
use io_uring::{opcode, types};
use ringleader::buf::{BufRing, FixedPool, Lease, PipeLease};
use ringleader::group::{self, Group, GroupOutput, Leader, LeaseExt, Member, PipeGroup};
use ringleader::net::{OwnedIo, UnixStream};
use ringleader::{
    JoinError, fd, lease_ops,
    ops::{Completable, Cqe, Lane, Op, Orphan},
};

const SIZE: usize = 256;
const HALF: usize = SIZE / 2;
const SLOTS: usize = 64;
const RING: u16 = 64;
/// Forgets per seed run: each may keep a pool slot or a ring buffer forever.
const FORGETS: u64 = 24;
/// Capacity of the output pipes, so that a full one is cheap to fill and drain.
const PIPE_CAP: usize = 4096;
const FILLER: u8 = 0xEE;
const SEEDS: [u64; 4] = [
    0x5eed_0001_d0d0_cafe,
    0x9e37_79b9_7f4a_7c15,
    0x0123_4567_89ab_cdef,
    0xdead_beef_0bad_f00d,
];
const LEASE_SALT: u8 = 0x5a;
const IN_SALT: u8 = 0xa5;
const IN2_SALT: u8 = 0x3c;
const LANE_SALT: u8 = 0x77;
const SCRIBBLE_SALT: u8 = 0xc3;

type Fut<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// Per-op bytes: lease contents, inputs and frames differ at every position.
fn pat(id: u32, salt: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (id as u8).wrapping_mul(29) ^ (i as u8).wrapping_mul(7) ^ ((i >> 8) as u8) ^ salt)
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    Plain,
    Views,
    Groups,
    Chains,
    Lanes,
    RecvGroups,
    PipeGroups,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    FdRead,
    FdWrite,
    LeaseRead,
    LeaseWrite,
    RingRecv,
    ViewRead,
    ViewReadPart,
    ViewWrite,
    ViewSend,
    ViewSendZc,
    ViewSendv,
    ViewRecv,
    GroupFan,
    GroupZeroFill,
    GroupStriped,
    GroupLinked,
    Chain,
    LaneSendIn,
    LaneMember,
    LanePrefixed,
    LaneRaw,
    RecvGroup,
    PipeSplice,
    PipeHeld,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LeaseUse {
    None,
    /// The op takes the lease by value.
    Owned,
    /// The op borrows it.
    Borrowed,
    /// A `PipeLease`, borrowed.
    Pipe,
}

impl Case {
    fn kinds(self) -> &'static [Kind] {
        use Kind::*;
        match self {
            Case::Plain => &[FdRead, FdWrite, LeaseRead, LeaseWrite, RingRecv],
            Case::Views => &[
                ViewRead,
                ViewReadPart,
                ViewWrite,
                ViewSend,
                ViewSendZc,
                ViewSendv,
                ViewRecv,
            ],
            Case::Groups => &[GroupFan, GroupZeroFill, GroupStriped, GroupLinked],
            Case::Chains => &[Chain],
            Case::Lanes => &[LaneSendIn, LaneMember, LanePrefixed, LaneRaw],
            Case::RecvGroups => &[RecvGroup],
            Case::PipeGroups => &[PipeSplice, PipeHeld],
        }
    }
}

impl Kind {
    fn lease(self) -> LeaseUse {
        use Kind::*;
        match self {
            FdRead | FdWrite | RingRecv | LaneSendIn | LaneRaw | RecvGroup => LeaseUse::None,
            LeaseRead | LeaseWrite => LeaseUse::Owned,
            PipeSplice | PipeHeld => LeaseUse::Pipe,
            _ => LeaseUse::Borrowed,
        }
    }

    /// Whether making the op pushes it (groups wait for their first poll).
    fn eager(self) -> bool {
        use Kind::*;
        matches!(
            self,
            FdRead
                | FdWrite
                | LeaseRead
                | LeaseWrite
                | RingRecv
                | ViewRead
                | ViewReadPart
                | ViewWrite
                | ViewSend
                | ViewSendZc
                | ViewSendv
                | ViewRecv
                | LaneSendIn
                | LaneRaw
        )
    }

    /// Whether a kernel op writes into the pool lease (a kernel writer while in flight).
    fn writes_lease(self) -> bool {
        use Kind::*;
        matches!(
            self,
            LeaseRead
                | ViewRead
                | ViewReadPart
                | ViewRecv
                | GroupFan
                | GroupZeroFill
                | GroupStriped
                | GroupLinked
                | Chain
        )
    }

    /// Op slots the op occupies once made (eager) or polled: what a forgotten one keeps.
    fn ring_ops(self) -> u64 {
        use Kind::*;
        match self {
            GroupFan | GroupZeroFill => 5,
            RecvGroup => 4,
            GroupStriped | GroupLinked | PipeSplice => 3,
            Chain | LaneMember | LanePrefixed | PipeHeld => 2,
            _ => 1,
        }
    }

    /// Fds of the rig the op names (and so keeps open while it lives).
    fn fds(self, rig: &Rig) -> Vec<RawFd> {
        use Kind::*;
        let (pin, pout) = (
            |i: usize| rig.pin[i].0.as_raw_fd(),
            |i: usize| rig.pout[i].1.as_raw_fd(),
        );
        let (sout, sin, udp) = (
            rig.sout.0.as_raw_fd(),
            rig.sin.1.as_raw_fd(),
            rig.udp.as_raw_fd(),
        );
        match self {
            FdRead | LeaseRead | ViewRead | ViewReadPart => vec![pin(0)],
            FdWrite | LeaseWrite | ViewWrite => vec![pout(0)],
            RingRecv | ViewRecv => vec![sin],
            ViewSend | ViewSendv => vec![sout],
            ViewSendZc => vec![udp],
            GroupFan | GroupZeroFill => vec![pin(0), pout(0), sout, udp, pout(1)],
            GroupStriped => vec![pin(0), sin],
            GroupLinked => vec![pin(0), pout(0), pout(1)],
            // The later stages are closures: they name their fds only when they run.
            Chain => vec![pin(0), pout(0)],
            LaneSendIn | LaneMember | LanePrefixed | LaneRaw => vec![],
            RecvGroup => vec![sin, pout(0), sout, udp],
            PipeSplice => vec![pin(0), pout(0), pout(1), pout(2)],
            PipeHeld => vec![pout(0), pout(1)],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Await,
    Drop,
    Forget,
    Panic,
    Abort,
    InSubmitter,
    WakerClone,
    WakerDrop,
}

const FATES: [Fate; 8] = [
    Fate::Await,
    Fate::Drop,
    Fate::Forget,
    Fate::Panic,
    Fate::Abort,
    Fate::InSubmitter,
    Fate::WakerClone,
    Fate::WakerDrop,
];

impl Fate {
    /// Whether the op must own its lease (it outlives the test's stack frame).
    fn owned(self) -> bool {
        matches!(
            self,
            Fate::Panic | Fate::Abort | Fate::WakerClone | Fate::WakerDrop
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Unpolled,
    InFlight,
    Done,
}

const STAGES: [Stage; 3] = [Stage::Unpolled, Stage::InFlight, Stage::Done];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum In {
    Pipe0,
    Pipe1,
    Sock,
}

/// Outputs: three pipes and a stream socket (bytes), and a UDP socket (datagrams).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Out {
    P0,
    P1,
    P2,
    Sock,
    Udp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    /// All or nothing (a pipe write of at most `PIPE_BUF`, a datagram).
    Whole,
    /// Any prefix (a stream send, a splice or tee).
    Prefix,
}

/// What one op does and what it may leave behind.
#[derive(Clone, Debug)]
struct Plan {
    id: u32,
    kind: Kind,
    /// The main length (input, write or frame body).
    n: usize,
    /// A second length or offset (views, stripes, chains).
    off: usize,
    end: usize,
    /// The lease's (or pipe lease's, or owned buffer's) initial contents.
    fill: Vec<u8>,
    inputs: Vec<(In, Vec<u8>)>,
    outputs: Vec<(Out, Vec<u8>, Rule)>,
    /// The lease's data (`..len()`) once the op completed.
    after: Option<Vec<u8>>,
    /// What the kernel may have written into the lease: `(offset, bytes)`.
    alts: Vec<(usize, Vec<u8>)>,
    /// A lane frame: header (id, length) and body.
    frame: Vec<u8>,
}

fn plan(kind: Kind, id: u32, rng: &mut Rng) -> Plan {
    use Kind::*;
    let below = |rng: &mut Rng, n: usize| rng.below(n as u64) as usize;
    let n = 1 + below(rng, SIZE);
    let fill = pat(id, LEASE_SALT, SIZE);
    let input = pat(id, IN_SALT, n);
    let mut p = Plan {
        id,
        kind,
        n,
        off: 0,
        end: 0,
        fill: fill.clone(),
        inputs: vec![],
        outputs: vec![],
        after: None,
        alts: vec![],
        frame: vec![],
    };
    match kind {
        FdRead | LeaseRead => p.inputs = vec![(In::Pipe0, input)],
        FdWrite | LeaseWrite => {
            p.fill.truncate(n);
            p.outputs = vec![(Out::P0, fill[..n].to_vec(), Rule::Whole)];
        }
        RingRecv => p.inputs = vec![(In::Sock, input)],
        ViewRead | ViewRecv => {
            p.after = Some(input.clone());
            p.alts = vec![(0, input.clone())];
            let from = if kind == ViewRead {
                In::Pipe0
            } else {
                In::Sock
            };
            p.inputs = vec![(from, input)];
        }
        ViewReadPart => {
            p.n = 1 + below(rng, HALF);
            p.off = below(rng, HALF);
            let input = pat(id, IN_SALT, p.n);
            let mut after = fill.clone();
            after[p.off..p.off + p.n].copy_from_slice(&input);
            p.after = Some(after);
            p.alts = vec![(p.off, input.clone())];
            p.inputs = vec![(In::Pipe0, input)];
        }
        ViewWrite => {
            p.off = below(rng, SIZE);
            p.end = p.off + 1 + below(rng, SIZE - p.off);
            p.outputs = vec![(Out::P0, fill[p.off..p.end].to_vec(), Rule::Whole)];
        }
        ViewSend | ViewSendv => {
            p.off = below(rng, n + 1);
            p.outputs = vec![(Out::Sock, fill[..n].to_vec(), Rule::Prefix)];
        }
        ViewSendZc => p.outputs = vec![(Out::Udp, fill[..n].to_vec(), Rule::Whole)],
        GroupFan | GroupZeroFill => {
            let mut data = input.clone();
            if kind == GroupZeroFill {
                data.resize(SIZE, 0);
                p.alts.push((n, vec![0; SIZE - n]));
            }
            p.alts.push((0, input.clone()));
            let mut v = data[..data.len().min(64)].to_vec();
            v.extend_from_slice(&data[data.len().min(128)..]);
            p.outputs = vec![
                (Out::P0, data.clone(), Rule::Whole),
                (Out::Sock, data.clone(), Rule::Prefix),
                (Out::Udp, data.clone(), Rule::Whole),
                (Out::P1, v, Rule::Whole),
            ];
            p.after = Some(data);
            p.inputs = vec![(In::Pipe0, input)];
        }
        GroupStriped => {
            p.n = 1 + below(rng, HALF);
            p.end = 1 + below(rng, HALF);
            let (a, b) = (pat(id, IN_SALT, p.n), pat(id, IN2_SALT, p.end));
            let mut after = fill.clone();
            after[..p.n].copy_from_slice(&a);
            after[HALF..HALF + p.end].copy_from_slice(&b);
            p.after = Some(after);
            p.alts = vec![(0, a.clone()), (HALF, b.clone())];
            p.inputs = vec![(In::Pipe0, a), (In::Sock, b)];
        }
        GroupLinked => {
            p.outputs = vec![
                (Out::P0, input.clone(), Rule::Whole),
                (Out::P1, input.clone(), Rule::Whole),
            ];
            p.after = Some(input.clone());
            p.alts = vec![(0, input.clone())];
            p.inputs = vec![(In::Pipe0, input)];
        }
        Chain => {
            p.end = 1 + below(rng, SIZE);
            let second = pat(id, IN2_SALT, p.end);
            p.outputs = vec![
                (Out::P0, input.clone(), Rule::Whole),
                (Out::Sock, second.clone(), Rule::Prefix),
                (Out::P1, second.clone(), Rule::Whole),
            ];
            p.after = Some(second.clone());
            p.alts = vec![(0, input.clone()), (0, second.clone())];
            p.inputs = vec![(In::Pipe0, input), (In::Pipe1, second)];
        }
        LaneSendIn | LaneMember | LanePrefixed | LaneRaw => {
            p.n = 1 + below(rng, SIZE - 8);
            let body = pat(id, LANE_SALT, p.n);
            p.frame = id.to_le_bytes().to_vec();
            p.frame.extend_from_slice(&(p.n as u32).to_le_bytes());
            p.frame.extend_from_slice(&body);
            p.fill = if kind == LanePrefixed {
                body
            } else {
                p.frame.clone()
            };
        }
        RecvGroup => {
            p.outputs = vec![
                (Out::P0, input.clone(), Rule::Whole),
                (Out::Sock, input.clone(), Rule::Prefix),
                (Out::Udp, input.clone(), Rule::Whole),
            ];
            p.inputs = vec![(In::Sock, input)];
        }
        PipeSplice => {
            p.outputs = [Out::P0, Out::P1, Out::P2]
                .map(|o| (o, input.clone(), Rule::Prefix))
                .to_vec();
            p.inputs = vec![(In::Pipe0, input)];
        }
        PipeHeld => {
            p.fill = input.clone();
            p.outputs = [Out::P0, Out::P1]
                .map(|o| (o, input.clone(), Rule::Prefix))
                .to_vec();
        }
    }
    p
}

/// What an op may hold of the test's: a pool lease, a pipe lease.
#[derive(Default)]
struct Held {
    lease: Option<Lease>,
    pipe: Option<PipeLease>,
}

/// The lane of a lanes iteration: a fresh socket (a failed lane may leave a cut frame).
struct LaneRig {
    sock: Rc<UnixStream>,
    lane: Lane,
    peer: StdUnix,
    /// Ids in the order their ops entered the lane (ops pushed when made).
    order: Vec<u32>,
    /// Ids whose op reported its whole frame sent.
    sent: Vec<u32>,
}

/// What the outputs received this iteration.
#[derive(Default)]
struct Got {
    bytes: [Vec<u8>; 4],
    /// Filler bytes still to strip from the front of each output.
    skip: [usize; 4],
    dgrams: Vec<Vec<u8>>,
    lane: Vec<u8>,
    lane_skip: usize,
}

fn strip(skip: &mut usize, acc: &mut Vec<u8>, mut bytes: Vec<u8>) {
    let s = (*skip).min(bytes.len());
    assert!(
        bytes[..s].iter().all(|&b| b == FILLER),
        "output filler changed"
    );
    *skip -= s;
    acc.extend(bytes.drain(s..));
}

/// Everything ops use, for one seed run.
struct Rig {
    pool: FixedPool,
    ring: BufRing,
    /// Input pipes: ops read `.0`, the test feeds `.1`.
    pin: [(Rc<OwnedFd>, Rc<OwnedFd>); 2],
    /// Output pipes (4 KiB): ops write `.1`, the test drains `.0`.
    pout: [(Rc<OwnedFd>, Rc<OwnedFd>); 3],
    /// Ops send on `.0`; drained at `.1`.
    sout: (UnixStream, UnixStream),
    /// Fed at `.0`; ops receive on `.1`.
    sin: (UnixStream, UnixStream),
    /// A connected UDP socket for `SEND_ZC`, and its peer.
    udp: Rc<OwnedFd>,
    peer: std::net::UdpSocket,
    lane: RefCell<Option<LaneRig>>,
    /// Per op of the iteration: the plan, until its inputs are fed.
    inputs: RefCell<Vec<Option<Rc<Plan>>>>,
    got: RefCell<Got>,
    made: Cell<usize>,
    drops: std::sync::Arc<AtomicUsize>,
}

fn small_sndbuf(fd: RawFd) {
    let v: libc::c_int = 4096;
    // SAFETY: SO_SNDBUF takes an int, read from `v` during the call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_SNDBUF: {}", io::Error::last_os_error());
}

/// Send filler on a stream socket until it is full; the byte count.
fn fill_socket(fd: RawFd) -> usize {
    let chunk = [FILLER; 4096];
    let mut total = 0;
    loop {
        // SAFETY: `chunk` is valid for its length during the call.
        let n = unsafe { libc::send(fd, chunk.as_ptr().cast(), chunk.len(), libc::MSG_DONTWAIT) };
        if n < 0 {
            let e = io::Error::last_os_error();
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "filler send: {e}");
            return total;
        }
        total += n as usize;
    }
}

fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD reads only the descriptor's flags.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

impl Rig {
    fn new() -> Rig {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.connect(peer.local_addr().unwrap()).unwrap();
        peer.connect(udp.local_addr().unwrap()).unwrap();
        peer.set_nonblocking(true).unwrap();
        let pout = [group_util::pipe(), group_util::pipe(), group_util::pipe()];
        for (_, w) in &pout {
            // SAFETY: F_SETPIPE_SZ takes an int and touches no user memory.
            let cap = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_CAP as i32) };
            assert_eq!(cap, PIPE_CAP as i32, "F_SETPIPE_SZ");
        }
        let sout = UnixStream::pair().unwrap();
        small_sndbuf(sout.0.as_raw_fd());
        Rig {
            pool: FixedPool::new(SIZE, SLOTS).unwrap(),
            ring: BufRing::new_fixed(RING, SIZE).unwrap(),
            pin: [group_util::pipe(), group_util::pipe()],
            pout,
            sout,
            sin: UnixStream::pair().unwrap(),
            udp: Rc::new(OwnedFd::from(udp)),
            peer,
            lane: RefCell::new(None),
            inputs: RefCell::new(Vec::new()),
            got: RefCell::new(Got::default()),
            made: Cell::new(0),
            drops: common::counter(),
        }
    }

    fn fds(&self) -> Vec<RawFd> {
        let mut v = vec![
            self.sout.0.as_raw_fd(),
            self.sout.1.as_raw_fd(),
            self.sin.0.as_raw_fd(),
            self.sin.1.as_raw_fd(),
            self.udp.as_raw_fd(),
            self.peer.as_raw_fd(),
        ];
        for (r, w) in self.pin.iter().chain(&self.pout) {
            v.extend([r.as_raw_fd(), w.as_raw_fd()]);
        }
        v
    }

    fn counted(&self, bytes: &[u8], cap: usize) -> CountedBuf {
        self.made.set(self.made.get() + 1);
        let mut b = CountedBuf::new(cap, &self.drops);
        b.bytes.extend_from_slice(bytes);
        b
    }

    /// A fresh socket and lane for a lanes iteration.
    fn open_lane(&self) {
        let (a, b) = StdUnix::pair().unwrap();
        small_sndbuf(a.as_raw_fd());
        *self.lane.borrow_mut() = Some(LaneRig {
            sock: Rc::new(UnixStream::from_std(a).unwrap()),
            lane: Lane::new(),
            peer: b,
            order: vec![],
            sent: vec![],
        });
    }

    fn lane_parts(&self) -> (Rc<UnixStream>, Lane) {
        let l = self.lane.borrow();
        let l = l.as_ref().expect("a lanes iteration");
        (Rc::clone(&l.sock), l.lane.clone())
    }

    /// Fill every output, so that the ops' writes and sends wait in the kernel.
    fn fill_outputs(&self) {
        let mut got = self.got.borrow_mut();
        for (i, (r, w)) in self.pout.iter().enumerate() {
            assert_eq!(pending(r), 0, "output pipe {i} drained");
            put(w, &[FILLER; PIPE_CAP]);
            got.skip[i] += PIPE_CAP;
        }
        got.skip[3] += fill_socket(self.sout.0.as_raw_fd());
        if let Some(l) = &*self.lane.borrow() {
            got.lane_skip += fill_socket(l.sock.as_raw_fd());
        }
    }

    fn feed(&self, job: usize) {
        let Some(plan) = self.inputs.borrow_mut()[job].take() else {
            return;
        };
        for (to, bytes) in &plan.inputs {
            match to {
                In::Pipe0 => put(&self.pin[0].1, bytes),
                In::Pipe1 => put(&self.pin[1].1, bytes),
                In::Sock => put(&self.sin.0, bytes),
            }
        }
    }

    fn feed_all(&self) {
        let n = self.inputs.borrow().len();
        (0..n).for_each(|i| self.feed(i));
    }

    /// Move what the outputs hold now into `got`.
    fn drain(&self) {
        let mut got = self.got.borrow_mut();
        let got = &mut *got;
        let outs = [&self.pout[0].0, &self.pout[1].0, &self.pout[2].0];
        for (i, r) in outs.into_iter().enumerate() {
            strip(&mut got.skip[i], &mut got.bytes[i], take(r));
        }
        strip(&mut got.skip[3], &mut got.bytes[3], take(&self.sout.1));
        let mut buf = [0u8; 2048];
        loop {
            match self.peer.recv(&mut buf) {
                Ok(n) => got.dgrams.push(buf[..n].to_vec()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("udp peer recv: {e}"),
            }
        }
        if let Some(l) = &*self.lane.borrow() {
            strip(&mut got.lane_skip, &mut got.lane, take(&l.peer));
        }
    }

    /// Feed and drain until no op is in flight.
    async fn quiet(&self, what: What) {
        let start = Instant::now();
        for i in 0u64.. {
            self.feed_all();
            self.drain();
            if ringleader::runtime::stats().ops_in_flight == 0 {
                // Deferred drops and releases happen at the next ticks.
                ringleader::yield_now().await;
                ringleader::yield_now().await;
                if ringleader::runtime::stats().ops_in_flight == 0 {
                    return;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{what}: ops still in flight after 10 s: {:?}",
                ringleader::runtime::stats()
            );
            if i % 128 == 127 {
                ringleader::time::sleep(Duration::from_millis(1)).await;
            } else {
                ringleader::yield_now().await;
            }
        }
    }

    /// Poll `fut` to completion, feeding and draining meanwhile.
    async fn drive(&self, mut fut: Fut<'_>, what: What) {
        let start = Instant::now();
        for i in 0u64.. {
            if poll!(fut.as_mut()).is_ready() {
                return;
            }
            self.feed_all();
            self.drain();
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{what}: not complete after 10 s: {:?}",
                ringleader::runtime::stats()
            );
            if i % 128 == 127 {
                ringleader::time::sleep(Duration::from_millis(1)).await;
            } else {
                ringleader::yield_now().await;
            }
        }
    }
}

fn want(res: &io::Result<usize>, n: usize, id: u32, what: &str) {
    match res {
        Ok(got) => assert_eq!(*got, n, "op {id}: {what}: byte count"),
        Err(e) => panic!("op {id}: {what} failed: {e}"),
    }
}

fn want_group(out: &GroupOutput, leader: usize, members: &[usize], plan: &Plan) {
    let ok = matches!(&out.leader, Ok(n) if *n == leader)
        && out.members.len() == members.len()
        && out
            .members
            .iter()
            .zip(members)
            .all(|(r, n)| matches!(r, Ok(m) if m == n));
    assert!(
        ok,
        "op {} ({:?}): group results {out:?}, expected leader Ok({leader}), members \
         {members:?}",
        plan.id, plan.kind
    );
}

/// A lane op's result: its whole frame, or a failure of a lane that failed.
fn lane_result(rig: &Rig, lane: &Lane, ok: bool, id: u32) {
    if ok {
        rig.lane.borrow_mut().as_mut().unwrap().sent.push(id);
    } else {
        assert!(
            lane.is_failed(),
            "op {id}: a lane op failed in a lane that did not"
        );
    }
}

/// Resources of a raw `Op::submit_in` send.
struct RawSend {
    _buf: CountedBuf,
    _sock: Rc<UnixStream>,
}

impl Orphan for RawSend {}

impl Completable for RawSend {
    type Output = i32;
    fn complete(self, cqe: Cqe) -> i32 {
        cqe.result
    }
}

/// Make op `plan`: eager kinds are pushed here. The future checks the op's results.
fn make_fut<'a>(rig: &'a Rig, plan: &'a Plan, held: &'a mut Held) -> Fut<'a> {
    use Kind::*;
    let (id, n) = (plan.id, plan.n);
    let input = |i: usize| plan.inputs[i].1.as_slice();
    match plan.kind {
        FdRead => {
            let op = fd::read(&rig.pin[0].0, rig.counted(&[], SIZE), u64::MAX);
            Box::pin(async move {
                let (r, buf) = op.await;
                want(&r, n, id, "fd::read");
                assert_eq!(buf.bytes, input(0), "op {id}: bytes read");
            })
        }
        FdWrite => {
            let op = fd::write(&rig.pout[0].1, rig.counted(&plan.fill, n), u64::MAX);
            Box::pin(async move { want(&op.await.0, n, id, "fd::write") })
        }
        LeaseRead => {
            let op = lease_ops::read_fixed(&rig.pin[0].0, held.lease.take().unwrap(), u64::MAX);
            Box::pin(async move {
                let (r, lease) = op.await;
                want(&r, n, id, "lease_ops::read_fixed");
                assert_eq!(&lease[..], input(0), "op {id}: bytes read");
            })
        }
        LeaseWrite => {
            let op = lease_ops::write_fixed(&rig.pout[0].1, held.lease.take().unwrap(), u64::MAX);
            Box::pin(async move { want(&op.await.0, n, id, "lease_ops::write_fixed") })
        }
        RingRecv => {
            let op = lease_ops::recv(&rig.sin.1, &rig.ring);
            Box::pin(async move {
                let lease = op.await.unwrap().expect("data");
                assert_eq!(&lease[..], input(0), "op {id}: bytes received");
            })
        }
        ViewRead => {
            let op = group::read_fixed_at(&rig.pin[0].0, held.lease.as_mut().unwrap(), u64::MAX);
            Box::pin(async move { want(&op.await, n, id, "read_fixed_at") })
        }
        ViewReadPart => {
            let lease = held.lease.as_mut().unwrap();
            let view = lease.view_mut(plan.off..plan.off + HALF);
            let op = group::read_fixed_at(&rig.pin[0].0, view, u64::MAX);
            Box::pin(async move { want(&op.await, n, id, "read_fixed_at (view)") })
        }
        ViewWrite => {
            let view = held.lease.as_ref().unwrap().view(plan.off..plan.end);
            let op = group::write_fixed_at(&rig.pout[0].1, view, u64::MAX);
            Box::pin(async move { want(&op.await, plan.end - plan.off, id, "write_fixed_at") })
        }
        ViewSend => {
            let op = group::send(&rig.sout.0, held.lease.as_ref().unwrap().view(..n));
            Box::pin(async move { want(&op.await, n, id, "send") })
        }
        ViewSendZc => {
            let op = group::send_zc(&rig.udp, held.lease.as_ref().unwrap().view(..n));
            Box::pin(async move { want(&op.await, n, id, "send_zc") })
        }
        ViewSendv => {
            let lease = held.lease.as_ref().unwrap();
            let views = [lease.view(..plan.off), lease.view(plan.off..n)];
            let op = group::sendv(&rig.sout.0, views, 0);
            Box::pin(async move { want(&op.await, n, id, "sendv") })
        }
        ViewRecv => {
            let op = group::recv(&rig.sin.1, held.lease.as_mut().unwrap());
            Box::pin(async move { want(&op.await, n, id, "recv") })
        }
        GroupFan | GroupZeroFill => {
            let mut g = Group::new(held.lease.as_mut().unwrap())
                .leader(Leader::read_fixed(&rig.pin[0].0, u64::MAX))
                .member(Member::write_fixed(&rig.pout[0].1, u64::MAX))
                .member(Member::send(&rig.sout.0))
                .member(Member::send_zc(&rig.udp))
                .member(Member::writev_fixed(
                    &rig.pout[1].1,
                    u64::MAX,
                    [0..64, 128..SIZE],
                ));
            let d = if plan.kind == GroupZeroFill {
                g = g.zero_fill();
                SIZE
            } else {
                n
            };
            let v = d.min(64) + d.saturating_sub(128);
            let fut = g.into_future();
            Box::pin(async move { want_group(&fut.await, n, &[d, d, d, v], plan) })
        }
        GroupStriped => {
            let fut = Group::new(held.lease.as_mut().unwrap())
                .leader(Leader::nop())
                .member(Member::read_fixed(&rig.pin[0].0, u64::MAX).at(..HALF))
                .member(Member::recv(&rig.sin.1).at(HALF..))
                .into_future();
            Box::pin(async move { want_group(&fut.await, 0, &[n, plan.end], plan) })
        }
        GroupLinked => {
            let fut = Group::new(held.lease.as_mut().unwrap())
                .leader(Leader::read_fixed(&rig.pin[0].0, u64::MAX))
                .member(Member::write_fixed(&rig.pout[0].1, u64::MAX))
                .member(Member::write(&rig.pout[1].1, u64::MAX))
                .linked()
                .into_future();
            Box::pin(async move { want_group(&fut.await, n, &[n, n], plan) })
        }
        Chain => {
            let chain: group::Chain<'a> = Group::new(held.lease.as_mut().unwrap())
                .leader(Leader::read_fixed(&rig.pin[0].0, u64::MAX))
                .member(Member::write_fixed(&rig.pout[0].1, u64::MAX))
                .then(move |l| {
                    Group::new(l)
                        .leader(Leader::read_fixed(&rig.pin[1].0, u64::MAX))
                        .member(Member::send(&rig.sout.0))
                })
                .then(move |l| Group::new(l).member(Member::write(&rig.pout[1].1, u64::MAX)));
            Box::pin(async move {
                let outs = chain.await;
                assert_eq!(outs.len(), 3, "op {id}: every group of the chain ran");
                want_group(&outs[0], n, &[n], plan);
                want_group(&outs[1], plan.end, &[plan.end], plan);
                want_group(&outs[2], 0, &[plan.end], plan);
            })
        }
        LaneSendIn | LaneRaw => {
            let (sock, lane) = rig.lane_parts();
            let len = plan.frame.len();
            let buf = rig.counted(&plan.frame, len);
            rig.lane.borrow_mut().as_mut().unwrap().order.push(id);
            if plan.kind == LaneSendIn {
                let op = sock.send_in(&lane, buf);
                return Box::pin(async move {
                    let ok = op.await.0.is_ok_and(|n| n == len);
                    lane_result(rig, &lane, ok, id);
                });
            }
            let entry =
                opcode::Send::new(types::Fd(sock.as_raw_fd()), buf.bytes.as_ptr(), len as u32)
                    .flags(libc::MSG_WAITALL | libc::MSG_NOSIGNAL)
                    .build();
            let data = RawSend {
                _buf: buf,
                _sock: Rc::clone(&sock),
            };
            // SAFETY: the SQE points at `len` initialised bytes of the `CountedBuf`'s heap
            // allocation, which does not move with it, owned by the op's data until its final
            // CQE; the socket it names is kept open by the `Rc` in the same data.
            let op = unsafe { Op::submit_in(&lane, entry, data) };
            Box::pin(async move {
                let ok = op.await == len as i32;
                lane_result(rig, &lane, ok, id);
            })
        }
        LaneMember | LanePrefixed => {
            let (sock, lane) = rig.lane_parts();
            let member = if plan.kind == LaneMember {
                Member::send(&*sock)
            } else {
                Member::send_prefixed(&*sock, plan.frame[..8].to_vec())
            };
            let fut = Group::new(held.lease.as_mut().unwrap())
                .member(member.in_lane(&lane))
                .into_future();
            Box::pin(async move {
                let out = fut.await;
                let ok = matches!(out.members[..], [Ok(m)] if m == plan.frame.len());
                lane_result(rig, &lane, ok, id);
            })
        }
        RecvGroup => {
            let fut = group::RecvGroup::new(&rig.sin.1, &rig.ring)
                .member(Member::write_fixed(&rig.pout[0].1, u64::MAX))
                .member(Member::send(&rig.sout.0))
                .member(Member::send_zc(&rig.udp))
                .into_future();
            Box::pin(async move {
                let (out, lease) = fut.await;
                want_group(&out, n, &[n, n, n], plan);
                assert_eq!(
                    &lease.expect("data")[..],
                    input(0),
                    "op {id}: bytes received"
                );
            })
        }
        PipeSplice => {
            let fut = PipeGroup::new(held.pipe.as_mut().unwrap())
                .splice_from(&rig.pin[0].0, None, n)
                .tee_to(&rig.pout[0].1)
                .tee_to(&rig.pout[1].1)
                .drain_to(&rig.pout[2].1, None)
                .into_future();
            Box::pin(async move { want_group(&fut.await, n, &[n, n, n], plan) })
        }
        PipeHeld => {
            let fut = PipeGroup::new(held.pipe.as_mut().unwrap())
                .tee_to(&rig.pout[0].1)
                .drain_to(&rig.pout[1].1, None)
                .into_future();
            Box::pin(async move { want_group(&fut.await, 0, &[n, n], plan) })
        }
    }
}

/// Returns `Pending` once (waking its task), then `Ready`.
struct Gate(bool);

impl Future for Gate {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Op `plan` on a lease the future owns: the first poll makes the op, the second polls it.
#[expect(
    clippy::await_holding_refcell_ref,
    reason = "the future holds its lease the way a stack frame does, until it is dropped"
)]
fn owned_fut(rig: Rc<Rig>, plan: Rc<Plan>, cell: Rc<RefCell<Held>>) -> Fut<'static> {
    Box::pin(async move {
        let mut held = cell.borrow_mut();
        let fut = make_fut(&rig, &plan, &mut held);
        Gate(false).await;
        fut.await;
    })
}

/// The payload of the tasks that panic on purpose (the panic hook keeps them quiet).
struct FatePanic;

/// Flags a task shares with the test.
#[derive(Default)]
struct TaskFlags {
    reached: Cell<bool>,
    go: Cell<bool>,
    gone: Cell<bool>,
    completed: Cell<bool>,
}

struct SetGone(Rc<TaskFlags>);

impl Drop for SetGone {
    fn drop(&mut self) {
        self.0.gone.set(true);
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(non-string payload)".into())
}

/// Poll `fut` `polls` times; whether it completed.
async fn reach(fut: &mut Fut<'_>, polls: usize) -> bool {
    for _ in 0..polls {
        if poll!(fut.as_mut()).is_ready() {
            return true;
        }
    }
    false
}

#[derive(Default)]
struct Tally {
    ops: u64,
    fates: [[u64; 3]; 8],
    kinds: BTreeMap<Kind, u64>,
    /// Ops that completed during their stage polls (nothing left to drop).
    collected: u64,
    pressure: u64,
    /// Leases whose bytes were refused right after their op's fate, and read; same for
    /// `&mut`, and leases the test then scribbled over.
    refused: u64,
    readable: u64,
    mut_refused: u64,
    mut_granted: u64,
    scribbled: u64,
    /// Free pool slots leased as canaries.
    canaries: u64,
    forgotten_slots: u64,
    drops_deferred: u64,
    settle_timeouts: u64,
}

/// Static context for the failure report (also read by the `SIGABRT` handler).
static CASE_NAME: AtomicUsize = AtomicUsize::new(usize::MAX);
static SEED: AtomicU64 = AtomicU64::new(0);
static OP: AtomicU64 = AtomicU64::new(0);
const CASE_NAMES: [&str; 7] = [
    "Plain",
    "Views",
    "Groups",
    "Chains",
    "Lanes",
    "RecvGroups",
    "PipeGroups",
];

extern "C" fn on_abort(_: libc::c_int) {
    struct Buf([u8; 200], usize);
    impl std::fmt::Write for Buf {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let n = s.len().min(self.0.len() - self.1);
            self.0[self.1..self.1 + n].copy_from_slice(&s.as_bytes()[..n]);
            self.1 += n;
            Ok(())
        }
    }
    let mut b = Buf([0; 200], 0);
    let case = CASE_NAMES
        .get(CASE_NAME.load(Ordering::Relaxed))
        .unwrap_or(&"?");
    let _ = std::fmt::Write::write_fmt(
        &mut b,
        format_args!(
            "\ndrops test aborted: case {case}, seed {:#x}, op {} (rerun with \
             RINGLEADER_DROPS_SEED={:#x})\n",
            SEED.load(Ordering::Relaxed),
            OP.load(Ordering::Relaxed),
            SEED.load(Ordering::Relaxed)
        ),
    );
    // SAFETY: writes `b.1` initialised bytes of a stack buffer to stderr; async-signal-safe.
    unsafe { libc::write(2, b.0.as_ptr().cast(), b.1) };
}

fn install_hooks() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<FatePanic>() {
                prev(info);
            }
        }));
        // SAFETY: installs a handler that only formats into a stack buffer and `write`s it.
        unsafe { libc::signal(libc::SIGABRT, on_abort as *const () as libc::sighandler_t) };
    });
}

/// Prints the seed to rerun when the test fails.
struct Report(Case, u64);

impl Drop for Report {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "drops test failed: case {:?}, seed {:#x}, op {} (rerun with \
                 RINGLEADER_DROPS_SEED={:#x})",
                self.0,
                self.1,
                OP.load(Ordering::Relaxed),
                self.1
            );
        }
    }
}

/// Exact expectations for one seed run.
struct Books {
    next_id: u32,
    forgets_left: u64,
    forget_odds: u64,
    slots_base: u64,
    slots_leaked: u64,
    pool_leaked: usize,
    ring_claimed: usize,
    ring_lost: usize,
    counted_leaked: usize,
    rig_fds: BTreeSet<RawFd>,
    /// Fds of per-iteration sockets and pipe leases kept open by forgotten ops.
    iteration_fds: usize,
    tally: Tally,
}

/// How a job ended up.
#[derive(Default, Clone, Copy)]
struct Status {
    /// The op's future resolved (nothing of it was left to drop or forget).
    completed: bool,
    /// The op was polled at least once (a group is submitted then).
    polled: bool,
}

/// Names an op in failure messages.
#[derive(Clone, Copy)]
struct What(u32, Kind, Fate, Stage);

impl fmt::Display for What {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "op {} ({:?}, {:?} at {:?})",
            self.0, self.1, self.2, self.3
        )
    }
}

/// One op of an iteration.
struct Job {
    plan: Rc<Plan>,
    fate: Fate,
    stage: Stage,
    /// The leases of an op that must own them (in a task, in a waker's slot).
    cell: Option<Rc<RefCell<Held>>>,
    /// A pipe lease's fds.
    pipe_fds: Option<(RawFd, RawFd)>,
}

impl Job {
    fn what(&self) -> What {
        What(self.plan.id, self.plan.kind, self.fate, self.stage)
    }

    /// `f` on the job's leases, mutably.
    fn with_held_mut<R>(&self, stack: &mut Held, f: impl FnOnce(&mut Held) -> R) -> R {
        match &self.cell {
            Some(c) => f(&mut c
                .try_borrow_mut()
                .expect("the op's future is gone, and its borrow of the lease with it")),
            None => f(stack),
        }
    }

    /// `f` on the job's leases, wherever they are (`stack`: its slot on the stack).
    fn with_held<R>(&self, stack: &Held, f: impl FnOnce(&Held) -> R) -> R {
        match &self.cell {
            Some(c) => f(&c
                .try_borrow()
                .expect("the op's future is gone, and its borrow of the lease with it")),
            None => f(stack),
        }
    }
}

/// Plan a job; its leases go to `helds` (or its cell, if it must own them).
fn new_job(rig: &Rig, case: Case, rng: &mut Rng, books: &mut Books, helds: &mut Vec<Held>) -> Job {
    const NOT_FORGET: [Fate; 7] = [
        Fate::Await,
        Fate::Drop,
        Fate::Panic,
        Fate::Abort,
        Fate::InSubmitter,
        Fate::WakerClone,
        Fate::WakerDrop,
    ];
    let id = books.next_id;
    books.next_id += 1;
    OP.store(u64::from(id), Ordering::Relaxed);
    let kinds = case.kinds();
    let kind = kinds[rng.below(kinds.len() as u64) as usize];
    let fate = if books.forgets_left > 0 && rng.below(books.forget_odds) == 0 {
        books.forgets_left -= 1;
        Fate::Forget
    } else {
        NOT_FORGET[rng.below(NOT_FORGET.len() as u64) as usize]
    };
    let stage = STAGES[rng.below(3) as usize];
    let plan = Rc::new(plan(kind, id, rng));
    let mut held = Held::default();
    let mut pipe_fds = None;
    match kind.lease() {
        LeaseUse::Owned | LeaseUse::Borrowed => {
            let mut l = rig.pool.try_lease(SIZE).expect("a free pool slot");
            l.extend_from_slice(&plan.fill);
            held.lease = Some(l);
        }
        LeaseUse::Pipe => {
            let p = PipeLease::new(PIPE_CAP).unwrap();
            if kind == Kind::PipeHeld {
                put(&p.write_fd(), &plan.fill);
            }
            pipe_fds = Some((p.read_fd().as_raw_fd(), p.write_fd().as_raw_fd()));
            held.pipe = Some(p);
        }
        LeaseUse::None => {}
    }
    rig.inputs.borrow_mut().push(Some(Rc::clone(&plan)));
    let cell = if fate.owned() {
        helds.push(Held::default());
        Some(Rc::new(RefCell::new(held)))
    } else {
        helds.push(held);
        None
    };
    let t = &mut books.tally;
    t.ops += 1;
    t.fates[fate as usize][stage as usize] += 1;
    *t.kinds.entry(kind).or_default() += 1;
    Job {
        plan,
        fate,
        stage,
        cell,
        pipe_fds,
    }
}

/// One iteration: 1 op (1 to 4 in a lane), each taken to its stage and fate, then checked.
async fn iteration(rig: &Rc<Rig>, case: Case, rng: &mut Rng, books: &mut Books) {
    let k = if case == Case::Lanes {
        rig.open_lane();
        1 + rng.below(4) as usize
    } else {
        1
    };
    if rng.below(3) == 0 {
        rig.fill_outputs();
        books.tally.pressure += 1;
    }
    let mut helds = Vec::with_capacity(k);
    let jobs: Vec<Job> = (0..k)
        .map(|_| new_job(rig, case, rng, books, &mut helds))
        .collect();
    // The ops that stay on this stack frame are made now (eager ones are pushed).
    let mut futs: Vec<Option<Fut<'_>>> = helds
        .iter_mut()
        .zip(&jobs)
        .map(|(h, j)| (!j.fate.owned()).then(|| make_fut(rig, &j.plan, h)))
        .collect();
    let mut status = Vec::with_capacity(k);
    for (i, job) in jobs.iter().enumerate() {
        let s = meet_fate(rig, i, job, futs[i].take(), rng).await;
        books.tally.collected += u64::from(s.completed && job.fate != Fate::Await);
        status.push(s);
    }
    drop(futs);
    check_iteration(rig, case, jobs, &status, helds, rng, books).await;
}

/// Take job `i` to its stage, then to its fate.
async fn meet_fate(
    rig: &Rc<Rig>,
    i: usize,
    job: &Job,
    fut: Option<Fut<'_>>,
    rng: &mut Rng,
) -> Status {
    let what = job.what();
    let polls = usize::from(job.stage != Stage::Unpolled);
    let mut s = Status {
        completed: false,
        polled: polls > 0,
    };
    let Some(cell) = &job.cell else {
        let mut fut = fut.expect("made on the stack");
        s.completed = reach(&mut fut, polls).await;
        extras(rig, i, job.stage, rng, what).await;
        match job.fate {
            Fate::Await if s.completed => {}
            Fate::Await => {
                rig.feed(i);
                rig.drive(fut, what).await;
                s.completed = true;
            }
            Fate::Drop => drop(fut),
            Fate::Forget => std::mem::forget(fut),
            _ => ringleader_executor::with_submitter(move |_| drop(fut)),
        }
        return s;
    };
    // The owned future's first poll makes the op, its second polls it.
    let mut fut = owned_fut(Rc::clone(rig), Rc::clone(&job.plan), Rc::clone(cell));
    if matches!(job.fate, Fate::Panic | Fate::Abort) {
        s.completed = in_task(rig, i, job, fut, 1 + polls, rng).await;
        return s;
    }
    s.completed = reach(&mut fut, 1 + polls).await;
    extras(rig, i, job.stage, rng, what).await;
    let mut bystander = Bystander::new();
    let trigger = if job.fate == Fate::WakerClone {
        Trigger::WakerClone
    } else {
        Trigger::WakerDrop
    };
    drop_while_borrowed(trigger, Box::new(fut), &mut bystander);
    bystander.finish().await;
    s
}

/// Poll `fut` in a task, then make the task panic or abort it there; whether `fut` completed.
async fn in_task(
    rig: &Rig,
    i: usize,
    job: &Job,
    mut fut: Fut<'static>,
    polls: usize,
    rng: &mut Rng,
) -> bool {
    let what = job.what();
    let flags = Rc::new(TaskFlags::default());
    let f = Rc::clone(&flags);
    let panics = job.fate == Fate::Panic;
    let task = ringleader::spawn(async move {
        let _gone = SetGone(Rc::clone(&f));
        f.completed.set(reach(&mut fut, polls).await);
        f.reached.set(true);
        while !f.go.get() {
            ringleader::yield_now().await;
        }
        if panics {
            std::panic::panic_any(FatePanic);
        }
        std::future::pending::<()>().await;
    });
    common::until(|| flags.reached.get(), "the task reached its stage").await;
    extras(rig, i, job.stage, rng, what).await;
    if panics {
        flags.go.set(true);
        match task.await {
            Err(JoinError::Panic(p)) if p.is::<FatePanic>() => {}
            Err(JoinError::Panic(p)) => panic!("{what}: the task panicked: {}", panic_message(&*p)),
            other => panic!("{what}: a panicking task gave {other:?}"),
        }
    } else {
        task.abort();
        common::until(|| flags.gone.get(), "the aborted task's future dropped").await;
        let r = task.await;
        assert!(
            r.as_ref().is_err_and(JoinError::is_cancelled),
            "{what}: an aborted task gave {r:?}"
        );
    }
    flags.completed.get()
}

/// After the fates: snapshots, canaries, run until the kernel is done, then every check and
/// the books.
async fn check_iteration(
    rig: &Rig,
    case: Case,
    jobs: Vec<Job>,
    status: &[Status],
    mut helds: Vec<Held>,
    rng: &mut Rng,
    books: &mut Books,
) {
    // What the test can reach of each lease now: `&` refused, or bytes that must never
    // change; `&mut` refused, or granted, and then sometimes used to scribble over the bytes,
    // which no kernel op may see any more (an output showing them would fail its check).
    let mut looks = Vec::with_capacity(jobs.len());
    for (j, h) in jobs.iter().zip(&mut helds) {
        let scribble = rng.below(2) == 0;
        looks.push(j.with_held_mut(h, |h| {
            let l = h.lease.as_mut()?;
            Some(first_look(l, &j.plan, j.what(), scribble, &mut books.tally))
        }));
    }
    // Canaries on every free slot: a slot handed out while the kernel still writes into it
    // would show the kernel's bytes.
    let mark = 0x80 | (books.next_id as u8 & 0x7f);
    let mut canaries = Vec::new();
    while let Some(mut c) = rig.pool.try_lease(SIZE) {
        c.extend_from_slice(&[mark; SIZE]);
        canaries.push(c);
    }

    books.tally.canaries += canaries.len() as u64;
    rig.quiet(jobs[0].what()).await;

    for c in &canaries {
        assert!(
            c.iter().all(|&b| b == mark),
            "a free pool slot changed after it was handed out again (slot {}): the kernel \
             wrote into a reused slot",
            c.slot()
        );
    }
    drop(canaries);

    for ((job, s), (h, look)) in jobs.iter().zip(status).zip(helds.iter().zip(&looks)) {
        let kind = job.plan.kind;
        let forgotten = job.fate == Fate::Forget && !s.completed;
        // What a forgotten op holds: everything, once it was pushed.
        let keeps = forgotten && (kind.eager() || s.polled);
        job.with_held(h, |h| {
            if let Some(l) = &h.lease {
                check_lease(l, &job.plan, keeps, look.as_ref(), job.what());
            }
        });
        if keeps {
            books.slots_leaked += kind.ring_ops();
            books.tally.forgotten_slots += kind.ring_ops();
            books.pool_leaked +=
                usize::from(matches!(kind.lease(), LeaseUse::Owned | LeaseUse::Borrowed));
            books.ring_claimed += usize::from(kind == Kind::RecvGroup);
            books.ring_lost += usize::from(kind == Kind::RingRecv);
            books.counted_leaked += usize::from(matches!(
                kind,
                Kind::FdRead | Kind::FdWrite | Kind::LaneSendIn | Kind::LaneRaw
            ));
        }
        if forgotten {
            books.rig_fds.extend(kind.fds(rig));
        }
    }

    rig.drain();
    let rest_in0 = take(&rig.pin[0].0);
    take(&rig.pin[1].0);
    take(&rig.sin.1);
    let got = std::mem::take(&mut *rig.got.borrow_mut());
    assert_eq!(got.skip, [0; 4], "every filler drained");
    if case == Case::Lanes {
        assert!(
            got.bytes.iter().all(Vec::is_empty) && got.dgrams.is_empty(),
            "lanes: stray output"
        );
        let l = rig.lane.borrow_mut().take().unwrap();
        check_lane(&got.lane, &jobs, &l);
        let fd = l.sock.as_raw_fd();
        let leaked = jobs
            .iter()
            .zip(status)
            .any(|(j, s)| j.fate == Fate::Forget && !s.completed);
        drop(l);
        assert_eq!(
            is_open(fd),
            leaked,
            "lane socket open iff a forgotten op holds it"
        );
        books.iteration_fds += usize::from(leaked);
    } else {
        let in_pipe = jobs[0].with_held(&helds[0], |h| h.pipe.as_ref().map(|p| take(&p.read_fd())));
        check_outputs(&jobs[0], &got, in_pipe, &rest_in0);
    }

    // Release the iteration's leases and pipes; check what stays.
    let whats: Vec<What> = jobs.iter().map(Job::what).collect();
    let pipes: Vec<_> = jobs
        .iter()
        .zip(status)
        .filter_map(|(j, s)| {
            let keeps = j.fate == Fate::Forget && !s.completed && s.polled;
            j.pipe_fds.map(|fds| (fds, keeps))
        })
        .collect();
    drop(helds);
    for job in jobs {
        let what = job.what();
        if let Some(c) = job.cell {
            drop(
                Rc::try_unwrap(c)
                    .unwrap_or_else(|_| panic!("{what}: its lease cell is still shared")),
            );
        }
    }
    for ((r, w), keeps) in pipes {
        assert_eq!(
            (is_open(r), is_open(w)),
            (keeps, keeps),
            "pipe lease fds open iff a forgotten group holds them"
        );
        books.iteration_fds += 2 * usize::from(keeps);
    }
    rig.inputs.borrow_mut().clear();
    let stats = ringleader::runtime::stats();
    assert_eq!(stats.ops_in_flight, 0, "no op in flight");
    assert_eq!(
        stats.slots_occupied,
        books.slots_base + books.slots_leaked,
        "op slots occupied: exactly those of the forgotten ops ({})",
        whats
            .iter()
            .map(What::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert_eq!(
        rig.pool.available(),
        SLOTS - books.pool_leaked,
        "pool slots: all back but those of forgotten ops"
    );
    assert_eq!(
        rig.ring.leased(),
        books.ring_claimed,
        "ring buffers leased: those of forgotten recv groups"
    );
    assert_eq!(
        get(&rig.drops),
        rig.made.get() - books.counted_leaked,
        "heap buffers dropped exactly once, but those of forgotten ops"
    );
}

/// The outputs of a lone op: exact when awaited; otherwise whole or nothing, or a prefix, as
/// the API promises; nothing where it does not write. A pipe group loses nothing.
fn check_outputs(job: &Job, got: &Got, in_pipe: Option<Vec<u8>>, rest_in0: &[u8]) {
    let (plan, what) = (&job.plan, job.what());
    let exact = job.fate == Fate::Await;
    for (bytes, out) in got.bytes.iter().zip([Out::P0, Out::P1, Out::P2, Out::Sock]) {
        check_output(
            bytes,
            plan.outputs.iter().find(|o| o.0 == out),
            exact,
            what,
            out,
        );
    }
    let udp = plan.outputs.iter().find(|o| o.0 == Out::Udp);
    match (udp, &got.dgrams[..]) {
        (_, []) => assert!(!exact || udp.is_none(), "{what}: datagram missing"),
        (Some((_, want, _)), [d]) => assert_eq!(d, want, "{what}: datagram"),
        _ => panic!("{what}: unexpected datagrams {:?}", got.dgrams),
    }
    // What the group drained, what is left in the pipe lease and what its splice left in
    // the input make up the input, in order.
    if let Some(in_pipe) = in_pipe {
        let drained = if plan.kind == Kind::PipeSplice { 2 } else { 1 };
        let all = [&got.bytes[drained][..], &in_pipe, rest_in0].concat();
        assert_eq!(
            all, plan.outputs[0].1,
            "{what}: the pipe group lost or duplicated bytes"
        );
    } else if exact {
        assert!(rest_in0.is_empty(), "{what}: input left over");
    }
}

/// Run the ring a little, the way a stage leaves an op.
async fn extras(rig: &Rig, job: usize, stage: Stage, rng: &mut Rng, what: What) {
    match stage {
        Stage::Unpolled => {}
        Stage::InFlight => {
            if rng.below(2) == 0 {
                rig.feed(job);
            }
            for _ in 0..rng.below(3) {
                ringleader::yield_now().await;
            }
        }
        Stage::Done => rig.quiet(what).await,
    }
    // Sometimes wake the op right before its fate, so its completion races the drop.
    match rng.below(4) {
        0 => rig.feed(job),
        1 => rig.drain(),
        _ => {}
    }
}

/// A lease right after its op's fate (see `check_iteration`).
struct Look {
    bytes: Result<Vec<u8>, ringleader::buf::LeaseBusy>,
    scribbled: bool,
}

fn first_look(l: &mut Lease, plan: &Plan, what: What, scribble: bool, tally: &mut Tally) -> Look {
    let bytes = l.try_as_slice().map(<[u8]>::to_vec);
    tally.refused += u64::from(bytes.is_err());
    tally.readable += u64::from(bytes.is_ok());
    if let (Fate::Await, Ok(b), Some(after)) = (what.2, &bytes, &plan.after) {
        assert_eq!(b, after, "{what}: lease contents after completion");
    }
    let Ok(m) = l.try_as_mut_slice() else {
        tally.mut_refused += 1;
        return Look {
            bytes,
            scribbled: false,
        };
    };
    tally.mut_granted += 1;
    assert!(bytes.is_ok(), "{what}: &mut granted while & is refused");
    if !scribble {
        return Look {
            bytes,
            scribbled: false,
        };
    }
    tally.scribbled += 1;
    let s = pat(plan.id, SCRIBBLE_SALT, m.len());
    m.copy_from_slice(&s);
    Look {
        bytes: Ok(s),
        scribbled: true,
    }
}

/// A lease after its op's fate, once the kernel is done: a forgotten op's refuses `&mut`
/// forever (and `&` if the op writes into it); any other is free. Bytes readable right after
/// the fate have not changed since; bytes not scribbled over are the lease's own or the op's.
fn check_lease(l: &Lease, plan: &Plan, keeps: bool, look: Option<&Look>, what: What) {
    let now = l.try_as_slice();
    if keeps {
        assert!(
            l.check_writable().is_err(),
            "{what}: a forgotten op's lease must refuse &mut forever"
        );
        assert_eq!(
            now.is_err(),
            plan.kind.writes_lease(),
            "{what}: a forgotten op's lease refuses & iff the op writes into it"
        );
    } else {
        assert!(
            l.check_writable().is_ok(),
            "{what}: the lease is still busy after the kernel finished: {:?}",
            l.check_writable()
        );
    }
    let look = look.expect("looked at right after the fate");
    if let Ok(before) = &look.bytes {
        assert_eq!(
            now.as_deref().ok(),
            Some(&before[..]),
            "{what}: lease bytes changed after they were readable"
        );
    }
    let Ok(bytes) = now else { return };
    if look.scribbled || what.2 == Fate::Await {
        return;
    }
    assert_eq!(bytes.len(), plan.fill.len(), "{what}: lease length");
    for (i, &b) in bytes.iter().enumerate() {
        let legit = b == plan.fill[i]
            || plan
                .alts
                .iter()
                .any(|(off, v)| i >= *off && v.get(i - off) == Some(&b));
        assert!(
            legit,
            "{what}: lease byte {i} = {b:#04x}: not written by this op"
        );
    }
}

fn check_output(
    got: &[u8],
    want: Option<&(Out, Vec<u8>, Rule)>,
    exact: bool,
    what: What,
    out: Out,
) {
    match want {
        None => assert!(
            got.is_empty(),
            "{what}: {} stray bytes in {out:?}",
            got.len()
        ),
        Some((_, want, _)) if exact => assert_eq!(got, &want[..], "{what}: output {out:?}"),
        Some((_, want, Rule::Whole)) => assert!(
            got.is_empty() || got == &want[..],
            "{what}: output {out:?} not whole: {} of {} bytes",
            got.len(),
            want.len()
        ),
        Some((_, want, Rule::Prefix)) => assert!(
            want.starts_with(got),
            "{what}: output {out:?} ({} bytes) is not a prefix of what was sent",
            got.len()
        ),
    }
}

/// The lane's stream: whole frames of this iteration's ops, each once; a cut frame only at
/// the end of a failed lane; ops pushed when made in their lane order; every op that reported
/// success present and whole.
fn check_lane(stream: &[u8], jobs: &[Job], l: &LaneRig) {
    let mut at = 0;
    let mut whole = Vec::new();
    let mut cut = false;
    while at < stream.len() {
        if stream.len() - at < 8 {
            cut = true;
            break;
        }
        let id = u32::from_le_bytes(stream[at..at + 4].try_into().unwrap());
        let len = u32::from_le_bytes(stream[at + 4..at + 8].try_into().unwrap()) as usize;
        let p = jobs
            .iter()
            .map(|j| &j.plan)
            .find(|p| p.id == id && p.n == len)
            .unwrap_or_else(|| {
                panic!("lane: frame header {id}/{len} at byte {at}: frames interleaved")
            });
        assert!(!whole.contains(&id), "lane: frame {id} twice");
        let body = &stream[at + 8..stream.len().min(at + 8 + len)];
        assert_eq!(body, &p.frame[8..8 + body.len()], "lane: frame {id} body");
        if body.len() < len {
            cut = true;
            break;
        }
        whole.push(id);
        at += 8 + len;
    }
    assert!(
        !cut || l.lane.is_failed(),
        "lane: a cut frame in a lane that did not fail"
    );
    for id in &l.sent {
        assert!(
            whole.contains(id),
            "lane: op {id} reported its frame sent: missing"
        );
    }
    let pos: Vec<usize> = l
        .order
        .iter()
        .filter_map(|id| whole.iter().position(|w| w == id))
        .collect();
    assert!(
        pos.windows(2).all(|w| w[0] < w[1]),
        "lane: frames out of lane order: order {:?}, stream {whole:?}",
        l.order
    );
}

/// Count the buffers the ring can hand out now: they must be `expect`.
async fn ring_census(rig: &Rig, expect: usize) {
    let mut held = Vec::new();
    for _ in 0..expect {
        put(&rig.sin.0, &[7]);
        held.push(
            lease_ops::recv(&rig.sin.1, &rig.ring)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let starved = rig.ring.starved();
    put(&rig.sin.0, &[7]);
    let mut extra = lease_ops::recv(&rig.sin.1, &rig.ring);
    // The recv sees ENOBUFS and starts waiting for a buffer when it is polled.
    for _ in 0..10_000 {
        assert!(poll!(&mut extra).is_pending(), "a buffer beyond the census");
        if rig.ring.starved() > starved {
            break;
        }
        ringleader::yield_now().await;
    }
    assert!(
        rig.ring.starved() > starved,
        "the ring never ran dry after the counted buffers"
    );
    drop(held);
    drop(extra.await.unwrap().unwrap());
}

fn run_seed(case: Case, seed: u64, ops: u64) -> Tally {
    SEED.store(seed, Ordering::Relaxed);
    let _report = Report(case, seed);
    let fds = fd_count();
    let (tally, leaked_fds) = ringleader::block_on(async {
        let rig = Rc::new(Rig::new());
        let rig_fds = rig.fds();
        let start = ringleader::runtime::stats();
        let mut books = Books {
            next_id: 1,
            forgets_left: FORGETS,
            forget_odds: (ops / FORGETS / 2).max(1),
            slots_base: start.slots_occupied,
            slots_leaked: 0,
            pool_leaked: 0,
            ring_claimed: 0,
            ring_lost: 0,
            counted_leaked: 0,
            rig_fds: BTreeSet::new(),
            iteration_fds: 0,
            tally: Tally::default(),
        };
        let mut rng = Rng::new(seed);
        while books.tally.ops < ops {
            iteration(&rig, case, &mut rng, &mut books).await;
        }
        let expect = usize::from(RING) - books.ring_lost - rig.ring.leased();
        ring_census(&rig, expect).await;
        let end = ringleader::runtime::stats();
        books.tally.drops_deferred = end.drops_deferred - start.drops_deferred;
        books.tally.settle_timeouts = end.settle_timeouts - start.settle_timeouts;
        drop(Rc::try_unwrap(rig).unwrap_or_else(|_| panic!("the rig is still shared")));
        for fd in rig_fds {
            assert_eq!(
                is_open(fd),
                books.rig_fds.contains(&fd),
                "fd {fd} open iff a forgotten op names it"
            );
        }
        let leaked = books.rig_fds.len() + books.iteration_fds;
        (books.tally, leaked)
    });
    assert_eq!(
        fd_count(),
        fds + leaked_fds,
        "fds: only those of forgotten ops stay open"
    );
    quarantine::check_all();
    tally
}

fn run_case(case: Case, ops: u64) {
    static LOCK: Mutex<()> = Mutex::new(());
    let _one_at_a_time = LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    install_hooks();
    CASE_NAME.store(case as usize, Ordering::Relaxed);
    let seeds: Vec<u64> = match std::env::var("RINGLEADER_DROPS_SEED") {
        Ok(s) => vec![u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("a hex seed")],
        Err(_) => SEEDS.to_vec(),
    };
    let start = Instant::now();
    let mut total = Tally::default();
    for &seed in &seeds {
        let t = run_seed(case, seed, ops / SEEDS.len() as u64);
        total.ops += t.ops;
        for (a, b) in total
            .fates
            .iter_mut()
            .flatten()
            .zip(t.fates.iter().flatten())
        {
            *a += b;
        }
        for (k, n) in t.kinds {
            *total.kinds.entry(k).or_default() += n;
        }
        total.collected += t.collected;
        total.pressure += t.pressure;
        total.refused += t.refused;
        total.readable += t.readable;
        total.mut_refused += t.mut_refused;
        total.mut_granted += t.mut_granted;
        total.scribbled += t.scribbled;
        total.canaries += t.canaries;
        total.forgotten_slots += t.forgotten_slots;
        total.drops_deferred += t.drops_deferred;
        total.settle_timeouts += t.settle_timeouts;
    }
    println!(
        "{case:?}: {} ops in {:.1?} (seeds {seeds:x?}); kinds {:?}; per fate \
         [unpolled, in flight, done]: {}; {} completed within their stage; {} iterations \
         under output pressure; lease bytes right after the fate: & {} refused, {} granted, \
         &mut {} refused, {} granted, {} scribbled; {} canary slots; {} op slots kept by \
         forgotten ops; drops deferred {}; settle timeouts {}; quarantine checks {}",
        total.ops,
        start.elapsed(),
        total.kinds,
        FATES
            .iter()
            .map(|f| format!("{f:?} {:?}", total.fates[*f as usize]))
            .collect::<Vec<_>>()
            .join(", "),
        total.collected,
        total.pressure,
        total.refused,
        total.readable,
        total.mut_refused,
        total.mut_granted,
        total.scribbled,
        total.canaries,
        total.forgotten_slots,
        total.drops_deferred,
        total.settle_timeouts,
        quarantine::checks(),
    );
    if seeds.len() == SEEDS.len() {
        for f in FATES {
            for s in STAGES {
                assert!(
                    total.fates[f as usize][s as usize] > 0,
                    "{case:?}: {f:?} at {s:?} never exercised"
                );
            }
        }
        for k in case.kinds() {
            assert!(
                total.kinds.contains_key(k),
                "{case:?}: {k:?} never exercised"
            );
        }
    }
}

#[test]
fn plain_ops() {
    run_case(Case::Plain, 15_000);
}

#[test]
fn lease_views() {
    run_case(Case::Views, 17_000);
}

#[test]
fn groups() {
    run_case(Case::Groups, 16_000);
}

#[test]
fn chains() {
    run_case(Case::Chains, 10_000);
}

#[test]
fn lanes() {
    run_case(Case::Lanes, 16_000);
}

#[test]
fn recv_groups() {
    run_case(Case::RecvGroups, 12_000);
}

#[test]
fn pipe_groups() {
    run_case(Case::PipeGroups, 14_000);
}
