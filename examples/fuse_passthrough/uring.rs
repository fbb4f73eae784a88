//! The io_uring transport (Linux 6.14+, `enable_uring=Y`): requests arrive in registered
//! slots through `IORING_OP_URING_CMD` on /dev/fuse (`REGISTER`, then one
//! `COMMIT_AND_FETCH` per reply), served with `ringleader::cmd_slot`.
//!
//! - **Queues.** The kernel has one queue per *possible* CPU and routes a request to the
//!   queue of the client's CPU; the ring carries nothing until every queue has an entry. Core
//!   `c` of `n` serves the queues `q` with `q % n == c`, [`DEPTH`] slots each.
//! - **INIT** still travels over /dev/fuse, and `REGISTER` fails (and turns io_uring off for
//!   the connection) until the kernel has processed the INIT reply: core 0 reads INIT,
//!   answers it and waits for its write to complete before any core registers a slot. Then
//!   core 0 keeps reading /dev/fuse with the classic transport, for FORGET, BATCH_FORGET and
//!   INTERRUPT, which never travel by the ring. If the kernel did not agree to
//!   `FUSE_OVER_IO_URING`, every core serves /dev/fuse classically instead.
//! - **Data path on groups.** A slot's payload is a `FixedPool` lease. READ: members
//!   `READ_FIXED` from the backing file into disjoint ranges of the payload (one per
//!   [`STRIPE`]), then the commit carries the bytes read; WRITE: a member `WRITE_FIXED`s the
//!   payload (the client's data) to the backing file, and one more to each `--mirror`
//!   copy. Every other request is answered by [`Fs::dispatch`] into a [`Reply`] copied
//!   into the payload.
//! - **A queue that cannot be set up** aborts the connection (fusectl) and fails its core:
//!   the kernel's ring is ready only when every queue has an entry and cannot unregister the
//!   others', so the mount would otherwise wait for good. [`FAIL_SETUP_ENV`] forces this
//!   failure for the test.
//! - **Exactly one commit per request**, even if a request task is dropped or panics
//!   (`cmd_slot`'s contract: an error reply goes instead).

use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use ringleader::cmd_slot::{
    CmdQueue, Fetched, LinkedOutcome, LinkedRead, QueueStats, SlotAddr, SlotProtocol,
};
use ringleader::group::Member;
use ringleader::ops::Cmd;

use crate::abi::{self, InHeader, Pod, op};
use crate::fs::{Answer, Fs, Reply};

/// Slots per queue.
pub const DEPTH: usize = 8;
/// A READ is split into members of at most this many bytes (disjoint payload ranges).
pub const STRIPE: usize = 256 << 10;

/// `/sys/module/fuse/parameters/enable_uring`.
pub const ENABLE_URING: &str = "/sys/module/fuse/parameters/enable_uring";

const CMD_REGISTER: u32 = 1;
const CMD_COMMIT_AND_FETCH: u32 = 2;
/// `fuse_uring_req_header`: `in_out[128]`, `op_in[128]`, `fuse_uring_ent_in_out`.
const HEADER_LEN: usize = 256 + std::mem::size_of::<abi::UringEntInOut>();
const OP_IN: usize = 128;
const ENT: usize = 256;

/// The environment variable that forces a transport: `classic` or `uring` (default: io_uring
/// where the kernel allows it).
pub const TRANSPORT_ENV: &str = "FUSE_PASSTHROUGH_TRANSPORT";

/// Whether FUSE over io_uring can be used: `enable_uring` is on, or this process (as root)
/// turns it on. `Err` says why not.
///
/// The server does not turn it back off when it exits: the parameter is global, and
/// another server starting meanwhile would lose io_uring at its INIT. Tests set it and
/// restore it themselves, one at a time.
pub fn availability() -> Result<(), String> {
    match std::env::var(TRANSPORT_ENV).as_deref() {
        Ok("classic") => return Err(format!("{TRANSPORT_ENV}=classic")),
        Ok("uring") | Err(_) => {}
        Ok(other) => return Err(format!("{TRANSPORT_ENV}={other:?} is not classic or uring")),
    }
    match std::fs::read_to_string(ENABLE_URING) {
        Err(_) => Err("this kernel has no FUSE over io_uring (Linux 6.14+)".into()),
        Ok(v) if v.trim() == "Y" => Ok(()),
        Ok(_) => std::fs::write(ENABLE_URING, "Y")
            .map_err(|e| format!("{ENABLE_URING} is N and cannot be set: {e}")),
    }
}

/// The FUSE connection number of the mount at `mnt` (its device minor, from mountinfo).
pub fn connection(mnt: &std::path::Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mnt = mnt.canonicalize().ok()?;
    let mnt = mnt.to_str()?;
    info.lines().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (f.get(4) == Some(&mnt)).then(|| f[2].split(':').nth(1).unwrap_or("").to_owned())
    })
}

/// Abort connection `conn` through fusectl (mounted first if needed). At a stop with the
/// mount busy: the ring's in-flight `URING_CMD`s hold /dev/fuse open, so closing it does not
/// end the connection as it does for the classic transport, and `ASYNC_CANCEL` cannot
/// cancel them; without this the runtime's shutdown would wait its bound (10 s per core)
/// for them.
pub fn abort(conn: Option<&str>) {
    let Some(conn) = conn else { return };
    let ctl = std::path::Path::new("/sys/fs/fuse/connections");
    if !ctl.join(conn).exists() {
        let _ = std::process::Command::new("mount")
            .args(["-t", "fusectl", "none", "/sys/fs/fuse/connections"])
            .status();
    }
    let _ = std::fs::write(ctl.join(conn).join("abort"), "1");
}

/// The queues core `core` of `cores` serves: every possible CPU's, spread over the cores.
fn queues_of(core: usize, cores: usize) -> Vec<u16> {
    let possible = std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .map(|s| {
            s.trim()
                .split(',')
                .map(|r| match r.split_once('-') {
                    Some((a, b)) => b.parse::<usize>().unwrap_or(0) + 1 - a.parse().unwrap_or(0),
                    None => 1,
                })
                .sum()
        })
        .unwrap_or(1usize);
    (0..possible)
        .filter(|q| q % cores == core)
        .map(|q| q as u16)
        .collect()
}

/// Where INIT stands, shared by the cores, with what a core needs when its queues cannot be
/// set up.
#[derive(Debug, Default)]
pub struct Init {
    state: AtomicU8,
    /// Cores whose queues are set up (their slots registered).
    set_up: AtomicUsize,
    /// The FUSE connection number (fusectl), to abort the connection when a core's queues
    /// cannot be set up.
    conn: Option<String>,
}

const INIT_PENDING: u8 = 0;
const INIT_URING: u8 = 1;
const INIT_CLASSIC: u8 = 2;

impl Init {
    /// For the connection `conn` (see [`connection`]).
    pub fn new(conn: Option<String>) -> Init {
        Init {
            conn,
            ..Init::default()
        }
    }

    async fn wait(&self) -> u8 {
        loop {
            match self.state.load(Ordering::Acquire) {
                INIT_PENDING => ringleader::time::sleep(Duration::from_millis(1)).await,
                s => return s,
            }
        }
    }
}

/// Serve core `core` of `cores` on `fuse` (this core's /dev/fuse fd) until the connection
/// ends. Core 0 answers INIT first.
pub async fn serve(
    fs: Arc<Fs>,
    fuse: OwnedFd,
    core: usize,
    cores: usize,
    init: Arc<Init>,
) -> io::Result<()> {
    let fuse = Rc::new(fuse);
    if core == 0 {
        let agreed = match answer_init(&fs, &fuse).await {
            Ok(agreed) => agreed,
            Err(e) => {
                init.state.store(INIT_CLASSIC, Ordering::Release);
                return Err(e);
            }
        };
        let state = if agreed { INIT_URING } else { INIT_CLASSIC };
        if !agreed {
            eprintln!("fuse_passthrough: the kernel declined io_uring at INIT; serving /dev/fuse");
        }
        init.state.store(state, Ordering::Release);
    }
    if init.wait().await == INIT_CLASSIC {
        return crate::classic::serve(fs, unwrap_rc(fuse)).await;
    }
    let mut tasks = Vec::new();
    for qid in queues_of(core, cores) {
        let queue = match set_up_queue(&fs, &fuse, qid, core, cores, &init).await {
            Ok(q) => q,
            Err(e) => {
                // The kernel has no way to unregister the slots other queues (of this core
                // or others) registered, and routes the requests of this queue's CPUs to
                // a queue that will never have an entry: end the connection, so every core
                // stops and the mount fails fast (ENOTCONN) instead of hanging.
                abort(init.conn.as_deref());
                return Err(io::Error::new(
                    e.kind(),
                    format!(
                        "core {core}: setting up FUSE ring queue {qid} failed ({e}); aborted \
                         the connection"
                    ),
                ));
            }
        };
        tasks.push(ringleader::spawn(serve_queue(Arc::clone(&fs), queue)));
    }
    init.set_up.fetch_add(1, Ordering::AcqRel);
    let mut result = Ok(());
    if core == 0 {
        // FORGET, BATCH_FORGET and INTERRUPT still come by /dev/fuse.
        if let Err(e) = crate::classic::serve(Arc::clone(&fs), dup(&fuse)?).await {
            result = Err(e);
        }
    }
    let (mut served, mut linked, mut broken) = (0, 0, 0);
    for t in tasks {
        match t.await {
            Ok(Ok(n)) => {
                served += n.fetched;
                linked += n.linked;
                broken += n.link_broken;
            }
            Ok(Err(e)) => result = Err(e),
            Err(e) => result = Err(io::Error::other(format!("a queue task failed: {e}"))),
        }
    }
    eprintln!("fuse_passthrough: core {core} served {served} requests over io_uring");
    eprintln!(
        "fuse_passthrough: core {core} committed {linked} READs in a kernel-linked chain, \
         {broken} more after a short read broke the chain"
    );
    result
}

/// The environment variable that makes core `N`'s queue setup fail (`N`, a core number), as
/// a full pool or a refused `REGISTER` would: a test hook for the abort above
/// (`tests/fuse_uring_queue_setup_failure_aborts.rs`). The failing core first waits until
/// every other core has set up its queues, the case where the mount would otherwise hang.
pub const FAIL_SETUP_ENV: &str = "FUSE_PASSTHROUGH_FAIL_QUEUE_SETUP";

/// Queue `qid`'s slots on core `core`, registered with the kernel.
async fn set_up_queue(
    fs: &Fs,
    fuse: &Rc<OwnedFd>,
    qid: u16,
    core: usize,
    cores: usize,
    init: &Init,
) -> io::Result<CmdQueue<Queue>> {
    if std::env::var(FAIL_SETUP_ENV).is_ok_and(|v| v.trim() == core.to_string()) {
        while init.set_up.load(Ordering::Acquire) + 1 < cores {
            ringleader::time::sleep(Duration::from_millis(1)).await;
        }
        return Err(io::Error::other(format!("{FAIL_SETUP_ENV}={core}")));
    }
    CmdQueue::new(
        Rc::clone(fuse),
        Queue { qid },
        DEPTH,
        HEADER_LEN,
        payload_len(fs),
    )
}

fn dup(fd: &OwnedFd) -> io::Result<OwnedFd> {
    fd.try_clone()
}

fn unwrap_rc(fd: Rc<OwnedFd>) -> OwnedFd {
    Rc::try_unwrap(fd).unwrap_or_else(|rc| rc.try_clone().expect("dup /dev/fuse"))
}

/// The payload the kernel requires: `max(8 KiB, max_write, max_pages pages)`.
fn payload_len(fs: &Fs) -> usize {
    (fs.max_write() as usize).max(8192)
}

/// Read INIT from /dev/fuse, answer it and wait until the kernel has processed the answer
/// (its write completed): whether io_uring was agreed.
async fn answer_init(fs: &Fs, fuse: &Rc<OwnedFd>) -> io::Result<bool> {
    let size = (fs.max_write() as usize + 4096).max(abi::MIN_READ_BUFFER);
    loop {
        let (n, buf) = ringleader::fd::read(fuse, Vec::with_capacity(size), u64::MAX).await;
        match n {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) => continue,
            Err(e) => return Err(io::Error::new(e.kind(), format!("reading INIT: {e}"))),
        }
        let Some((hdr, arg, rest)) = abi::split_request(&buf) else {
            continue;
        };
        let mut out = Reply::new();
        let error = match fs.dispatch(&hdr, arg, rest, &mut out) {
            Ok(Answer::Reply) => 0,
            Ok(Answer::None) => continue,
            Err(errno) => -errno,
        };
        let (w, _) = ringleader::fd::write(fuse, out.into_frame(hdr.unique, error), u64::MAX).await;
        w.map_err(|e| io::Error::new(e.kind(), format!("answering INIT: {e}")))?;
        if hdr.opcode == op::INIT {
            return Ok(fs.init_flags() & abi::init::OVER_IO_URING != 0);
        }
    }
}

/// FUSE's slot commands for queue `qid`.
struct Queue {
    qid: u16,
}

fn cmd_req(commit_id: u64, qid: u16) -> abi::UringCmdReq {
    abi::UringCmdReq {
        commit_id,
        qid,
        ..Default::default()
    }
}

fn ent(header: &[u8]) -> abi::UringEntInOut {
    abi::read(&header[ENT..])
}

/// Write the reply's header: `fuse_out_header` and the payload size.
fn reply_header(header: &mut [u8], unique: u64, error: i32, payload: usize) {
    let out = abi::OutHeader {
        len: (std::mem::size_of::<abi::OutHeader>() + payload) as u32,
        error,
        unique,
    };
    header[..out.as_bytes().len()].copy_from_slice(out.as_bytes());
    let mut e = ent(header);
    e.payload_sz = payload as u32;
    header[ENT..HEADER_LEN].copy_from_slice(e.as_bytes());
}

// SAFETY: REGISTER points at the slot's own `iovec[2]` (header, payload), which the kernel
// fills up to their lengths; COMMIT_AND_FETCH carries no pointer (the kernel reuses
// REGISTER's). A CQE with res 0 means a request was copied into the slot.
unsafe impl SlotProtocol for Queue {
    fn fetch(&self, fd: RawFd, slot: &SlotAddr) -> Cmd {
        Cmd::new(fd, CMD_REGISTER)
            .cmd(cmd_req(0, self.qid).as_bytes())
            .addr_len(slot.iov as u64, 2)
    }

    fn commit(&self, fd: RawFd, header: &[u8]) -> Cmd {
        Cmd::new(fd, CMD_COMMIT_AND_FETCH).cmd(cmd_req(ent(header).commit_id, self.qid).as_bytes())
    }

    fn abandon(&self, header: &mut [u8], errno: i32) {
        let unique: InHeader = abi::read(header);
        reply_header(header, unique.unique, -errno, 0);
    }
}

/// Serve one queue until every slot is retired (the connection ended); what it did.
async fn serve_queue(fs: Arc<Fs>, mut queue: CmdQueue<Queue>) -> io::Result<QueueStats> {
    while let Some(item) = queue.next().await {
        let req = match item {
            Ok(req) => req,
            // Unmounted or aborted: this slot is done.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTCONN | libc::ECONNABORTED)) => {
                continue;
            }
            Err(e) => return Err(io::Error::new(e.kind(), format!("FUSE ring slot: {e}"))),
        };
        let hdr: InHeader = abi::read(req.header());
        match hdr.opcode {
            // Backing I/O on the ring: a task each, so a core keeps several in flight.
            op::READ | op::WRITE => {
                ringleader::spawn(data(Arc::clone(&fs), req, hdr)).detach();
            }
            _ => other(&fs, req, hdr),
        }
    }
    Ok(queue.stats())
}

/// The request's arg 0 (in the header's `op_in`) and the payload bytes the kernel wrote.
fn args(req: &Fetched<Queue>, opcode: u32) -> (Vec<u8>, usize) {
    let arg = req.header()[OP_IN..OP_IN + abi::arg0_len(opcode).min(128)].to_vec();
    let sz = (ent(req.header()).payload_sz as usize).min(req.payload().len());
    (arg, sz)
}

/// Any request but READ and WRITE: [`Fs::dispatch`] on this thread.
fn other(fs: &Fs, mut req: Fetched<Queue>, hdr: InHeader) {
    let (arg, sz) = args(&req, hdr.opcode);
    let mut out = Reply::new();
    let answer = fs.dispatch(&hdr, &arg, &req.payload()[..sz], &mut out);
    let (error, n) = match answer {
        Ok(Answer::Reply) if out.payload().len() <= req.payload().len() => {
            let n = out.payload().len();
            req.payload_mut()[..n].copy_from_slice(out.payload());
            (0, n)
        }
        Ok(Answer::Reply) => (-libc::EIO, 0),
        // FORGET and friends never come by the ring; answered all the same (exactly once).
        Ok(Answer::None) => (-libc::ENOSYS, 0),
        Err(errno) => (-errno, 0),
    };
    reply_header(req.header_mut(), hdr.unique, error, n);
    req.commit();
}

/// READ and WRITE: the backing I/O on the payload lease, then the commit.
async fn data(fs: Arc<Fs>, mut req: Fetched<Queue>, hdr: InHeader) {
    let (arg, sz) = args(&req, hdr.opcode);
    let result = if hdr.opcode == op::READ {
        match read_linked(&fs, req, &arg, hdr.unique).await {
            Some(back) => req = back,
            None => return,
        }
        read(&fs, &mut req, &arg).await
    } else {
        write(&fs, &mut req, &arg, sz).await
    };
    let (error, n) = match result {
        Ok(n) => (0, n),
        Err(errno) => (-errno, 0),
    };
    reply_header(req.header_mut(), hdr.unique, error, n);
    req.commit();
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// READ, kernel-linked (G10): the stripes' `READ_FIXED`s and the commit in one chain, the
/// reply header written first with the full length. `None` once the request is committed;
/// the request back when the chain cannot be used (nothing to read, or a commit that does
/// not fit a 64-byte SQE: see `ringleader::cmd_slot`), for the group path.
async fn read_linked(
    fs: &Fs,
    mut req: Fetched<Queue>,
    arg: &[u8],
    unique: u64,
) -> Option<Fetched<Queue>> {
    let Ok(io) = fs.read_io(arg) else {
        return Some(req);
    };
    let len = io.len.min(req.payload().len());
    if len == 0 {
        return Some(req);
    }
    reply_header(req.header_mut(), unique, 0, len);
    let reads = (0..len)
        .step_by(STRIPE)
        .map(|start| {
            let end = (start + STRIPE).min(len);
            LinkedRead::new(&io.fd, io.offset + start as u64, start..end)
        })
        .collect();
    let (mut req, reads) = match req.commit_linked(reads) {
        Err((back, _)) => return Some(back),
        Ok(chain) => match chain.await {
            LinkedOutcome::Committed(_) => return None,
            LinkedOutcome::Broken { req, reads } => (req, reads),
        },
    };
    // A short read (EOF, a file truncated meanwhile) or a failed one broke the chain, so
    // the commit did not run: read what is left and reply what was really read.
    let result = match valid_prefix(&reads, len) {
        Ok(done) => Ok(finish_read(&mut req, &io, done, len).await),
        Err(e) => Err(e),
    };
    let (error, n) = match result {
        Ok(Ok(n)) => (0, n),
        Ok(Err(e)) | Err(e) => (-e, 0),
    };
    reply_header(req.header_mut(), unique, error, n);
    req.commit();
    None
}

/// The bytes stripes `results` (of a READ of `len`) produced in order, up to the first
/// short one; the error if the first stripe failed.
fn valid_prefix(results: &[io::Result<usize>], len: usize) -> Result<usize, i32> {
    let mut done = 0;
    for (i, r) in results.iter().enumerate() {
        let start = i * STRIPE;
        let want = (start + STRIPE).min(len) - start;
        match r {
            Ok(n) if done == start => {
                done += n;
                if *n < want {
                    break;
                }
            }
            Ok(_) => break,
            Err(e) if done == 0 && start == 0 => return Err(errno(e)),
            Err(_) => break,
        }
    }
    Ok(done)
}

/// Payload bytes `done..len` with plain reads, after a short stripe (EOF ends it); the bytes
/// read in all.
async fn finish_read(
    req: &mut Fetched<Queue>,
    io: &crate::fs::DataIo,
    mut done: usize,
    len: usize,
) -> Result<usize, i32> {
    while done < len {
        let view = req.payload_view_mut(done..len);
        match ringleader::group::read_fixed_at(&io.fd, view, io.offset + done as u64).await {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) if done == 0 => return Err(errno(&e)),
            Err(_) => break,
        }
    }
    Ok(done)
}

/// READ as a group: members read disjoint stripes of the payload; the bytes read (short
/// only at EOF).
async fn read(fs: &Fs, req: &mut Fetched<Queue>, arg: &[u8]) -> Result<usize, i32> {
    let io = fs.read_io(arg)?;
    let len = io.len.min(req.payload().len());
    let members = (0..len).step_by(STRIPE).map(|start| {
        let end = (start + STRIPE).min(len);
        Member::read_fixed(&io.fd, io.offset + start as u64).at(start..end)
    });
    let out = req.group(members.collect()).await;
    let done = valid_prefix(&out.members, len)?;
    finish_read(req, &io, done, len).await
}

/// WRITE: a member writes the payload (the client's data) to the backing file; the reply is
/// `fuse_write_out` in the payload.
async fn write(fs: &Fs, req: &mut Fetched<Queue>, arg: &[u8], sz: usize) -> Result<usize, i32> {
    let io = fs.write_io(arg, sz)?;
    let len = io.len.min(sz);
    // `--mirror`: one more member per mirror, from the same payload bytes.
    let mirrors: Vec<Arc<OwnedFd>> = fs.mirror_fds(&io.fd)?.into_iter().map(Arc::new).collect();
    let members = std::iter::once(&io.fd)
        .chain(&mirrors)
        .map(|fd| Member::write_fixed(fd, io.offset).at(0..len))
        .collect();
    let out = req.group(members).await;
    let mut done = match &out.members[0] {
        Ok(n) => *n,
        Err(e) => return Err(errno(e)),
    };
    done = finish_write(req, &io.fd, io.offset, done, len).await;
    for (fd, r) in mirrors.iter().zip(&out.members[1..]) {
        // A mirror must get every byte the source got, or the WRITE fails.
        let n = r.as_ref().map_err(errno)?;
        if finish_write(req, fd, io.offset, *n, done).await < done {
            return Err(libc::EIO);
        }
    }
    let mut reply = Reply::new();
    Fs::write_done(done, &mut reply);
    let n = reply.payload().len();
    req.payload_mut()[..n].copy_from_slice(reply.payload());
    Ok(n)
}

/// Write payload bytes `done..len` at `offset + done` of `fd` with plain writes (after a
/// short member); how far it got.
async fn finish_write(
    req: &Fetched<Queue>,
    fd: &Arc<OwnedFd>,
    offset: u64,
    mut done: usize,
    len: usize,
) -> usize {
    while done < len {
        let view = req.payload_view(done..len);
        match ringleader::group::write_fixed_at(fd, view, offset + done as u64).await {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(_) => break,
        }
    }
    done
}
