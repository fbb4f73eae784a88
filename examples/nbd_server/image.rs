//! Start-up storage: open or create the image, bring every mirror to the image's contents,
//! and remove a temporary image when the server stops.
//!
//! This runs once, before the runtime starts, with plain blocking std calls. Each core then
//! serves through its own duplicates of these fds ([`Storage::clone_files`]).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Size of a new image when `--size` is not given.
pub const DEFAULT_SIZE: u64 = 1 << 30;
/// Copy chunk when seeding mirrors.
const COPY_CHUNK: usize = 1 << 20;

/// What to serve.
#[derive(Debug)]
pub struct Storage {
    pub image_path: PathBuf,
    pub image: File,
    pub mirrors: Vec<File>,
    pub size: u64,
    /// Required alignment of requests: the file system's `O_DIRECT` offset alignment, or 1.
    pub align: u32,
    /// Buffered writes to the image would block in the kernel (the file system has no
    /// non-blocking buffered write, so io_uring would hand each one to an io-wq thread).
    pub writes_block: bool,
    /// Removes the temporary image's directory on drop.
    pub temp: Option<TempDir>,
}

/// A directory removed (with its contents) on drop, or by [`TempDir::remove`].
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn remove(&self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Open (or create) the image and the mirrors.
///
/// - `image`: `None` makes a sparse image of `size` (default 1 GiB) in a new temporary
///   directory; an existing path is served at its own size (`size`, if given, must match);
///   a missing path is created sparse at `size`.
/// - each mirror is created or truncated to the image's size and given the image's data
///   (holes stay holes), so mirror and image start byte-identical;
/// - `direct`: the serving fds use `O_DIRECT` and requests must be aligned.
pub fn open(
    image: Option<&Path>,
    size: Option<u64>,
    mirrors: &[PathBuf],
    readonly: bool,
    direct: bool,
) -> Result<Storage, String> {
    let (path, temp) = match image {
        Some(p) => (p.to_path_buf(), None),
        None => {
            let dir = std::env::temp_dir().join(format!("ringleader-nbd-{}", std::process::id()));
            fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
            (dir.join("image.raw"), Some(TempDir(dir)))
        }
    };
    let ctx = |what: &str, p: &Path, e: io::Error| format!("{what} {}: {e}", p.display());
    let exists = path.exists();
    if !exists && readonly {
        return Err(format!(
            "--readonly: image {} does not exist",
            path.display()
        ));
    }
    let plain = OpenOptions::new()
        .read(true)
        .write(!readonly)
        .create(!readonly)
        .truncate(false)
        .open(&path)
        .map_err(|e| {
            let hint = if exists && !readonly && e.kind() == io::ErrorKind::PermissionDenied {
                " (the image is opened for writing; pass --readonly to serve it read-only)"
            } else {
                ""
            };
            format!("{}{hint}", ctx("opening", &path, e))
        })?;
    let size = if exists {
        let actual = byte_size(&plain).map_err(|e| ctx("sizing", &path, e))?;
        if let Some(s) = size.filter(|&s| s != actual) {
            return Err(format!(
                "image {} is {actual} bytes, not --size {s} (--size only sizes new images)",
                path.display()
            ));
        }
        actual
    } else {
        let s = size.unwrap_or(DEFAULT_SIZE);
        plain.set_len(s).map_err(|e| ctx("sizing", &path, e))?;
        s
    };
    let mut mirror_files = Vec::new();
    for m in mirrors {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(m)
            .map_err(|e| ctx("opening mirror", m, e))?;
        seed_mirror(&plain, &f, size).map_err(|e| ctx("copying the image to mirror", m, e))?;
        mirror_files.push(f);
    }
    let (image, align) = if direct {
        let image =
            reopen_direct(&path, readonly).map_err(|e| ctx("O_DIRECT open of", &path, e))?;
        let align = direct_alignment(&image);
        if size % u64::from(align) != 0 {
            return Err(format!(
                "--direct: the image size {size} is not a multiple of the {align}-byte O_DIRECT alignment"
            ));
        }
        let mut direct_mirrors = Vec::new();
        for m in mirrors {
            direct_mirrors
                .push(reopen_direct(m, false).map_err(|e| ctx("O_DIRECT open of", m, e))?);
        }
        mirror_files = direct_mirrors;
        (image, align)
    } else {
        (plain, 1)
    };
    let writes_block = !direct && !readonly && buffered_writes_block(&image, size);
    Ok(Storage {
        image_path: path,
        image,
        mirrors: mirror_files,
        size,
        align,
        writes_block,
        temp,
    })
}

impl Storage {
    /// Duplicates of the image and mirror fds, for one core.
    pub fn clone_files(&self) -> io::Result<(File, Vec<File>)> {
        let mirrors = self
            .mirrors
            .iter()
            .map(File::try_clone)
            .collect::<io::Result<_>>()?;
        Ok((self.image.try_clone()?, mirrors))
    }
}

fn reopen_direct(path: &Path, readonly: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(!readonly)
        .custom_flags(libc::O_DIRECT)
        .open(path)
}

/// The offset alignment `O_DIRECT` needs on this file (`statx` `STATX_DIOALIGN`), or the
/// page size where the file system does not say.
fn direct_alignment(f: &File) -> u32 {
    use std::os::fd::AsFd;
    match ringleader::buf::dio_align(f.as_fd()) {
        Ok(Some(a)) => a.offset.max(1) as u32,
        _ => 4096,
    }
}

/// Whether a buffered write to `f` can block: rewrite the image's first byte with itself
/// using `RWF_NOWAIT`. File systems with non-blocking buffered writes (XFS, btrfs) accept it;
/// ext4 refuses (`EOPNOTSUPP`/`EAGAIN`), and io_uring would then punt every write to an
/// io-wq thread. The byte keeps its value; only the modification time changes.
fn buffered_writes_block(f: &File, size: u64) -> bool {
    let mut byte = [0u8; 1];
    if size == 0 || f.read_exact_at(&mut byte, 0).is_err() {
        return false;
    }
    let iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: one iovec over a live 1-byte buffer; the kernel only reads it.
    let r = unsafe { libc::pwritev2(f.as_raw_fd(), &iov, 1, 0, libc::RWF_NOWAIT) };
    r != 1
}

/// Size of a regular file or a block device.
fn byte_size(f: &File) -> io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    let mut f = f;
    f.seek(SeekFrom::End(0))
}

/// Make `mirror` an exact copy of the first `size` bytes of `image`: truncate it to holes,
/// then copy the image's data extents (`SEEK_DATA`/`SEEK_HOLE`), skipping all-zero chunks.
fn seed_mirror(image: &File, mirror: &File, size: u64) -> io::Result<()> {
    mirror.set_len(0)?;
    mirror.set_len(size)?;
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut pos = 0u64;
    while pos < size {
        let Some(start) = seek(image, pos, libc::SEEK_DATA)? else {
            break;
        };
        let end = seek(image, start, libc::SEEK_HOLE)?
            .unwrap_or(size)
            .min(size);
        let mut at = start;
        while at < end {
            let n = ((end - at) as usize).min(COPY_CHUNK);
            image.read_exact_at(&mut buf[..n], at)?;
            if buf[..n].iter().any(|&b| b != 0) {
                mirror.write_all_at(&buf[..n], at)?;
            }
            at += n as u64;
        }
        pos = end;
    }
    mirror.sync_all()
}

/// `lseek(fd, pos, whence)`; `None` for `ENXIO` (no data/hole past `pos`). File systems (or
/// block devices) without `SEEK_DATA` report the whole rest as data.
pub fn seek(f: &impl AsRawFd, pos: u64, whence: i32) -> io::Result<Option<u64>> {
    // SAFETY: lseek on an fd we own, with plain integer arguments; it touches no memory.
    let r = unsafe { libc::lseek(f.as_raw_fd(), pos as libc::off_t, whence) };
    if r >= 0 {
        return Ok(Some(r as u64));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENXIO) => Ok(None),
        Some(libc::EINVAL) if whence == libc::SEEK_DATA => Ok(Some(pos)),
        Some(libc::EINVAL) => Ok(None),
        _ => Err(e),
    }
}
