//! Block status: the `base:allocation` metadata context and `NBD_CMD_BLOCK_STATUS`.
//!
//! A client that negotiated structured replies or extended headers may select `base:allocation` with
//! `NBD_OPT_SET_META_CONTEXT` (see `handshake.rs`); it then asks which parts of a range are
//! holes with `NBD_CMD_BLOCK_STATUS`, and the server answers from the image's extents
//! (`SEEK_DATA`/`SEEK_HOLE`): a hole is `NBD_STATE_HOLE | NBD_STATE_ZERO` (it reads as
//! zeroes), data is 0. That is what lets `nbdinfo --map`, `qemu-img map` and sparse-aware
//! copies (`qemu-img convert`, `nbdcopy`) skip the holes.
//!
//! # Cost
//!
//! io_uring has no `lseek`, so the core asks the file system itself: `SEEK_DATA`/`SEEK_HOLE`
//! are extent-tree lookups (ext4, XFS, btrfs), no data is read, and one reply carries at
//! most [`MAX_DESCRIPTORS`] extents (the protocol lets the server describe less than the
//! whole range; the client asks again from where the answer stopped). File systems and
//! block devices without `SEEK_DATA` report everything as data, which the protocol allows.
//! Unwritten (preallocated) extents are reported as holes by the file system when they read
//! as zeroes, which is what `base:allocation` means by a hole.
//!
//! # Extended headers
//!
//! With extended headers a request's length is 64 bits, so one extent may be longer than
//! 4 GiB (a large hole): the reply is then `NBD_REPLY_TYPE_BLOCK_STATUS_EXT`, whose
//! descriptors carry 64-bit lengths. Compact requests ask for at most `u32::MAX` bytes, and
//! no extent is longer than the range asked for, so their 32-bit descriptors always fit.

use std::io;
use std::os::fd::AsRawFd;

use ringleader::buf::AlignedBuf;

use crate::image::seek;
use crate::proto::{Framing, STATE_HOLE, STATE_ZERO};

/// The one metadata context the server knows.
pub const BASE_ALLOCATION: &str = "base:allocation";
/// Its id on every connection (ids are the server's choice; 0 is avoided so a client bug
/// that sends zeroes stands out).
pub const BASE_ALLOCATION_ID: u32 = 1;
/// The most extents one reply describes (8 KiB of compact descriptors, 16 KiB extended).
pub const MAX_DESCRIPTORS: usize = 1024;

/// One block status descriptor: `len` bytes with `flags`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub len: u64,
    pub flags: u32,
}

/// The allocation status of `len > 0` bytes at `pos` of `image`, as consecutive extents
/// from `pos` with alternating flags: at most `max` of them (`>= 1`), covering at most
/// `len` bytes (all of them unless `max` ran out).
pub fn allocation(image: &impl AsRawFd, pos: u64, len: u64, max: usize) -> io::Result<Vec<Extent>> {
    let end = pos + len;
    let mut out: Vec<Extent> = Vec::new();
    let mut at = pos;
    while at < end {
        // `seek` gives `None` past the last data (the rest is a hole) or past the end of the
        // file (the image shrank: reads there fail, but nothing is allocated).
        let data = seek(image, at, libc::SEEK_DATA)?.unwrap_or(end);
        let (stop, flags) = if data > at {
            (data, STATE_HOLE | STATE_ZERO)
        } else {
            (seek(image, at, libc::SEEK_HOLE)?.unwrap_or(end), 0)
        };
        // A file system may round to its blocks, but never report an extent that does not
        // move forward; guard anyway, so a broken `lseek` cannot loop forever.
        let stop = stop.clamp(at + 1, end);
        let n = stop - at;
        if let Some(last) = out.last_mut().filter(|last| last.flags == flags) {
            last.len += n;
        } else if out.len() < max {
            out.push(Extent { len: n, flags });
        } else {
            break;
        }
        at = stop;
    }
    Ok(out)
}

/// The descriptors of a block status chunk (the context id, and the count, are in the
/// chunk's head, see `Head::block_status`): for `NBD_REPLY_TYPE_BLOCK_STATUS` each extent's
/// 32-bit length and flags; extended (`NBD_REPLY_TYPE_BLOCK_STATUS_EXT`), its 64-bit length
/// and its flags as 64 bits.
pub fn encode(extents: &[Extent], framing: Framing) -> AlignedBuf {
    let extended = framing == Framing::Extended;
    let mut v = AlignedBuf::new(if extended { 16 } else { 8 } * extents.len(), 8);
    for e in extents {
        if extended {
            v.extend_from_slice(&e.len.to_be_bytes());
            v.extend_from_slice(&u64::from(e.flags).to_be_bytes());
        } else {
            // A compact request covers at most u32::MAX bytes, and so does every extent.
            let len = u32::try_from(e.len).expect("compact block status within 32 bits");
            v.extend_from_slice(&len.to_be_bytes());
            v.extend_from_slice(&e.flags.to_be_bytes());
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    const HOLE: u32 = STATE_HOLE | STATE_ZERO;

    /// A 1 MiB sparse file with data at 256 KiB..320 KiB and 768 KiB..1 MiB (in the temporary
    /// directory, which must be on a file system with holes: ext4, XFS, btrfs, tmpfs).
    fn sparse() -> (std::fs::File, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("nbd-status-{}", std::process::id()));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        f.set_len(1 << 20).unwrap();
        f.write_all_at(&[7u8; 64 << 10], 256 << 10).unwrap();
        f.write_all_at(&[7u8; 256 << 10], 768 << 10).unwrap();
        (f, path)
    }

    #[test]
    fn holes_and_data_alternate_within_the_range() {
        let (f, path) = sparse();
        let all = allocation(&f, 0, 1 << 20, MAX_DESCRIPTORS).unwrap();
        let inner = allocation(&f, 300 << 10, 500 << 10, MAX_DESCRIPTORS).unwrap();
        let one = allocation(&f, 0, 1 << 20, 1).unwrap();
        std::fs::remove_file(path).unwrap();
        let k = 1 << 10;
        let want = [(256 * k, HOLE), (64 * k, 0), (448 * k, HOLE), (256 * k, 0)];
        let got: Vec<(u64, u32)> = all.iter().map(|e| (e.len, e.flags)).collect();
        assert_eq!(got, want);
        let got: Vec<(u64, u32)> = inner.iter().map(|e| (e.len, e.flags)).collect();
        assert_eq!(got, [(20 * k, 0), (448 * k, HOLE), (32 * k, 0)]);
        assert_eq!(
            one,
            [Extent {
                len: 256 * k,
                flags: HOLE
            }]
        );
    }

    #[test]
    fn descriptors_are_8_bytes_compact_and_16_extended() {
        let e = [
            Extent {
                len: 5 << 30,
                flags: HOLE,
            },
            Extent { len: 512, flags: 0 },
        ];
        let ext = encode(&e, Framing::Extended);
        assert_eq!(ext.len(), 32);
        assert_eq!(u64::from_be_bytes(ext[0..8].try_into().unwrap()), 5 << 30);
        assert_eq!(u64::from_be_bytes(ext[8..16].try_into().unwrap()), 3);
        let compact = encode(&e[1..], Framing::Structured);
        assert_eq!(&compact[..], &[0, 0, 2, 0, 0, 0, 0, 0]);
    }
}
