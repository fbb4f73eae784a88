//! The image every server exports: 1 GiB of pseudo-random data, read once before the runs so
//! that it sits in the page cache (the bench measures servers, not the disk).

use std::io::{Read, Write};
use std::path::Path;

/// Size of the image, bytes.
pub const SIZE: u64 = 1 << 30;

/// Write the image at `path` unless a file of the right size is there already.
pub fn make(path: &Path) -> Result<(), String> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == SIZE) {
        return Ok(());
    }
    eprintln!("nbd: writing a 1 GiB image at {}", path.display());
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut chunk = vec![0u8; 1 << 20];
    let mut f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for _ in 0..(SIZE >> 20) {
        for c in chunk.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&chunk)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    f.sync_all().map_err(|e| format!("{}: {e}", path.display()))
}

/// Read the whole image so it sits in the page cache.
pub fn warm(path: &Path) -> Result<(), String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    while f
        .read(&mut buf)
        .map_err(|e| format!("{}: {e}", path.display()))?
        > 0
    {}
    Ok(())
}
