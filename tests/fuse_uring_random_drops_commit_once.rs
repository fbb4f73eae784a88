//! The command-slot contract (docs/design.md §7): every request fetched into a slot is
//! committed exactly once, whatever happens to the `Fetched` that holds it: committed at
//! once, committed later from another task, dropped, dropped by an aborted task, dropped by
//! a losing `select`, dropped by a panic.
//!
//! A real FUSE-over-io_uring session (enable_uring set to Y and restored): this test
//! mounts a file system whose every request is answered by the code under test, and two
//! client threads (one per CPU, so both queues carry requests) `stat` 16,000 names that do
//! not exist. Each request takes a random fate; more than 10,000 are dropped. Every fetched
//! request's `unique` must be committed exactly once (counted at the commit and in
//! `SlotProtocol::abandon`), the queue's own counts must agree, and every client call must
//! return (a request never committed would block its client forever) with the error its
//! fate implies.

mod common;
mod fuse_uring_support;

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::Rng;
use futures::StreamExt;
use ringleader::cmd_slot::{CmdQueue, Fetched, SlotAddr, SlotProtocol};
use ringleader::ops::Cmd;
use ringleader::{Builder, spawn, yield_now};

const CLIENTS: usize = 2;
const STATS_PER_CLIENT: usize = 8_000;
const DEPTH: usize = 4;
const MAX_WRITE: u32 = 64 << 10;

// include/uapi/linux/fuse.h (7.45)
const FUSE_INIT: u32 = 26;
const FUSE_LOOKUP: u32 = 1;
const FUSE_GETATTR: u32 = 3;
const INIT_EXT: u32 = 1 << 30;
const MAX_PAGES: u32 = 1 << 22;
const OVER_IO_URING_FLAGS2: u32 = 1 << (41 - 32);
const CMD_REGISTER: u32 = 1;
const CMD_COMMIT_AND_FETCH: u32 = 2;
/// `fuse_uring_req_header`: in_out[128], op_in[128], `fuse_uring_ent_in_out`.
const HEADER_LEN: usize = 288;
const ENT_COMMIT_ID: usize = 256 + 8;
const ENT_PAYLOAD_SZ: usize = 256 + 16;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(b[at..at + 8].try_into().unwrap())
}

/// The FUSE queue `qid`'s commands; counts the replies `abandon` writes, per `unique`.
struct Fuse {
    qid: u16,
    abandoned: Rc<RefCell<HashMap<u64, u32>>>,
}

fn cmd_req(commit_id: u64, qid: u16) -> [u8; 24] {
    let mut c = [0u8; 24];
    c[8..16].copy_from_slice(&commit_id.to_ne_bytes());
    c[16..18].copy_from_slice(&qid.to_ne_bytes());
    c
}

/// Write a reply header: `fuse_out_header { len, error, unique }` and `payload_sz`.
fn reply(header: &mut [u8], error: i32, payload: u32) {
    header[0..4].copy_from_slice(&(16 + payload).to_ne_bytes());
    header[4..8].copy_from_slice(&error.to_ne_bytes());
    // `unique` (bytes 8..16) is where the request's header had it.
    header[ENT_PAYLOAD_SZ..ENT_PAYLOAD_SZ + 4].copy_from_slice(&payload.to_ne_bytes());
}

// SAFETY: REGISTER points at the slot's own iovec array (header and payload, which the
// kernel fills, at most their lengths); COMMIT_AND_FETCH points at nothing, the kernel uses
// the pointers REGISTER gave. A CQE with res 0 means a request was copied in.
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
        *self
            .abandoned
            .borrow_mut()
            .entry(u64_at(header, 8))
            .or_default() += 1;
    }
}

/// Mount a FUSE file system at `mnt` and answer its INIT, offering io_uring. `None` if the
/// kernel did not offer `FUSE_OVER_IO_URING` (the mount is undone).
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
            c"rltest".as_ptr(),
            target.as_ptr(),
            c"fuse.rltest".as_ptr(),
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
    let (major, minor, readahead, flags, flags2) = (
        u32_at(req, 40),
        u32_at(req, 44),
        u32_at(req, 48),
        u32_at(req, 52),
        u32_at(req, 56),
    );
    assert_eq!(major, 7);
    let offered = flags & INIT_EXT != 0 && flags2 & OVER_IO_URING_FLAGS2 != 0;
    let mut out = vec![0u8; 16 + 64];
    out[0..4].copy_from_slice(&80u32.to_ne_bytes());
    out[8..16].copy_from_slice(&unique.to_ne_bytes());
    let o = &mut out[16..];
    o[0..4].copy_from_slice(&7u32.to_ne_bytes());
    o[4..8].copy_from_slice(&minor.min(45).to_ne_bytes());
    o[8..12].copy_from_slice(&readahead.to_ne_bytes());
    o[12..16].copy_from_slice(&((INIT_EXT | MAX_PAGES) & flags).to_ne_bytes());
    o[16..18].copy_from_slice(&16u16.to_ne_bytes()); // max_background
    o[18..20].copy_from_slice(&12u16.to_ne_bytes()); // congestion_threshold
    o[20..24].copy_from_slice(&MAX_WRITE.to_ne_bytes());
    o[24..28].copy_from_slice(&1u32.to_ne_bytes()); // time_gran
    o[28..30].copy_from_slice(&((MAX_WRITE / 4096) as u16).to_ne_bytes()); // max_pages
    o[32..36].copy_from_slice(&(flags2 & OVER_IO_URING_FLAGS2).to_ne_bytes());
    dev.write_all(&out).expect("INIT reply");
    if !offered {
        let _ = fuse_uring_support::umount(mnt, libc::MNT_DETACH);
        return None;
    }
    Some(fuse)
}

fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET and sched_setaffinity get valid pointers.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
    }
}

/// The client errors: ENOENT (answered), EINTR (dropped), EIO (panicked), other.
#[derive(Default, Debug)]
struct Outcomes {
    enoent: usize,
    eintr: usize,
    eio: usize,
    other: Vec<String>,
}

fn clients(mnt: PathBuf, progress: Arc<AtomicUsize>) -> Vec<std::thread::JoinHandle<Outcomes>> {
    (0..CLIENTS)
        .map(|c| {
            let mnt = mnt.clone();
            let progress = Arc::clone(&progress);
            std::thread::spawn(move || {
                pin_to(c % fuse_uring_support::possible_cpus());
                let mut o = Outcomes::default();
                for i in 0..STATS_PER_CLIENT {
                    progress.fetch_add(1, Ordering::SeqCst);
                    match std::fs::symlink_metadata(mnt.join(format!("c{c}-{i}"))) {
                        Ok(_) => o.other.push("stat succeeded".into()),
                        Err(e) => match e.raw_os_error() {
                            Some(libc::ENOENT) => o.enoent += 1,
                            Some(libc::EINTR) => o.eintr += 1,
                            Some(libc::EIO) => o.eio += 1,
                            _ => o.other.push(e.to_string()),
                        },
                    }
                }
                o
            })
        })
        .collect()
}

/// Answer a request other than LOOKUP: the root's attributes for GETATTR, ENOSYS otherwise.
fn answer_other(mut req: Fetched<Fuse>, committed: &RefCell<HashMap<u64, u32>>) {
    let opcode = u32_at(req.header(), 4);
    if opcode == FUSE_GETATTR {
        // fuse_attr_out: attr_valid, attr_valid_nsec, dummy, then fuse_attr (ino at 0,
        // mode at 60, nlink at 64).
        let p = &mut req.payload_mut()[..104];
        p.fill(0);
        p[16..24].copy_from_slice(&1u64.to_ne_bytes());
        p[76..80].copy_from_slice(&(libc::S_IFDIR | 0o755).to_ne_bytes());
        p[80..84].copy_from_slice(&2u32.to_ne_bytes());
        reply(req.header_mut(), 0, 104);
    } else {
        reply(req.header_mut(), -libc::ENOSYS, 0);
    }
    *committed
        .borrow_mut()
        .entry(u64_at(req.header(), 8))
        .or_default() += 1;
    req.commit();
}

/// Answer `req` with ENOENT; count it.
fn answer(mut req: Fetched<Fuse>, committed: &RefCell<HashMap<u64, u32>>) {
    reply(req.header_mut(), -libc::ENOENT, 0);
    *committed
        .borrow_mut()
        .entry(u64_at(req.header(), 8))
        .or_default() += 1;
    req.commit();
}

#[test]
fn random_drops_commit_every_request_exactly_once() {
    let _enabled = match fuse_uring_support::UringEnabled::acquire() {
        Ok(g) => g,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let mnt = std::env::temp_dir().join(format!("rl-fuse-drops-{}", std::process::id()));
    std::fs::create_dir_all(&mnt).unwrap();
    let Some(fuse) = mount_and_init(&mnt) else {
        eprintln!("skipped: the kernel did not offer FUSE_OVER_IO_URING with enable_uring=Y");
        return;
    };
    let deliberate = "deliberate panic with a fetched request";
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let p = info.payload();
        let msg = p
            .downcast_ref::<&str>()
            .copied()
            .or(p.downcast_ref::<String>().map(|s| s.as_str()));
        if msg != Some(deliberate) {
            default_hook(info);
        }
    }));

    let rt = Builder::new().sqe128(true).build_local().expect("ring");
    let fetched: Rc<RefCell<HashMap<u64, u32>>> = Rc::default();
    let committed: Rc<RefCell<HashMap<u64, u32>>> = Rc::default();
    let abandoned: Rc<RefCell<HashMap<u64, u32>>> = Rc::default();
    let lookups_fetched: Rc<RefCell<usize>> = Rc::default();
    let progress = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    // A request never committed would block its client forever: fail instead of hanging.
    let watchdog = fuse_uring_support::watchdog(
        mnt.clone(),
        Arc::clone(&progress),
        Arc::clone(&finished),
        std::time::Duration::from_secs(30),
    );
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let stats = rt.block_on({
        let (fetched, committed, abandoned) =
            (fetched.clone(), committed.clone(), abandoned.clone());
        let lookups_fetched = Rc::clone(&lookups_fetched);
        let (progress, mnt, outcomes) = (Arc::clone(&progress), mnt.clone(), Arc::clone(&outcomes));
        async move {
            let fuse = Rc::new(fuse);
            let mut queues = Vec::new();
            for qid in 0..fuse_uring_support::possible_cpus() {
                let proto = Fuse {
                    qid: qid as u16,
                    abandoned: Rc::clone(&abandoned),
                };
                queues.push(
                    CmdQueue::new(
                        Rc::clone(&fuse),
                        proto,
                        DEPTH,
                        HEADER_LEN,
                        MAX_WRITE as usize,
                    )
                    .expect("queue"),
                );
            }
            let handles = clients(mnt.clone(), Arc::clone(&progress));
            // When the clients are done, unmount: every armed slot then ends with ENOTCONN.
            let waiter = std::thread::spawn(move || {
                let mut all = Vec::new();
                for h in handles {
                    all.push(h.join().expect("client thread"));
                }
                *outcomes.lock().unwrap() = all;
                if fuse_uring_support::umount(&mnt, 0).is_err() {
                    // Busy, or the watchdog detached it already: end the connection anyway.
                    fuse_uring_support::abort(&mnt);
                }
            });
            let mut rng = Rng::new(0x5eed_f05e);
            let mut merged = futures::stream::select_all(queues.iter_mut());
            while let Some(item) = merged.next().await {
                let req = match item {
                    Ok(r) => r,
                    Err(e) => {
                        assert_eq!(e.raw_os_error(), Some(libc::ENOTCONN), "slot error: {e}");
                        continue;
                    }
                };
                let unique = u64_at(req.header(), 8);
                *fetched.borrow_mut().entry(unique).or_default() += 1;
                if u32_at(req.header(), 4) != FUSE_LOOKUP {
                    answer_other(req, &committed);
                    continue;
                }
                *lookups_fetched.borrow_mut() += 1;
                match rng.below(6) {
                    0 => answer(req, &committed),
                    1 => {
                        let committed = Rc::clone(&committed);
                        spawn(async move {
                            for _ in 0..3 {
                                yield_now().await;
                            }
                            answer(req, &committed);
                        })
                        .detach();
                    }
                    2 => {
                        // A task holding the request, aborted by another a little later.
                        let holder = spawn(async move {
                            let _req = req;
                            futures::future::pending::<()>().await;
                        });
                        spawn(async move {
                            yield_now().await;
                            holder.abort();
                        })
                        .detach();
                    }
                    3 => spawn(async move {
                        let _req = req;
                        yield_now().await;
                        panic!("{}", deliberate);
                    })
                    .detach(),
                    4 => drop(req),
                    _ => {
                        // A request inside the losing branch of a select.
                        let holder = async move {
                            let _req = req;
                            futures::future::pending::<()>().await;
                        };
                        futures::future::select(Box::pin(holder), Box::pin(yield_now())).await;
                    }
                }
            }
            drop(merged);
            waiter.join().expect("client waiter");
            queues.iter().map(|q| q.stats()).collect::<Vec<_>>()
        }
    });
    drop(rt);
    finished.store(true, Ordering::SeqCst);
    assert!(
        !watchdog.join().unwrap(),
        "a client blocked: some request was never committed"
    );
    let _ = std::fs::remove_dir(&mnt);

    let fetched = fetched.borrow();
    let committed = committed.borrow();
    let abandoned = abandoned.borrow();
    let lookups = CLIENTS * STATS_PER_CLIENT;
    assert_eq!(*lookups_fetched.borrow(), lookups, "one LOOKUP per stat");
    for (&unique, &n) in fetched.iter() {
        assert_eq!(n, 1, "unique {unique} fetched {n} times");
        let c = committed.get(&unique).copied().unwrap_or(0);
        let a = abandoned.get(&unique).copied().unwrap_or(0);
        assert_eq!(
            c + a,
            1,
            "unique {unique}: committed {c} times, abandoned {a} times"
        );
    }
    assert_eq!(
        committed.len() + abandoned.len(),
        fetched.len(),
        "no commit of an unknown request"
    );
    let dropped: usize = abandoned.values().map(|&n| n as usize).sum();
    assert!(dropped >= 10_000, "only {dropped} requests were dropped");

    let total = stats.iter().fold((0, 0, 0), |t, s| {
        (t.0 + s.fetched, t.1 + s.committed, t.2 + s.abandoned)
    });
    assert_eq!(total.0 as usize, fetched.len(), "queue stats: {stats:?}");
    assert_eq!(total.1 as usize, committed.len());
    assert_eq!(total.2 as usize, dropped);
    assert!(
        stats.iter().all(|s| s.fetched > 0),
        "both queues carried requests: {stats:?}"
    );

    let outcomes = outcomes.lock().unwrap();
    let sum = |f: fn(&Outcomes) -> usize| outcomes.iter().map(f).sum::<usize>();
    let others: Vec<_> = outcomes.iter().flat_map(|o| o.other.iter()).collect();
    assert!(others.is_empty(), "unexpected client results: {others:?}");
    assert_eq!(
        sum(|o| o.enoent + o.eintr + o.eio),
        lookups,
        "every client call returned"
    );
    assert_eq!(
        sum(|o| o.eintr + o.eio),
        dropped,
        "a dropped request fails its client call"
    );
    assert!(sum(|o| o.eio) > 0, "panics answer EIO");
    assert!(sum(|o| o.eintr) > 0, "drops answer EINTR");
    eprintln!(
        "fetched {}, committed {}, dropped {dropped} (EINTR {}, EIO {}), queues {stats:?}",
        fetched.len(),
        committed.len(),
        sum(|o| o.eintr),
        sum(|o| o.eio)
    );
}
