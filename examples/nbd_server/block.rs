//! [`Block`]: the memory holding one request's data, and how it moves between the socket and
//! the files.
//!
//! A block is a [`Lease`] from the core's registered [`FixedPool`] when one fits and is free,
//! or an aligned heap buffer otherwise (requests larger than the pool's largest slot, an
//! exhausted class, or no pool at all). Never waiting for a pool slot keeps one client that
//! stops reading its replies from stalling every other connection of its core.
//!
//! Leases take the zero-copy paths of `ringleader::group` (see `export.rs` and
//! [`Block::send_all`]): `READ_FIXED`/`WRITE_FIXED` against the files, a group that fans one
//! lease out to the image and every mirror, and `SEND_ZC` with a fixed buffer for large
//! replies. Heap blocks take the plain owned-buffer ops. Nothing here is `unsafe`: the lease
//! rule (a slot is reused only after every op that referenced it has completed) is kept by
//! the runtime's lease count.

use std::io;
use std::ops::Deref;

use ringleader::buf::{AlignedBuf, FixedPool, IoBuf, Lease};
use ringleader::group::{Group, Member};
use ringleader::net::{OwnedIo, TcpStream};
use ringleader::{BufResult, ops::Lane};

/// Alignment of heap blocks: a page, which satisfies every `O_DIRECT` memory alignment.
pub const HEAP_ALIGN: usize = 4096;

/// The memory of one request's data (see the module docs).
#[derive(Debug)]
pub enum Block {
    /// A registered pool slot.
    Lease(Lease),
    /// An aligned heap buffer.
    Heap(AlignedBuf),
}

impl Block {
    /// A block of capacity `len` (and no data yet): a pool lease if one is free now, else an
    /// aligned heap buffer.
    pub fn new(pool: Option<&FixedPool>, len: usize) -> Block {
        match pool.and_then(|p| p.try_lease(len)) {
            Some(lease) => Block::Lease(lease),
            None => Block::Heap(AlignedBuf::new(len, HEAP_ALIGN)),
        }
    }

    /// Append `data` (it must fit the capacity).
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        match self {
            Block::Lease(l) => l.extend_from_slice(data),
            Block::Heap(h) => h.extend_from_slice(data),
        }
    }

    /// Receive from `stream` until the block is full (the payload of a `WRITE`).
    pub async fn recv_rest(self, stream: &TcpStream) -> BufResult<(), Block> {
        match self {
            Block::Lease(l) => {
                let from = l.len();
                let (res, s) = stream.read_exact_owned(l.slice(from..)).await;
                (res, Block::Lease(s.into_inner()))
            }
            Block::Heap(h) => {
                let from = h.len();
                let (res, s) = stream.read_exact_owned(h.slice(from..)).await;
                (res, Block::Heap(s.into_inner()))
            }
        }
    }

    /// Send all of the block's data on `stream` in `lane` (whole, or the lane fails): a
    /// lease of at least `zc_threshold` bytes by `SEND_ZC` from its fixed buffer (a group of
    /// a bare lease with one member), everything else by plain sends. The lane handle (a
    /// frame, say) is dropped as soon as the send holds its own place in it.
    pub async fn send_all(
        self,
        stream: &TcpStream,
        lane: Lane,
        zc_threshold: usize,
    ) -> io::Result<()> {
        let want = self.len();
        let sent = match self {
            Block::Lease(mut l) if want >= zc_threshold => {
                let group = Group::new(&mut l).member(Member::send_zc(stream).in_lane(&lane));
                drop(lane); // The member holds the lane until it has its place.
                let out = group.await.check()?;
                out.members.into_iter().next().expect("one member")?
            }
            Block::Lease(l) => {
                let op = stream.send_in(&lane, l);
                drop(lane);
                op.await.0?
            }
            Block::Heap(h) => {
                let op = stream.send_in(&lane, h);
                drop(lane);
                op.await.0?
            }
        };
        if sent == want {
            Ok(())
        } else {
            Err(io::ErrorKind::WriteZero.into())
        }
    }
}

impl Deref for Block {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Block::Lease(l) => l,
            Block::Heap(h) => h,
        }
    }
}
