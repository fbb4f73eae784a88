//! The inode table: node id ↔ backing inode, with the kernel's lookup counts.
//!
//! Invariants:
//! - one node id per backing inode, keyed by `(st_dev, st_ino)`: a second name of a file
//!   (a hard link) gets the same id, as the kernel expects;
//! - a node keeps an `O_PATH` fd on its inode, so the inode (and its number) stays alive
//!   while the kernel may name it; the key cannot be reused under the table;
//! - `nlookup` is the number of successful replies that handed the id out (LOOKUP, CREATE,
//!   MKNOD, MKDIR, SYMLINK, LINK, each READDIRPLUS entry) minus what FORGET gave back; at 0
//!   the node is removed and its fd closed. The root (id 1) is never removed;
//! - ids are never reused (a 64-bit counter), so a stale id fails with `ESTALE` instead of
//!   naming another file.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use super::{Errno, sys};
use crate::abi::ROOT_ID;

/// A backing inode, held open with an `O_PATH` fd.
#[derive(Debug)]
pub struct Inode {
    pub fd: OwnedFd,
    key: (u64, u64),
    /// `st_mode & S_IFMT` (a file's type never changes).
    pub kind: u32,
}

impl Inode {
    pub fn is_symlink(&self) -> bool {
        self.kind == libc::S_IFLNK
    }
}

#[derive(Debug)]
struct Node {
    inode: Arc<Inode>,
    nlookup: u64,
}

#[derive(Debug, Default)]
struct Table {
    by_id: HashMap<u64, Node>,
    by_key: HashMap<(u64, u64), u64>,
    next: u64,
}

#[derive(Debug)]
pub struct Inodes {
    table: Mutex<Table>,
}

impl Inodes {
    pub fn new(root: OwnedFd) -> std::io::Result<Inodes> {
        let st = sys::stat_fd(std::os::fd::AsRawFd::as_raw_fd(&root))
            .map_err(std::io::Error::from_raw_os_error)?;
        let key = (st.st_dev, st.st_ino);
        let mut t = Table {
            next: ROOT_ID + 1,
            ..Table::default()
        };
        t.by_key.insert(key, ROOT_ID);
        t.by_id.insert(
            ROOT_ID,
            Node {
                inode: Arc::new(Inode {
                    fd: root,
                    key,
                    kind: libc::S_IFDIR,
                }),
                nlookup: 1,
            },
        );
        Ok(Inodes {
            table: Mutex::new(t),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding the lock leaves the table consistent (every update is a
        // single insert or remove), so a poisoned lock is still usable.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The inode of a node id the kernel holds.
    pub fn get(&self, id: u64) -> Result<Arc<Inode>, Errno> {
        self.lock()
            .by_id
            .get(&id)
            .map(|n| Arc::clone(&n.inode))
            .ok_or(libc::ESTALE)
    }

    /// Count one more lookup of the inode `fd` (stat `st`) refers to; returns its node id.
    /// If the inode already has a node, `fd` is closed and the existing node counted.
    pub fn add_lookup(&self, fd: OwnedFd, st: &libc::stat) -> u64 {
        let key = (st.st_dev, st.st_ino);
        let mut t = self.lock();
        if let Some(&id) = t.by_key.get(&key) {
            let node = t.by_id.get_mut(&id).expect("by_key and by_id agree");
            node.nlookup += 1;
            return id;
        }
        let id = t.next;
        t.next += 1;
        t.by_key.insert(key, id);
        t.by_id.insert(
            id,
            Node {
                inode: Arc::new(Inode {
                    fd,
                    key,
                    kind: st.st_mode & libc::S_IFMT,
                }),
                nlookup: 1,
            },
        );
        id
    }

    /// The kernel gives back `n` lookups of `id`.
    pub fn forget(&self, id: u64, n: u64) {
        if id == ROOT_ID {
            return;
        }
        let mut t = self.lock();
        let Some(node) = t.by_id.get_mut(&id) else {
            return;
        };
        node.nlookup = node.nlookup.saturating_sub(n);
        if node.nlookup == 0 {
            let node = t.by_id.remove(&id).expect("present");
            t.by_key.remove(&node.inode.key);
            // The fd closes here, or when the last request using the inode is done.
        }
    }

    #[allow(dead_code, reason = "Fs::live_nodes")]
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }
}
