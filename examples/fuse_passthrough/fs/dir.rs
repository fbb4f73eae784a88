//! READDIR and READDIRPLUS: `getdents64` on the handle's directory fd, resumed at the
//! kernel's offset with `lseek` (the offsets are the backing file system's `d_off`
//! cookies), so a handle keeps no cursor of its own and a reply that fills up simply stops
//! at the last entry that fit.

use std::ffi::CStr;
use std::os::fd::AsRawFd;

use super::file::lock as lock_handle;
use super::{Errno, Fs, Reply, sys};
use crate::abi::{self, InHeader};

/// `struct linux_dirent64` up to the name: `d_ino`, `d_off`, `d_reclen`, `d_type`.
const DIRENT64_NAME: usize = 19;

fn align8(n: usize) -> usize {
    (n + 7) & !7
}

impl Fs {
    pub(super) fn readdir(
        &self,
        hdr: &InHeader,
        arg: &[u8],
        out: &mut Reply,
        plus: bool,
    ) -> Result<(), Errno> {
        let r: abi::ReadIn = abi::read(arg);
        let handle = self.handles.dir(r.fh)?;
        let fd = lock_handle(&handle);
        let parent = if plus {
            Some(self.inodes.get(hdr.nodeid)?)
        } else {
            None
        };
        // SAFETY: `fd` is the open directory fd of the handle, held locked.
        sys::cvt(unsafe { libc::lseek(fd.as_raw_fd(), r.offset as i64, libc::SEEK_SET) })?;
        let limit = r.size as usize;
        let mut used = 0;
        let mut buf = vec![0u8; 32 << 10];
        'fill: loop {
            // SAFETY: `buf` is writable for its length; the fd is an open directory.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_getdents64,
                    fd.as_raw_fd(),
                    buf.as_mut_ptr(),
                    buf.len(),
                )
            };
            let n = match sys::cvt(n) {
                Ok(0) => break,
                Ok(n) => n as usize,
                Err(e) if used == 0 => return Err(e),
                Err(_) => break,
            };
            let mut at = 0;
            while at + DIRENT64_NAME <= n {
                let rec = &buf[at..n];
                let ino = u64::from_ne_bytes(rec[0..8].try_into().expect("8 bytes"));
                let off = u64::from_ne_bytes(rec[8..16].try_into().expect("8 bytes"));
                let reclen = u16::from_ne_bytes(rec[16..18].try_into().expect("2 bytes")) as usize;
                let typ = rec[18];
                at += reclen;
                let Ok(entry_name) = CStr::from_bytes_until_nul(&rec[DIRENT64_NAME..reclen]) else {
                    continue;
                };
                let bytes = entry_name.to_bytes();
                let head = std::mem::size_of::<abi::Dirent>()
                    + if plus {
                        std::mem::size_of::<abi::EntryOut>()
                    } else {
                        0
                    };
                let size = align8(head + bytes.len());
                if used + size > limit {
                    break 'fill;
                }
                if let Some(parent) = &parent {
                    let entry = if bytes == b"." || bytes == b".." {
                        // No lookup is counted for the dot entries: the kernel skips them.
                        abi::EntryOut {
                            attr: abi::Attr {
                                ino,
                                mode: u32::from(typ) << 12,
                                ..Default::default()
                            },
                            ..Default::default()
                        }
                    } else {
                        match self.lookup_entry(&parent.fd, entry_name) {
                            Ok(e) => e,
                            // Removed since getdents64 saw it: leave it out.
                            Err(_) => continue,
                        }
                    };
                    out.push(&entry);
                }
                out.push(&abi::Dirent {
                    ino,
                    off,
                    namelen: bytes.len() as u32,
                    typ: u32::from(typ),
                });
                out.extend(bytes);
                let pad = size - head - bytes.len();
                out.extend(&[0u8; 8][..pad]);
                used += size;
            }
        }
        Ok(())
    }
}
