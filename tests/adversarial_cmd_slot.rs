//! Adversarial review of `io/src/cmd_slot.rs` (command slots for FUSE over io_uring).
//!
//! The contract: "no slot memory reachable by safe code while the kernel may write it".
//! But `Fetched::payload_mut` hands out `&mut Lease`, and a `&mut` lets safe code swap the
//! lease out (`std::mem::replace`, `std::mem::swap` between two requests). The driver does
//! not follow the swap: FUSE's `COMMIT_AND_FETCH` re-arms the slot with the addresses its
//! `REGISTER` gave, so the next request is written into the memory of the lease the user
//! now owns, while safe code holds it and may read, write or drop it (back to its pool, to
//! be leased again).
//!
//! Here: the first LOOKUP's payload lease is swapped for one of the test's own pool, the
//! request is committed; the next LOOKUP's name must not appear in the stolen lease (the
//! kernel writing into memory safe code owns).
//!
//! A second way in: `Fetched::header_mut` lets safe code write the whole header, and the
//! driver's commit command can only take the commit id from it (`SlotProtocol::commit` gets
//! the header and nothing else). Write request A's commit id into request B's header and
//! commit B: FUSE commits A's request (from A's memory, still held by a `Fetched`) and
//! re-arms A's *entry* with B's command, so the next request is copied into A's memory
//! while safe code holds it, and B's request is never committed (its client hangs until
//! the connection is aborted). See
//! `adversarial_cmd_slot_forged_commit_id_rearms_another_slot`.
//!
//! (Both fixed in 80114a5; the third in 3f86049.) A third: a commit re-arms the slot even while a kernel op on its
//! payload is still in flight (one forgotten, or dropped and not settled within the limit:
//! uncancellable I/O), so the driver's next request and the stale op write the same bytes;
//! see `adversarial_cmd_slot_commit_does_not_rearm_a_payload_with_a_kernel_writer`.

mod fuse_uring_support;

use std::cell::RefCell;
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use futures::StreamExt;
use ringleader::Builder;
use ringleader::buf::{FixedPool, Lease};
use ringleader::cmd_slot::{CmdQueue, Fetched, SlotAddr, SlotProtocol};
use ringleader::ops::Cmd;

const MAX_WRITE: u32 = 64 << 10;
const FUSE_INIT: u32 = 26;
const FUSE_LOOKUP: u32 = 1;
const FUSE_GETATTR: u32 = 3;
const INIT_EXT: u32 = 1 << 30;
const MAX_PAGES: u32 = 1 << 22;
/// Lookups in one directory run concurrently (else the kernel serializes them).
const PARALLEL_DIROPS: u32 = 1 << 18;
const OVER_IO_URING_FLAGS2: u32 = 1 << (41 - 32);
const CMD_REGISTER: u32 = 1;
const CMD_COMMIT_AND_FETCH: u32 = 2;
const HEADER_LEN: usize = 288;
const ENT_COMMIT_ID: usize = 256 + 8;
const ENT_PAYLOAD_SZ: usize = 256 + 16;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(b[at..at + 8].try_into().unwrap())
}

struct Fuse {
    qid: u16,
}

fn cmd_req(commit_id: u64, qid: u16) -> [u8; 24] {
    let mut c = [0u8; 24];
    c[8..16].copy_from_slice(&commit_id.to_ne_bytes());
    c[16..18].copy_from_slice(&qid.to_ne_bytes());
    c
}

fn reply(header: &mut [u8], error: i32, payload: u32) {
    header[0..4].copy_from_slice(&(16 + payload).to_ne_bytes());
    header[4..8].copy_from_slice(&error.to_ne_bytes());
    header[ENT_PAYLOAD_SZ..ENT_PAYLOAD_SZ + 4].copy_from_slice(&payload.to_ne_bytes());
}

// SAFETY: as in tests/fuse_uring_random_drops_commit_once.rs: REGISTER points at the
// slot's own iovec array; COMMIT_AND_FETCH points at nothing (the kernel reuses REGISTER's
// addresses). A CQE with res 0 means a request was copied in.
unsafe impl SlotProtocol for Fuse {
    fn fetch(&self, fd: RawFd, slot: &SlotAddr) -> Cmd {
        Cmd::new(fd, CMD_REGISTER)
            .cmd(&cmd_req(0, self.qid))
            .addr_len(slot.iov as u64, 2)
    }
    fn commit(&self, fd: RawFd, header: &[u8]) -> Cmd {
        Cmd::new(fd, CMD_COMMIT_AND_FETCH).cmd(&cmd_req(u64_at(header, ENT_COMMIT_ID), self.qid))
    }
    fn abandon(&self, header: &mut [u8], errno: i32) {
        reply(header, -errno, 0);
    }
}

/// Mount and answer INIT offering io_uring (as the fuse_uring test does); `None` if the
/// kernel did not offer it.
fn mount_and_init(mnt: &Path) -> Option<OwnedFd> {
    // SAFETY: a C string; the result is checked.
    let fd = unsafe { libc::open(c"/dev/fuse".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    assert!(fd >= 0, "/dev/fuse: {}", std::io::Error::last_os_error());
    // SAFETY: just opened, owned by nobody else.
    let fuse = unsafe { OwnedFd::from_raw_fd(fd) };
    let opts = CString::new(format!("fd={fd},rootmode=40000,user_id=0,group_id=0")).unwrap();
    let target = CString::new(mnt.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid C strings.
    let r = unsafe {
        libc::mount(
            c"rladv".as_ptr(),
            target.as_ptr(),
            c"fuse.rladv".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            opts.as_ptr().cast(),
        )
    };
    assert_eq!(r, 0, "mount: {}", std::io::Error::last_os_error());
    let mut dev = std::fs::File::from(fuse.try_clone().unwrap());
    let mut buf = vec![0u8; 1 << 20];
    let n = dev.read(&mut buf).expect("read INIT");
    let req = &buf[..n];
    assert_eq!(u32_at(req, 4), FUSE_INIT);
    let unique = u64_at(req, 8);
    let (minor, readahead, flags, flags2) = (
        u32_at(req, 44),
        u32_at(req, 48),
        u32_at(req, 52),
        u32_at(req, 56),
    );
    let offered = flags & INIT_EXT != 0 && flags2 & OVER_IO_URING_FLAGS2 != 0;
    let mut out = vec![0u8; 16 + 64];
    out[0..4].copy_from_slice(&80u32.to_ne_bytes());
    out[8..16].copy_from_slice(&unique.to_ne_bytes());
    let o = &mut out[16..];
    o[0..4].copy_from_slice(&7u32.to_ne_bytes());
    o[4..8].copy_from_slice(&minor.min(45).to_ne_bytes());
    o[8..12].copy_from_slice(&readahead.to_ne_bytes());
    o[12..16].copy_from_slice(&((INIT_EXT | MAX_PAGES | PARALLEL_DIROPS) & flags).to_ne_bytes());
    o[16..18].copy_from_slice(&16u16.to_ne_bytes());
    o[18..20].copy_from_slice(&12u16.to_ne_bytes());
    o[20..24].copy_from_slice(&MAX_WRITE.to_ne_bytes());
    o[24..28].copy_from_slice(&1u32.to_ne_bytes());
    o[28..30].copy_from_slice(&((MAX_WRITE / 4096) as u16).to_ne_bytes());
    o[32..36].copy_from_slice(&(flags2 & OVER_IO_URING_FLAGS2).to_ne_bytes());
    dev.write_all(&out).expect("INIT reply");
    if !offered {
        let _ = fuse_uring_support::umount(mnt, libc::MNT_DETACH);
        return None;
    }
    Some(fuse)
}

/// Answer anything but LOOKUP: the root's attributes for GETATTR, ENOSYS otherwise.
fn answer_other(mut req: Fetched<Fuse>) {
    if u32_at(req.header(), 4) == FUSE_GETATTR {
        let p = &mut req.payload_mut()[..104];
        p.fill(0);
        p[16..24].copy_from_slice(&1u64.to_ne_bytes());
        p[76..80].copy_from_slice(&(libc::S_IFDIR | 0o755).to_ne_bytes());
        p[80..84].copy_from_slice(&2u32.to_ne_bytes());
        reply(req.header_mut(), 0, 104);
    } else {
        reply(req.header_mut(), -libc::ENOSYS, 0);
    }
    req.commit();
}

const SECOND: &[u8] = b"second-lookup-name-written-by-the-kernel";

#[test]
fn adversarial_cmd_slot_swapped_payload_lease_is_not_written_by_the_kernel() {
    let _enabled = match fuse_uring_support::UringEnabled::acquire() {
        Ok(g) => g,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let mnt = std::env::temp_dir().join(format!("rl-adv-cmdslot-{}", std::process::id()));
    std::fs::create_dir_all(&mnt).unwrap();
    let Some(fuse) = mount_and_init(&mnt) else {
        eprintln!("skipped: the kernel did not offer FUSE_OVER_IO_URING with enable_uring=Y");
        return;
    };
    let progress = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let watchdog = fuse_uring_support::watchdog(
        mnt.clone(),
        Arc::clone(&progress),
        Arc::clone(&finished),
        std::time::Duration::from_secs(30),
    );
    let rt = Builder::new().sqe128(true).build_local().expect("ring");
    let seen: Rc<RefCell<Option<Vec<u8>>>> = Rc::default();
    rt.block_on({
        let (seen, mnt, progress) = (Rc::clone(&seen), mnt.clone(), Arc::clone(&progress));
        async move {
            let fuse = Rc::new(fuse);
            let mut queues = Vec::new();
            for qid in 0..fuse_uring_support::possible_cpus() {
                let q = CmdQueue::new(
                    Rc::clone(&fuse),
                    Fuse { qid: qid as u16 },
                    1,
                    HEADER_LEN,
                    MAX_WRITE as usize,
                )
                .expect("queue");
                queues.push(q);
            }
            let client = std::thread::spawn(move || {
                // One CPU, so both LOOKUPs go to the same queue (one slot).
                // SAFETY: a zeroed cpu_set_t is empty; CPU_SET and sched_setaffinity get
                // valid pointers.
                unsafe {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(0, &mut set);
                    libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
                }
                for name in [&b"first"[..], SECOND] {
                    progress.fetch_add(1, Ordering::SeqCst);
                    let p = mnt.join(std::str::from_utf8(name).unwrap());
                    let _ = std::fs::symlink_metadata(p);
                }
                if fuse_uring_support::umount(&mnt, 0).is_err() {
                    fuse_uring_support::abort(&mnt);
                }
            });
            let own = FixedPool::new(MAX_WRITE as usize, 4).expect("own pool");
            let mut stolen: Option<Lease> = None;
            let mut merged = futures::stream::select_all(queues.iter_mut());
            while let Some(item) = merged.next().await {
                let Ok(mut req) = item else { continue };
                if u32_at(req.header(), 4) != FUSE_LOOKUP {
                    answer_other(req);
                    continue;
                }
                match stolen.take() {
                    None => {
                        // Safe code takes the slot's payload lease and leaves another.
                        let mut mine = own.try_lease(MAX_WRITE as usize).expect("own lease");
                        mine.set_len(MAX_WRITE as usize);
                        // Fixed: `Fetched::payload_mut` now gives `&mut [u8]`, never
                        // `&mut Lease`, so `std::mem::replace(req.payload_mut(), mine)` no
                        // longer compiles and the only lease safe code can hold is its own.
                        let _bytes: &mut [u8] = req.payload_mut();
                        let mut taken = mine;
                        taken.fill(0);
                        stolen = Some(taken);
                    }
                    Some(taken) => {
                        // The second LOOKUP was fetched: where did its name go?
                        *seen.borrow_mut() = Some(taken[..SECOND.len() + 64].to_vec());
                        stolen = Some(taken);
                    }
                }
                reply(req.header_mut(), -libc::ENOENT, 0);
                req.commit();
            }
            drop(merged);
            client.join().expect("client");
        }
    });
    drop(rt);
    finished.store(true, Ordering::SeqCst);
    let hung = watchdog.join().unwrap();
    let _ = std::fs::remove_dir(&mnt);
    assert!(!hung, "a client blocked");
    let seen = seen.borrow();
    let bytes = seen.as_ref().expect("the second LOOKUP was fetched");
    assert!(
        !bytes.windows(SECOND.len()).any(|w| w == SECOND),
        "the kernel wrote the next request ({:?}) into a lease safe code had swapped out of \
         a Fetched and owns: {:?}",
        std::str::from_utf8(SECOND).unwrap(),
        String::from_utf8_lossy(bytes)
    );
}

fn pin_cpu0() {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET and sched_setaffinity get valid pointers.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
    }
}

/// The name a LOOKUP carries (its payload up to the NUL).
fn lookup_name(req: &Fetched<Fuse>) -> Vec<u8> {
    let p = &req.payload()[..256];
    p[..p.iter().position(|&b| b == 0).unwrap_or(256)].to_vec()
}

#[test]
fn adversarial_cmd_slot_forged_commit_id_rearms_another_slot() {
    let _enabled = match fuse_uring_support::UringEnabled::acquire() {
        Ok(g) => g,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let mnt = std::env::temp_dir().join(format!("rl-adv-cmdslot2-{}", std::process::id()));
    std::fs::create_dir_all(&mnt).unwrap();
    let Some(fuse) = mount_and_init(&mnt) else {
        eprintln!("skipped: the kernel did not offer FUSE_OVER_IO_URING with enable_uring=Y");
        return;
    };
    let (go_tx, go_rx) = mpsc::channel::<&'static str>();
    // Client threads on CPU 0 (so every LOOKUP goes to queue 0), each started when the
    // server side says so; each stat ends with ENOENT or, once aborted, ENOTCONN.
    let clients = {
        let mnt = mnt.clone();
        std::thread::spawn(move || {
            let mut threads = Vec::new();
            for name in go_rx {
                let p = mnt.join(name);
                threads.push(std::thread::spawn(move || {
                    pin_cpu0();
                    let _ = std::fs::symlink_metadata(p);
                }));
            }
            for t in threads {
                let _ = t.join();
            }
        })
    };
    go_tx.send("one").unwrap();
    let rt = Builder::new().sqe128(true).build_local().expect("ring");
    let outcome: Rc<RefCell<Option<Vec<u8>>>> = Rc::default();
    rt.block_on({
        let (outcome, mnt) = (Rc::clone(&outcome), mnt.clone());
        async move {
            let fuse = Rc::new(fuse);
            let mut queues = Vec::new();
            for qid in 0..fuse_uring_support::possible_cpus() {
                queues.push(
                    CmdQueue::new(
                        Rc::clone(&fuse),
                        Fuse { qid: qid as u16 },
                        2,
                        HEADER_LEN,
                        MAX_WRITE as usize,
                    )
                    .expect("queue"),
                );
            }
            let mut held: Option<Fetched<Fuse>> = None;
            let mut forged = false;
            let mut merged = futures::stream::select_all(queues.iter_mut());
            // A hang (the forged commit misdirected nothing, and "three" never came) is
            // bounded by the abort below.
            let (stop_aborter, stopped) = mpsc::channel::<()>();
            let aborter = {
                let mnt = mnt.clone();
                std::thread::spawn(move || {
                    let timeout = std::time::Duration::from_secs(20);
                    if stopped.recv_timeout(timeout) == Err(mpsc::RecvTimeoutError::Timeout) {
                        fuse_uring_support::abort(&mnt);
                    }
                })
            };
            while let Some(item) = merged.next().await {
                // An error: the connection was aborted (the hang guard above). A held
                // request keeps the stream from ending, so stop here.
                let Ok(mut req) = item else { break };
                if forged {
                    // The request after the forged commit (its header and payload may be
                    // stale: the kernel wrote the new request elsewhere). A is still held.
                    let a = held.as_ref().expect("A held");
                    *outcome.borrow_mut() = Some(a.payload()[..128].to_vec());
                    drop(req);
                    break;
                }
                if u32_at(req.header(), 4) != FUSE_LOOKUP {
                    answer_other(req);
                    continue;
                }
                let name = lookup_name(&req);
                match &name[..] {
                    b"one" => {
                        // Answer written, not committed: the user still holds A.
                        reply(req.header_mut(), -libc::ENOENT, 0);
                        held = Some(req);
                        go_tx.send("two").unwrap();
                    }
                    b"two" => {
                        // Safe code writes A's commit id into B's header and commits B.
                        let a = held.as_ref().expect("A held");
                        let id = u64_at(a.header(), ENT_COMMIT_ID);
                        reply(req.header_mut(), -libc::ENOENT, 0);
                        req.header_mut()[ENT_COMMIT_ID..ENT_COMMIT_ID + 8]
                            .copy_from_slice(&id.to_ne_bytes());
                        req.commit();
                        forged = true;
                        go_tx
                            .send("three-written-into-a-slot-held-by-safe-code")
                            .unwrap();
                    }
                    other => panic!("unexpected LOOKUP {:?}", String::from_utf8_lossy(other)),
                }
            }
            fuse_uring_support::abort(&mnt);
            let _ = fuse_uring_support::umount(&mnt, libc::MNT_DETACH);
            drop(held);
            drop(merged);
            drop(go_tx);
            drop(stop_aborter);
            aborter.join().expect("aborter");
        }
    });
    drop(rt);
    let _ = clients.join();
    let _ = std::fs::remove_dir(&mnt);
    let outcome = outcome.borrow();
    let a = outcome
        .as_ref()
        .expect("the third LOOKUP was fetched (if not: the forged commit lost it)");
    let third = b"three-written-into-a-slot-held-by-safe-code";
    assert!(
        !a.windows(third.len()).any(|w| w == third),
        "after a commit whose header carried another request's commit id, the kernel \
         copied the next request into the payload of a Fetched that safe code holds: {:?}",
        String::from_utf8_lossy(a)
    );
}

/// Design §3's reuse rule: a lease goes back only after every op that referenced it has
/// seen its final CQE; a forgotten op leaves it busy for good. A commit hands the slot back
/// to the driver all the same: here a READ into the payload is forgotten in flight (a pipe
/// with no data yet), the request committed, and FUSE copies the next request into the
/// same memory; the forgotten read then lands on top of it. The next request's payload is
/// both unreadable (busy for good) and overwritten. A slot whose payload still has kernel
/// users should not be re-armed (retire it, or wait); with one slot per queue, the next
/// request then waits for the connection's abort, which this test accepts.
/// Whether the next request's payload was readable, and its first bytes.
type Outcome = Option<(bool, Vec<u8>)>;

#[test]
fn adversarial_cmd_slot_commit_does_not_rearm_a_payload_with_a_kernel_writer() {
    let _enabled = match fuse_uring_support::UringEnabled::acquire() {
        Ok(g) => g,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let mnt = std::env::temp_dir().join(format!("rl-adv-cmdslot3-{}", std::process::id()));
    std::fs::create_dir_all(&mnt).unwrap();
    let Some(fuse) = mount_and_init(&mnt) else {
        eprintln!("skipped: the kernel did not offer FUSE_OVER_IO_URING with enable_uring=Y");
        return;
    };
    let (go_tx, go_rx) = mpsc::channel::<&'static str>();
    let clients = {
        let mnt = mnt.clone();
        std::thread::spawn(move || {
            let mut threads = Vec::new();
            for name in go_rx {
                let p = mnt.join(name);
                threads.push(std::thread::spawn(move || {
                    pin_cpu0();
                    let _ = std::fs::symlink_metadata(p);
                }));
            }
            for t in threads {
                let _ = t.join();
            }
        })
    };
    go_tx.send("one").unwrap();
    let rt = Builder::new().sqe128(true).build_local().expect("ring");
    // (payload readable, its first bytes), for the request fetched after the commit.
    let outcome: Rc<RefCell<Outcome>> = Rc::default();
    rt.block_on({
        let (outcome, mnt) = (Rc::clone(&outcome), mnt.clone());
        async move {
            let fuse = Rc::new(fuse);
            let mut queues = Vec::new();
            for qid in 0..fuse_uring_support::possible_cpus() {
                queues.push(
                    CmdQueue::new(
                        Rc::clone(&fuse),
                        Fuse { qid: qid as u16 },
                        1,
                        HEADER_LEN,
                        MAX_WRITE as usize,
                    )
                    .expect("queue"),
                );
            }
            let mut fds = [0; 2];
            // SAFETY: `fds` has room for the two fds pipe2 writes.
            assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
            // SAFETY: fresh fds owned by nobody else.
            let (pipe_r, pipe_w) =
                unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
            let pipe_r = Rc::new(pipe_r);
            let (stop_aborter, stopped) = mpsc::channel::<()>();
            let aborter = {
                let mnt = mnt.clone();
                std::thread::spawn(move || {
                    let timeout = std::time::Duration::from_secs(10);
                    if stopped.recv_timeout(timeout) == Err(mpsc::RecvTimeoutError::Timeout) {
                        fuse_uring_support::abort(&mnt);
                    }
                })
            };
            let mut poisoned = false;
            let mut merged = futures::stream::select_all(queues.iter_mut());
            while let Some(item) = merged.next().await {
                // An error: aborted, the next request was never fetched (accepted).
                let Ok(mut req) = item else { break };
                if poisoned {
                    let readable = req.payload().try_as_slice().is_ok();
                    // Now let the forgotten read finish (it lands in this payload).
                    let stale = b"STALE-BYTES-FROM-A-FORGOTTEN-READ";
                    // SAFETY: writes our buffer to the pipe's write end, which we own.
                    unsafe { libc::write(pipe_w.as_raw_fd(), stale.as_ptr().cast(), stale.len()) };
                    ringleader::time::sleep(std::time::Duration::from_millis(100)).await;
                    // Diagnostics only: the bytes, read through the raw pointer (the lease
                    // refuses, busy for good); no kernel op writes them any more.
                    let p = req.payload().as_ptr();
                    // SAFETY: the payload is at least 64 bytes and no write is in flight
                    // (the forgotten read has completed above).
                    let bytes = unsafe { std::slice::from_raw_parts(p, 64) }.to_vec();
                    *outcome.borrow_mut() = Some((readable, bytes));
                    reply(req.header_mut(), -libc::ENOENT, 0);
                    req.commit();
                    break;
                }
                if u32_at(req.header(), 4) != FUSE_LOOKUP {
                    answer_other(req);
                    continue;
                }
                // "one": a READ into the payload, forgotten in flight, then the commit.
                let op = ringleader::group::read_fixed_at(
                    &pipe_r,
                    req.payload_view_mut(0..64),
                    u64::MAX,
                );
                std::mem::forget(op);
                reply(req.header_mut(), -libc::ENOENT, 0);
                req.commit();
                poisoned = true;
                go_tx.send("two-the-next-request").unwrap();
            }
            fuse_uring_support::abort(&mnt);
            let _ = fuse_uring_support::umount(&mnt, libc::MNT_DETACH);
            drop(merged);
            drop(go_tx);
            drop(stop_aborter);
            aborter.join().expect("aborter");
        }
    });
    drop(rt);
    let _ = clients.join();
    let _ = std::fs::remove_dir(&mnt);
    if let Some((readable, bytes)) = outcome.borrow().as_ref() {
        let name = b"two-the-next-request";
        assert!(
            *readable && bytes.windows(name.len()).any(|w| w == name),
            "a commit re-armed a slot whose payload had a forgotten READ in flight: the \
             next request's payload is readable: {readable}, and holds {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}
