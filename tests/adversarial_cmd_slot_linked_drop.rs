//! The commit rule for kernel-linked commits (`Fetched::commit_linked`, design §7): a
//! chain dropped in flight still answers its request exactly once.
//!
//! A FUSE mount served by hand over io_uring; clients on CPU 0 (queue 0, whose commit fits
//! a 64-byte SQE and so is linked) look up names. Each LOOKUP gets the reply ENOENT in its
//! header and a linked chain whose read comes either from an empty pipe (it waits in the
//! kernel) or from /dev/zero (it completes at once, full), and the chain future is dropped
//! right away: the pipe read is cancelled, which breaks the chain, so the kernel cancels the
//! commit and the queue must answer with EINTR; the /dev/zero chain runs its commit and the
//! client gets ENOENT. Every client must return with one of those, and no commit may fail
//! (a second commit of one request would).

mod fuse_uring_support;

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::rc::Rc;
use std::sync::mpsc;

use futures::StreamExt;
use ringleader::cmd_slot::{CmdQueue, Fetched, LinkedRead, SlotAddr, SlotProtocol};
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

fn pin_cpu0() {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET and sched_setaffinity get valid pointers.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
    }
}

const CLIENTS: usize = 40;

#[test]
fn adversarial_cmd_slot_linked_commit_dropped_answers_once() {
    let _enabled = match fuse_uring_support::UringEnabled::acquire() {
        Ok(g) => g,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let mnt = std::env::temp_dir().join(format!("rl-adv-cmdslot-linked-{}", std::process::id()));
    std::fs::create_dir_all(&mnt).unwrap();
    let Some(fuse) = mount_and_init(&mnt) else {
        eprintln!("skipped: the kernel did not offer FUSE_OVER_IO_URING with enable_uring=Y");
        return;
    };
    // Whatever happens below (a failed assertion included), end the connection: the ring's
    // commands would otherwise keep it, and the clients blocked on it, for good.
    struct AbortOnDrop(std::path::PathBuf);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            fuse_uring_support::abort(&self.0);
        }
    }
    let _abort = AbortOnDrop(mnt.clone());
    // The clients: one lookup each, one after the other, on CPU 0; each result's errno.
    let (done_tx, done_rx) = mpsc::channel::<Option<i32>>();
    let clients = {
        let mnt = mnt.clone();
        std::thread::spawn(move || {
            pin_cpu0();
            for i in 0..CLIENTS {
                let r = std::fs::symlink_metadata(mnt.join(format!("name{i}")));
                let _ = done_tx.send(r.err().and_then(|e| e.raw_os_error()));
            }
            // Every answer is in: tell the server (answered without a chain).
            let _ = std::fs::symlink_metadata(mnt.join("stop"));
        })
    };
    let rt = ringleader::Builder::new()
        .sqe128(true)
        .build_local()
        .expect("ring");
    let (stats, answers, lookups) = rt.block_on({
        let mnt = mnt.clone();
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
            let mut fds = [0; 2];
            // SAFETY: `fds` has room for the two fds pipe2 writes.
            assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
            // SAFETY: fresh fds owned by nobody else.
            let (pipe_r, _pipe_w) =
                unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
            let pipe_r = Rc::new(pipe_r);
            let zero = Rc::new(OwnedFd::from(std::fs::File::open("/dev/zero").unwrap()));
            let (stop_aborter, stopped) = mpsc::channel::<()>();
            let aborter = {
                let mnt = mnt.clone();
                std::thread::spawn(move || {
                    // Only if something hangs: fail instead of waiting for good.
                    let timeout = std::time::Duration::from_secs(60);
                    if stopped.recv_timeout(timeout) == Err(mpsc::RecvTimeoutError::Timeout) {
                        fuse_uring_support::abort(&mnt);
                    }
                })
            };
            let mut lookups = 0;
            let mut merged = futures::stream::select_all(queues.iter_mut());
            loop {
                let Some(Ok(mut req)) = merged.next().await else {
                    break;
                };
                if u32_at(req.header(), 4) != FUSE_LOOKUP {
                    answer_other(req);
                } else if req.payload().starts_with(b"stop\0") {
                    reply(req.header_mut(), -libc::ENOENT, 0);
                    req.commit();
                    break;
                } else {
                    reply(req.header_mut(), -libc::ENOENT, 0);
                    let from_pipe = lookups % 2 == 0;
                    lookups += 1;
                    let read = if from_pipe {
                        LinkedRead::new(&pipe_r, u64::MAX, 0..64)
                    } else {
                        LinkedRead::new(&zero, 0, 0..64)
                    };
                    match req.commit_linked(vec![read]) {
                        Ok(chain) => drop(chain),
                        Err(_) => panic!("queue 0's commit could not be linked"),
                    }
                }
            }
            // The clients sent every answer before the stop lookup.
            let answers: Vec<_> = done_rx.try_iter().collect();
            drop(merged);
            let stats: Vec<_> = queues.iter().map(|q| q.stats()).collect();
            fuse_uring_support::abort(&mnt);
            let _ = fuse_uring_support::umount(&mnt, libc::MNT_DETACH);
            drop(stop_aborter);
            aborter.join().expect("aborter");
            (stats, answers, lookups)
        }
    });
    assert_eq!(lookups, CLIENTS, "lookups answered by chains: {stats:?}");
    clients.join().expect("clients");
    let _ = std::fs::remove_dir_all(&mnt);
    let eintr = answers.iter().filter(|a| **a == Some(libc::EINTR)).count();
    let enoent = answers.iter().filter(|a| **a == Some(libc::ENOENT)).count();
    assert_eq!(
        answers.len(),
        CLIENTS,
        "every client got an answer: {answers:?}"
    );
    assert_eq!(
        eintr + enoent,
        CLIENTS,
        "each answer is EINTR or ENOENT: {answers:?}"
    );
    assert!(eintr > 0, "no dropped chain broke (no EINTR): {answers:?}");
    assert!(
        enoent > 0,
        "no dropped chain ran its commit (no ENOENT): {answers:?}"
    );
    let q0 = stats[0];
    assert_eq!(
        q0.failed, 0,
        "a commit failed (a request committed twice?): {stats:?}"
    );
    assert_eq!(
        q0.abandoned as usize, eintr,
        "the queue answered each broken chain: {stats:?}"
    );
}
