//! [`Export`]: the exported image (and its mirrors) as one core sees it, and the storage
//! operations behind the NBD commands.
//!
//! Each core has its own `File`s (duplicates of the fds `main` opened) and its own registered
//! buffer pool, so nothing here is shared across threads. All cores write the same files, so
//! `fdatasync` through any core's fd covers every connection's completed writes: that is what
//! lets the server advertise `NBD_FLAG_CAN_MULTI_CONN`.
//!
//! # Data path
//!
//! - READ into a lease: `READ_FIXED` from the image (`File::read_fixed_at`).
//! - WRITE from a lease: one group on the lease — a bare leader (the payload is already in
//!   it) and one `WRITE_FIXED` member per file (image and every mirror), which the driver
//!   pushes to the kernel together, zero-copy, in one batch (docs/design.md §4, G1/G2).
//! - Heap blocks (see `block.rs`) use the plain owned-buffer file ops.
//! - Inline writes: where the file system has no non-blocking buffered write (ext4; probed
//!   at start-up, see `image.rs`), io_uring can only complete a buffered write by handing it
//!   to an io-wq thread and back. For writes up to [`INLINE_WRITE_MAX`] the core then does
//!   the page-cache copy itself with `pwrite` instead: measured with `qemu-img bench -w -d
//!   32 -s 4096` on ext4, 24-28k IOPS at 27-29 µs of server CPU per write, against 12-20k
//!   IOPS at 38-40 µs through io-wq (nbdkit: 17-20k, 44-45 µs). The price: a write that the
//!   kernel throttles (too many dirty pages) stalls the whole core for that time.
//!   `--ring-writes` turns this off; `--direct` and file systems with non-blocking buffered
//!   writes (XFS, btrfs) never use it.
//!
//! # Durability
//!
//! A write is replied to after the image and every mirror completed it; with FUA, after
//! `fdatasync` of all of them too. A flush is `fdatasync` of the image and every mirror,
//! issued when the flush is received, so it covers every write already replied to.

use std::io;
use std::rc::Rc;

use futures::future::join_all;
use ringleader::buf::{AlignedBuf, FixedPool, Lease};
use ringleader::fs::File;
use ringleader::group::{Group, LeaseExt, Member};

use crate::block::{Block, HEAP_ALIGN};
use crate::proto::NbdError;

/// `fallocate` modes.
const PUNCH_HOLE: i32 = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
const ZERO_RANGE: i32 = libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE;
/// The largest write done inline (see the module docs).
pub const INLINE_WRITE_MAX: usize = 64 << 10;
/// Chunk of the write-zeroes fallback (file systems without `fallocate` modes).
const ZERO_CHUNK: usize = 1 << 20;

/// Per-core view of the export.
#[derive(Debug)]
pub struct Export {
    pub image: Rc<File>,
    pub mirrors: Vec<Rc<File>>,
    /// Size in bytes.
    pub size: u64,
    pub readonly: bool,
    /// Required alignment of offsets and lengths (1 unless `--direct`).
    pub align: u32,
    /// Shown to clients that ask for a description.
    pub description: String,
    /// READs may be spliced from the page cache (`splice.rs`): not with `--direct`.
    pub splice_reads: bool,
    pool: Option<FixedPool>,
    /// The image and mirrors as std files, for inline writes; empty when those are off.
    inline: Vec<std::fs::File>,
}

/// How an [`Export`] is set up.
#[derive(Debug)]
pub struct Config {
    pub size: u64,
    pub readonly: bool,
    pub align: u32,
    pub description: String,
    /// Do writes up to [`INLINE_WRITE_MAX`] with `pwrite` on the core (see the module docs).
    pub inline_writes: bool,
}

impl Export {
    /// This core's export over its own duplicates of the image and mirror fds.
    pub fn new(
        image: std::fs::File,
        mirrors: Vec<std::fs::File>,
        config: Config,
        pool: Option<FixedPool>,
    ) -> io::Result<Export> {
        let inline = if config.inline_writes {
            let mut v = vec![image.try_clone()?];
            for m in &mirrors {
                v.push(m.try_clone()?);
            }
            v
        } else {
            Vec::new()
        };
        Ok(Export {
            image: Rc::new(File::from_std(image)),
            mirrors: mirrors
                .into_iter()
                .map(|m| Rc::new(File::from_std(m)))
                .collect(),
            size: config.size,
            readonly: config.readonly,
            align: config.align,
            description: config.description,
            splice_reads: config.align <= 1,
            pool,
            inline,
        })
    }

    /// A block with room for `len` bytes (see [`Block::new`]).
    pub fn block(&self, len: usize) -> Block {
        Block::new(self.pool.as_ref(), len)
    }

    /// Read `len` bytes at `pos` from the image.
    pub async fn read(&self, len: usize, pos: u64) -> Result<Block, NbdError> {
        match self.block(len) {
            Block::Lease(mut lease) => {
                read_lease(&self.image, &mut lease, pos)
                    .await
                    .map_err(io_err)?;
                Ok(Block::Lease(lease))
            }
            Block::Heap(buf) => {
                let (res, buf) = self.image.read_exact_at(buf, pos).await;
                // An error here (even end of file: the image shrank under us; the export's
                // size is fixed at start-up) fails the request, not the connection.
                res.map_err(io_err)?;
                Ok(Block::Heap(buf))
            }
        }
    }

    /// Write `data` at `pos` to the image and every mirror; with `fua`, then `fdatasync`
    /// them all.
    pub async fn write(&self, data: Block, pos: u64, fua: bool) -> Result<(), NbdError> {
        if !self.inline.is_empty() && data.len() <= INLINE_WRITE_MAX {
            use std::os::unix::fs::FileExt;
            for f in &self.inline {
                f.write_all_at(&data, pos).map_err(io_err)?;
            }
            drop(data);
            return if fua { self.flush().await } else { Ok(()) };
        }
        match data {
            Block::Lease(mut lease) => self.write_lease(&mut lease, pos).await?,
            Block::Heap(mut buf) => {
                // Rare (large or pool-starved requests): one file after the other.
                for f in self.files() {
                    let (res, b) = f.write_all_at(buf, pos).await;
                    buf = b;
                    res.map_err(io_err)?;
                }
            }
        }
        if fua { self.flush().await } else { Ok(()) }
    }

    /// One group: a bare leader (the lease already holds the payload) and a `WRITE_FIXED`
    /// member per file, pushed together; a short member write is finished with plain
    /// `WRITE_FIXED`s of the rest.
    async fn write_lease(&self, lease: &mut Lease, pos: u64) -> Result<(), NbdError> {
        let members = self.files().map(|f| Member::write_fixed(&**f, pos));
        let out = Group::new(lease).members(members).await;
        let len = lease.len();
        for (f, res) in self.files().zip(out.members) {
            let mut done = res.map_err(io_err)?;
            while done < len {
                let at = pos + done as u64;
                match f.write_fixed_at(lease.view(done..), at).await {
                    Ok(0) => return Err(NbdError::Io),
                    Ok(n) => done += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io_err(e)),
                }
            }
        }
        Ok(())
    }

    /// `fdatasync` the image and every mirror.
    pub async fn flush(&self) -> Result<(), NbdError> {
        if self.mirrors.is_empty() {
            return self.image.sync_data().await.map_err(io_err);
        }
        first_error(join_all(self.files().map(|f| f.sync_data())).await)
    }

    /// Discard `len` bytes at `pos` (punch a hole). A file system that cannot punch holes
    /// makes this a no-op, which TRIM allows.
    pub async fn trim(&self, pos: u64, len: u64, fua: bool) -> Result<(), NbdError> {
        let all = join_all(self.files().map(|f| async move {
            match f.fallocate(pos, len, PUNCH_HOLE).await {
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(()),
                r => r,
            }
        }))
        .await;
        first_error(all)?;
        if fua { self.flush().await } else { Ok(()) }
    }

    /// Make `len` bytes at `pos` read as zeroes: punch a hole, or with `no_hole` zero the
    /// range keeping it allocated; write zeroes where the file system supports neither.
    pub async fn write_zeroes(
        &self,
        pos: u64,
        len: u64,
        no_hole: bool,
        fua: bool,
    ) -> Result<(), NbdError> {
        let all = join_all(self.files().map(|f| zero_file(f, pos, len, no_hole))).await;
        first_error(all)?;
        if fua { self.flush().await } else { Ok(()) }
    }

    fn files(&self) -> impl Iterator<Item = &Rc<File>> {
        std::iter::once(&self.image).chain(&self.mirrors)
    }
}

/// Fill `lease` (its whole capacity) from `file` at `pos` with `READ_FIXED`, resuming after
/// short reads; end of file first is `UnexpectedEof`.
async fn read_lease(file: &File, lease: &mut Lease, pos: u64) -> io::Result<()> {
    let want = lease.capacity();
    // Reading into the whole lease sets its `len` to the count read.
    let mut done = file.read_fixed_at(&mut *lease, pos).await?;
    while done < want {
        match file
            .read_fixed_at(lease.view_mut(done..), pos + done as u64)
            .await
        {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    lease.set_len(want);
    Ok(())
}

async fn zero_file(f: &File, pos: u64, len: u64, no_hole: bool) -> io::Result<()> {
    let modes: &[i32] = if no_hole {
        &[ZERO_RANGE]
    } else {
        &[PUNCH_HOLE, ZERO_RANGE]
    };
    for &mode in modes {
        match f.fallocate(pos, len, mode).await {
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => continue,
            r => return r,
        }
    }
    write_zeroes_by_hand(f, pos, len).await
}

#[cold] // Only on file systems without FALLOC_FL_PUNCH_HOLE and FALLOC_FL_ZERO_RANGE.
async fn write_zeroes_by_hand(f: &File, pos: u64, len: u64) -> io::Result<()> {
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(ZERO_CHUNK as u64) as usize;
        let mut zeros = AlignedBuf::new(n, HEAP_ALIGN);
        zeros.set_len(n);
        f.write_all_at(zeros, pos + done).await.0?;
        done += n as u64;
    }
    Ok(())
}

fn io_err(e: io::Error) -> NbdError {
    NbdError::from_io(&e)
}

fn first_error<T>(all: Vec<io::Result<T>>) -> Result<(), NbdError> {
    match all.into_iter().find_map(Result::err) {
        Some(e) => Err(io_err(e)),
        None => Ok(()),
    }
}
