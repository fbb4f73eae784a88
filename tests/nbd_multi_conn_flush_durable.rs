//! `NBD_FLAG_CAN_MULTI_CONN`: a FLUSH on one connection makes durable every write already
//! acknowledged on any connection. Writes acknowledged on connection A (no FUA), then a
//! FLUSH on connection B: after B's reply, no page the writes touched is dirty or under
//! writeback, in the image and (with `--mirror`) in the mirror; and B reads what A wrote.
//!
//! Durability without a power cut: `cachestat(2)` (Linux 6.5) counts a file's page-cache
//! pages that are dirty or under writeback over a range. A page that is neither has reached
//! the disk. Before the flush the test checks that there *were* such pages (otherwise the
//! flush had nothing to do and the round proves nothing): if the kernel's background
//! writeback cleaned them first, the round is repeated with fresh data.
//!
//! The image lives under cargo's `target/tmp`, on the build's disk: a tmpfs has no dirty
//! accounting at all (`cachestat` reports 0 dirty pages right after a write there — checked
//! by hand on /dev/shm; on ext4 the same write shows every page dirty until `fdatasync`), so
//! the test skips on one. It proved it can fail by hand: with B's FLUSH left out, the first
//! round fails with every written page still dirty.
//!
//! Each round opens a new connection B, so over the rounds B lands on either of the
//! server's two cores (`SO_REUSEPORT`), the same as A's or another.

mod nbd_common;

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use nbd_common::*;

const IMAGE: u64 = 128 << 20;
/// The writes stay below this offset.
const SPAN: u64 = 64 << 20;
/// Rounds that must see dirty pages before B's flush.
const ROUNDS: u64 = 3;
/// Rounds tried at most (some may find their pages cleaned by background writeback).
const ATTEMPTS: u64 = 12;
/// `NBD_FLAG_CAN_MULTI_CONN`.
const FLAG_CAN_MULTI_CONN: u16 = 1 << 8;

/// `cachestat(2)`: the same number on every architecture (new system calls share one table).
const SYS_CACHESTAT: libc::c_long = 451;

/// `struct cachestat_range` (include/uapi/linux/mman.h).
#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

/// `struct cachestat`: page counts over the range.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

const _: () = assert!(size_of::<CachestatRange>() == 16 && size_of::<Cachestat>() == 40);

impl Cachestat {
    /// Pages not yet on the disk.
    fn unstable(&self) -> u64 {
        self.nr_dirty + self.nr_writeback
    }
}

fn cachestat(file: &File, off: u64, len: u64) -> io::Result<Cachestat> {
    let range = CachestatRange { off, len };
    let mut stat = Cachestat::default();
    // SAFETY: cachestat(2) reads one `struct cachestat_range` from `range` and writes one
    // `struct cachestat` to `stat` (both `repr(C)` with the kernel's layout, checked above,
    // and live for the call); flags must be 0.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const CachestatRange,
            &mut stat as *mut Cachestat,
            0u32,
        )
    };
    if r == 0 {
        Ok(stat)
    } else {
        Err(io::Error::last_os_error())
    }
}

#[test]
fn flush_on_b_makes_writes_acknowledged_on_a_durable() {
    flush_on_b(false);
}

#[test]
fn flush_on_b_makes_writes_acknowledged_on_a_durable_in_the_mirror_too() {
    flush_on_b(true);
}

/// One round's writes: (offset, length), on each of the server's write paths — up to
/// 64 KiB inline `pwrite` on ext4, 1 MiB from a registered buffer, 4 MiB from the heap —
/// some not page-aligned. About 26 MiB.
fn plan() -> Vec<(u64, usize)> {
    let mut w = Vec::new();
    w.extend((0..64).map(|i| (i * (128 << 10), 4 << 10)));
    w.extend((0..32).map(|i| ((8 << 20) + i * (256 << 10), 64 << 10)));
    w.extend((0..8).map(|i| ((16 << 20) + i * (2 << 20), 1 << 20)));
    w.extend((0..4).map(|i| ((32 << 20) + i * (8 << 20), 4 << 20)));
    w.extend([(12_345, 70_000), ((17 << 20) + 1000, 300_000)]);
    w.sort_unstable();
    assert!(
        w.windows(2).all(|p| p[0].0 + p[0].1 as u64 <= p[1].0),
        "the writes do not overlap (pipelined, they may land in any order)"
    );
    w
}

fn flush_on_b(mirror: bool) {
    let image = disk_file("multi-conn", IMAGE);
    let mirror_path = TempPath::on_disk("multi-conn-mirror");
    if !dirty_pages_counted(image.path()) {
        return;
    }
    let mut args = vec!["--image", image.path().to_str().unwrap()];
    if mirror {
        args.extend(["--mirror", mirror_path.path().to_str().unwrap()]);
    }
    let mut server = Server::start(&args);
    let mut files = vec![("image", File::open(image.path()).unwrap())];
    if mirror {
        files.push(("mirror", File::open(mirror_path.path()).unwrap()));
    }
    let stat = |f: &File| cachestat(f, 0, SPAN).expect("cachestat");

    let (mut a, size, flags) = Raw::ready(server.addr, false);
    assert_eq!(size, IMAGE);
    assert_ne!(flags & FLAG_CAN_MULTI_CONN, 0, "CAN_MULTI_CONN advertised");
    let plan = plan();
    let (mut proved, mut raced) = (0, 0);
    for round in 1..=ATTEMPTS {
        if proved == ROUNDS {
            break;
        }
        let (mut b, _, flags) = Raw::ready(server.addr, false);
        assert_ne!(
            flags & FLAG_CAN_MULTI_CONN,
            0,
            "CAN_MULTI_CONN advertised to B"
        );

        let data = write_all(&mut a, &plan, round);
        let before: Vec<Cachestat> = files.iter().map(|(_, f)| stat(f)).collect();
        if before.iter().any(|s| s.unstable() == 0) {
            raced += 1;
            eprintln!(
                "round {round}: background writeback cleaned the writes before B's flush \
                 ({before:?}); again with fresh data"
            );
            b.disconnect();
            continue;
        }

        b.request(0, CMD_FLUSH, 7, 0, 0);
        assert_eq!(b.simple(), (0, 7), "round {round}: B's FLUSH succeeded");
        for ((name, f), before) in files.iter().zip(&before) {
            let after = stat(f);
            assert!(
                after.unstable() == 0,
                "round {round}: after B's FLUSH reply the {name} still has {} dirty and {} \
                 writeback pages in the range A wrote (before the flush: {} and {}): writes \
                 acknowledged on A are not durable\nbefore {before:?}\nafter {after:?}",
                after.nr_dirty,
                after.nr_writeback,
                before.nr_dirty,
                before.nr_writeback
            );
        }
        for (i, (&(off, len), bytes)) in plan.iter().zip(&data).enumerate() {
            let back = b
                .read(1000 + i as u64, off, len as u32)
                .unwrap_or_else(|e| {
                    panic!("round {round}: B's READ of {len} bytes at {off} failed: error {e}")
                });
            assert!(
                back == *bytes,
                "round {round}: B read other bytes at {off} (+{len}) than A wrote"
            );
        }
        b.disconnect();
        eprintln!(
            "round {round}: before B's flush {:?} pages dirty/writeback, after none",
            before
                .iter()
                .map(|s| (s.nr_dirty, s.nr_writeback))
                .collect::<Vec<_>>()
        );
        proved += 1;
    }
    assert_eq!(
        proved, ROUNDS,
        "in {raced} of {ATTEMPTS} rounds background writeback cleaned A's writes before B's \
         flush: the test could not show what the flush does"
    );
    a.disconnect();
    assert!(server.alive(), "the server survived");
    server.stop();
    if mirror {
        let (img, mir) = (
            std::fs::read(image.path()).unwrap(),
            std::fs::read(mirror_path.path()).unwrap(),
        );
        assert!(img == mir, "the mirror holds the image's bytes");
    }
}

/// Send every write of `plan` on `c` (pipelined, without FUA), then wait until all are
/// acknowledged; returns the data written.
fn write_all(c: &mut Raw, plan: &[(u64, usize)], round: u64) -> Vec<Vec<u8>> {
    let data: Vec<Vec<u8>> = plan
        .iter()
        .enumerate()
        .map(|(i, &(_, len))| pseudo_random(len, (round << 16) | i as u64))
        .collect();
    for (i, (&(off, len), bytes)) in plan.iter().zip(&data).enumerate() {
        c.request(0, CMD_WRITE, i as u64, off, len as u32);
        c.send(bytes);
    }
    let mut acked = vec![false; plan.len()];
    for _ in plan {
        let (err, handle) = c.simple();
        assert_eq!(err, 0, "round {round}: A's WRITE {handle} failed");
        let seen = acked
            .get_mut(handle as usize)
            .unwrap_or_else(|| panic!("round {round}: A got a reply to unknown handle {handle}"));
        assert!(!*seen, "round {round}: WRITE {handle} acknowledged twice");
        *seen = true;
    }
    data
}

/// Whether `path`'s file system counts dirty pages (tmpfs and ramfs do not) and the kernel
/// has `cachestat` (Linux 6.5); if not, print why the test is skipped.
fn dirty_pages_counted(path: &Path) -> bool {
    let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: an all-zero `statfs` is a valid value of the plain C struct it is.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is a NUL-terminated path and `fs` a `statfs` to fill, both live for
    // the call.
    let r = unsafe { libc::statfs(c_path.as_ptr(), &mut fs) };
    assert_eq!(
        r,
        0,
        "statfs {}: {}",
        path.display(),
        io::Error::last_os_error()
    );
    // ramfs: include/uapi/linux/magic.h (not in the libc crate).
    const RAMFS_MAGIC: libc::c_long = 0x8584_58f6;
    if matches!(fs.f_type, libc::TMPFS_MAGIC | RAMFS_MAGIC) {
        eprintln!(
            "SKIP: {} is on a tmpfs/ramfs, which keeps no dirty page counts to show a flush by",
            path.display()
        );
        return false;
    }
    match cachestat(&File::open(path).unwrap(), 0, 0) {
        Ok(_) => true,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
            eprintln!("SKIP: no cachestat(2) ({e}): it needs Linux 6.5");
            false
        }
        Err(e) => panic!("cachestat on {}: {e}", path.display()),
    }
}
