//! The fixed-buffer table of each ring, shared by every pool on that ring.
//!
//! A ring has one fixed-buffer table. The first pool created on a ring registers it sparse
//! ([`TABLE_ENTRIES`] empty entries, Linux 5.19); each pool then owns a [`TableRange`] of
//! consecutive entries and fills them with `IORING_REGISTER_BUFFERS_UPDATE`. When the range
//! ends, its entries are cleared (the kernel drops the pages once no in-flight op uses them)
//! and the range goes back to the allocator.
//!
//! Invariants:
//! - ranges of one table never overlap, so an entry belongs to exactly one pool;
//! - the allocator of a ring lives as long as its ring or the last range on it; tables of
//!   rings that went away are forgotten (a new ring that reuses the fd number is recognised
//!   by [`RingId`]);
//! - a table this module did not register (someone else's `register_buffers`) is refused with
//!   a clear error, never shared silently.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use crate::sys::{REGISTER_BUFFERS_UPDATE, RingId, RsrcUpdate2};

/// Entries of the sparse table registered on each ring (the kernel's maximum,
/// `IORING_MAX_REG_BUFFERS`). The kernel keeps one pointer per entry: 128 KiB per ring.
pub(crate) const TABLE_ENTRIES: u32 = 1 << 14;

struct Table {
    ring: RingId,
    /// Free ranges `(start, len)`, sorted by start, never adjacent.
    free: Vec<(u32, u32)>,
}

thread_local! {
    static TABLES: RefCell<Vec<Rc<RefCell<Table>>>> = const { RefCell::new(Vec::new()) };
}

/// `len` consecutive entries of the current ring's fixed-buffer table.
pub(crate) struct TableRange {
    table: Rc<RefCell<Table>>,
    start: u32,
    len: u32,
    /// `ringleader::ops::ring_id()` of the ring the entries belong to.
    ring_id: u64,
}

impl TableRange {
    /// Reserve `len` entries in the current ring's table, registering the table first if
    /// this is the first pool on the ring.
    ///
    /// # Panics
    /// Outside a ringleader runtime.
    pub(crate) fn alloc(len: u32) -> io::Result<TableRange> {
        let table = table_for_current_ring()?;
        let start = {
            let mut t = table.borrow_mut();
            let Some(i) = t.free.iter().position(|&(_, l)| l >= len) else {
                let largest = t.free.iter().map(|&(_, l)| l).max().unwrap_or(0);
                return Err(io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    format!(
                        "ringleader: a pool of {len} slots does not fit this ring's fixed-buffer \
                         table ({TABLE_ENTRIES} entries, largest free run {largest}): use fewer, \
                         larger slots or drop another pool on this core"
                    ),
                ));
            };
            let (s, l) = t.free[i];
            if l == len {
                t.free.remove(i);
            } else {
                t.free[i] = (s + len, l - len);
            }
            s
        };
        let ring_id = ringleader_executor::ring_id().expect("checked by table_for_current_ring");
        Ok(TableRange {
            table,
            start,
            len,
            ring_id,
        })
    }

    /// The identity of the ring whose table holds the range (see
    /// `ringleader::ops::ring_id`).
    pub(crate) fn ring_id(&self) -> u64 {
        self.ring_id
    }

    /// Index of the first entry.
    pub(crate) fn start(&self) -> u32 {
        self.start
    }

    /// Register `iovecs` at the start of the range.
    ///
    /// The kernel registers entry by entry and reports a partial success as a count, so the
    /// call is repeated until every entry is in or one fails: a pool is never left half
    /// registered while believing it is whole.
    ///
    /// # Safety
    /// Every iovec must describe memory that stays mapped until this range is dropped (which
    /// clears the entries) or the ring goes away.
    pub(crate) unsafe fn update(&self, iovecs: &[libc::iovec]) -> io::Result<()> {
        assert!(
            iovecs.len() <= self.len as usize,
            "more buffers than table entries"
        );
        let ring = self.table.borrow().ring;
        let mut done = 0;
        while done < iovecs.len() {
            let rest = &iovecs[done..];
            let up = RsrcUpdate2 {
                offset: self.start + done as u32,
                data: rest.as_ptr() as u64,
                nr: rest.len() as u32,
                ..RsrcUpdate2::default()
            };
            // SAFETY: `up` and the iovecs are live for the call; the caller guarantees that
            // the memory they describe outlives the registration.
            let n = unsafe {
                ring.register_if_alive(
                    REGISTER_BUFFERS_UPDATE,
                    (&up as *const RsrcUpdate2).cast(),
                    std::mem::size_of::<RsrcUpdate2>() as u32,
                )
            }?;
            match n {
                Some(n) if n > 0 => done += n,
                Some(_) => return Err(io::Error::from_raw_os_error(libc::EIO)),
                None => return Err(io::Error::from_raw_os_error(libc::EBADF)),
            }
        }
        Ok(())
    }
}

impl Drop for TableRange {
    fn drop(&mut self) {
        let mut t = self.table.borrow_mut();
        // Clear the entries: a NULL, zero-length iovec empties an entry; the kernel releases
        // the old buffer when the last in-flight op that uses it completes.
        let empty = vec![
            libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0
            };
            self.len as usize
        ];
        let up = RsrcUpdate2 {
            offset: self.start,
            data: empty.as_ptr() as u64,
            nr: self.len,
            ..RsrcUpdate2::default()
        };
        // SAFETY: `up` and the iovecs it points to are live for the call; the kernel only
        // reads them. Clearing entries cannot make the kernel touch user memory.
        let cleared = unsafe {
            t.ring.register_if_alive(
                REGISTER_BUFFERS_UPDATE,
                (&up as *const RsrcUpdate2).cast(),
                std::mem::size_of::<RsrcUpdate2>() as u32,
            )
        };
        // If clearing failed the entries still point at our (pinned) pages; a later update of
        // the same entries replaces them, so the range is reusable either way.
        drop(cleared);
        free_range(&mut t.free, self.start, self.len);
    }
}

fn free_range(free: &mut Vec<(u32, u32)>, start: u32, len: u32) {
    let i = free.partition_point(|&(s, _)| s < start);
    free.insert(i, (start, len));
    // Merge with the right neighbour, then the left one.
    if i + 1 < free.len() && free[i].0 + free[i].1 == free[i + 1].0 {
        free[i].1 += free[i + 1].1;
        free.remove(i + 1);
    }
    if i > 0 && free[i - 1].0 + free[i - 1].1 == free[i].0 {
        free[i - 1].1 += free[i].1;
        free.remove(i);
    }
}

fn table_for_current_ring() -> io::Result<Rc<RefCell<Table>>> {
    let ring = RingId::current()?;
    let known = TABLES.with(|tables| {
        let mut tables = tables.borrow_mut();
        tables.retain(|t| t.borrow().ring.is_alive());
        tables.iter().find(|t| t.borrow().ring == ring).cloned()
    });
    if let Some(t) = known {
        return Ok(t);
    }
    ringleader_executor::with_submitter(|s| s.register_buffers_sparse(TABLE_ENTRIES)).map_err(
        |e| {
            let why = match e.raw_os_error() {
                Some(libc::EBUSY) => {
                    "this ring already has a fixed-buffer table that ringleader_buf did not \
                     register (create buffers through FixedPool only)"
                }
                Some(libc::EINVAL) => "sparse fixed-buffer tables need Linux 5.19 or later",
                _ => "registering the sparse fixed-buffer table failed",
            };
            io::Error::new(e.kind(), format!("ringleader: {why}: {e}"))
        },
    )?;
    let t = Rc::new(RefCell::new(Table {
        ring,
        free: vec![(0, TABLE_ENTRIES)],
    }));
    TABLES.with(|tables| tables.borrow_mut().push(Rc::clone(&t)));
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::free_range;

    #[test]
    fn free_ranges_merge_with_both_neighbours() {
        let mut f = vec![(0, 4), (10, 5)];
        free_range(&mut f, 4, 6);
        assert_eq!(f, vec![(0, 15)]);
        free_range(&mut f, 20, 1);
        assert_eq!(f, vec![(0, 15), (20, 1)]);
        free_range(&mut f, 16, 2);
        assert_eq!(f, vec![(0, 15), (16, 2), (20, 1)]);
    }
}
