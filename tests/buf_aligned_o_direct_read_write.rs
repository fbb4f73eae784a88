//! Acceptance (e): `O_DIRECT` read and write with `AlignedBuf` (alignment from `statx`
//! `STATX_DIOALIGN`), with a `Slice` of one, and with a `FixedPool` lease through
//! `READ_FIXED`/`WRITE_FIXED`. Skips with a printed reason where the file system refuses
//! `O_DIRECT`. A deliberately misaligned buffer is refused by the kernel, which shows that
//! the alignment is what makes the aligned cases work.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::rc::Rc;

use ringleader::buf::{AlignedBuf, FixedPool, IoBuf, dio_align};
use ringleader::fd::{read, write};
use ringleader::lease_ops::{read_fixed, write_fixed};

const LEN: usize = 64 << 10;

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn o_direct_round_trips_with_aligned_buffers_and_leases() {
    let dir = std::path::PathBuf::from("/var/tmp");
    let dir = if dir.is_dir() {
        dir
    } else {
        std::env::temp_dir()
    };
    let path = dir.join(format!("ringleader-odirect-{}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path);
    let file = match file {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            eprintln!(
                "skipped: the file system of {} refuses O_DIRECT ({e})",
                dir.display()
            );
            return;
        }
        Err(e) => panic!("open {}: {e}", path.display()),
    };
    std::fs::remove_file(&path).unwrap();
    let align = dio_align(file.as_fd()).unwrap();
    if align.is_none() {
        eprintln!(
            "no STATX_DIOALIGN for {}: page alignment is used",
            dir.display()
        );
    }
    // The owner each op holds until its final CQE.
    let file = Rc::new(OwnedFd::from(file));
    let fd = &file;

    ringleader::block_on(async {
        // Write 64 KiB from an AlignedBuf sized and aligned for this file.
        let mut out = AlignedBuf::for_file(file.as_fd(), LEN).unwrap();
        if let Some(a) = align {
            assert_eq!(out.stable_ptr() as usize % a.mem, 0);
            assert_eq!(out.capacity() % a.offset, 0);
        }
        out.extend_from_slice(&pattern(1, LEN));
        let (r, _out) = write(fd, out, 0).await;
        assert_eq!(r.unwrap(), LEN);

        // Read it back whole.
        let inb = AlignedBuf::for_file(file.as_fd(), LEN).unwrap();
        let (r, inb) = read(fd, inb, 0).await;
        assert_eq!(r.unwrap(), LEN);
        assert_eq!(&inb[..], &pattern(1, LEN)[..]);

        // Read 4 KiB at 8 KiB into the second page of a buffer, through a Slice.
        let mut inb = inb;
        inb.set_len(0);
        let (r, slice) = read(fd, inb.slice(4096..8192), 8192).await;
        assert_eq!(r.unwrap(), 4096);
        let inb = slice.into_inner();
        assert_eq!(
            inb.len(),
            0,
            "a slice past the initialised prefix does not extend it"
        );
        let mut check = inb;
        check.set_len(8192);
        assert_eq!(&check[4096..8192], &pattern(1, LEN)[8192..12288]);

        // Fixed buffers: a lease written with WRITE_FIXED at 64 KiB, read back with
        // READ_FIXED (pool slots are page-aligned).
        let pool = FixedPool::new(LEN, 2).unwrap();
        let mut lease = pool.lease(LEN).await.unwrap();
        lease.extend_from_slice(&pattern(7, LEN));
        let (r, lease) = write_fixed(fd, lease, LEN as u64).await;
        assert_eq!(r.unwrap(), LEN);
        drop(lease);
        let lease = pool.lease(LEN).await.unwrap();
        let (r, lease) = read_fixed(fd, lease, LEN as u64).await;
        assert_eq!(r.unwrap(), LEN);
        assert_eq!(&lease[..], &pattern(7, LEN)[..]);

        // A buffer one byte off the alignment is refused: alignment is what made the rest
        // work.
        if let Some(a) = align.filter(|a| a.mem > 1) {
            let off = AlignedBuf::new(2 * LEN, a.mem.max(4096));
            let (r, _) = read(fd, off.slice(1..1 + LEN), 0).await;
            assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EINVAL));
        }
    });
}
