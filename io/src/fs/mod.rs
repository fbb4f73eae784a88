//! Files on io_uring: open, positional and vectored reads and writes with owned buffers,
//! syncs, space management, metadata, path operations, and the `futures::io` traits.
//!
//! # Model
//!
//! A [`File`] owns its fd. Every op on it is an [`Op`](ringleader_executor::Op) future that
//! owns what its SQE points at (buffers, `iovec` arrays, the `statx` buffer, path strings)
//! **and a reference to the fd**, until its final CQE. So:
//!
//! - a buffer always comes back ([`BufResult`](ringleader_buf::BufResult)), on success and on
//!   error; dropping an op future cancels it and frees its buffer only after the kernel is done;
//! - the fd is closed only after the last op that uses it has completed, even when the `File`
//!   is dropped first, so an fd number is never reused under an in-flight op;
//! - an open whose future is dropped closes the fd it may still produce; it never leaks.
//!
//! ```
//! use ringleader::fs::{self, File, OpenOptions};
//!
//! ringleader::block_on(async {
//!     let dir = std::env::temp_dir().join(format!("rl-doc-fs-{}", std::process::id()));
//!     fs::create_dir(&dir).await?;
//!     let path = dir.join("data");
//!
//!     let file = OpenOptions::new().read(true).write(true).create(true).open(&path).await?;
//!     let (res, _buf) = file.write_all_at(b"0123456789".to_vec(), 0).await;
//!     res?;
//!     let (n, bufs) = file.readv_at(vec![Vec::with_capacity(4), Vec::with_capacity(6)], 0).await;
//!     assert_eq!(n?, 10);
//!     assert_eq!((&bufs[0][..], &bufs[1][..]), (&b"0123"[..], &b"456789"[..]));
//!     file.set_len(4).await?;
//!     assert_eq!(file.metadata().await?.len(), 4);
//!     file.close().await?;
//!
//!     // Errors of path ops name the op and the path, and keep the errno's kind.
//!     let err = File::open(dir.join("missing")).await.unwrap_err();
//!     assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
//!     assert!(err.to_string().contains("missing"));
//!
//!     fs::remove_file(&path).await?;
//!     fs::remove_dir(&dir).await
//! }).unwrap();
//! ```
//!
//! # Errors
//!
//! Errors are `std::io::Error` built from the kernel's errno. Ops on a path wrap it in a
//! [`PathError`] naming the op and path (`open "/x": No such file or directory (os error 2)`),
//! which keeps the errno's [`kind`](std::io::Error::kind); the errno itself is reachable with
//! [`raw_os_error`] (or through `source()`). Ops on an open `File` return the bare errno error.
//!
//! # futures-io
//!
//! `File` implements `AsyncRead`, `AsyncBufRead`, `AsyncWrite` and `AsyncSeek` at an internal
//! position (starting at 0) through internal buffers of 64 KiB that are moved into each op, so
//! `futures::io::copy` and the `futures` extension traits work unchanged. Writes are buffered:
//! flush (or [`File::close`]) before dropping the file. The positional ops are independent of
//! that position.
//!
//! ```
//! use futures::io::{AsyncReadExt, AsyncWriteExt};
//! use ringleader::fs::File;
//!
//! ringleader::block_on(async {
//!     let path = std::env::temp_dir().join(format!("rl-doc-compat-{}", std::process::id()));
//!     let mut file = File::create(&path).await?;
//!     file.write_all(b"through futures-io").await?;
//!     file.close().await?;
//!     let mut text = String::new();
//!     File::open(&path).await?.read_to_string(&mut text).await?;
//!     assert_eq!(text, "through futures-io");
//!     ringleader::fs::remove_file(&path).await
//! }).unwrap();
//! ```
//!
//! # Helpers
//!
//! tokio's whole-file and directory helpers under the same names: [`read`],
//! [`read_to_string`] and [`write`](fn@write) (ring ops), [`copy`] and [`canonicalize`] (the blocking
//! pool: `copy_file_range` copies inside the kernel; `realpath` has no op), [`read_dir`]
//! (`getdents64` on the blocking pool, entries in batches) and [`metadata`] (`STATX`).
//!
//! # Kernel versions
//!
//! Each op names its opcode and minimum kernel: most need 5.6 (including
//! [`OpenOptions::open_at`] and [`File::open_beneath`], which resolve a path beneath a
//! directory with `openat2`'s `RESOLVE_*` rules), path ops 5.11 (`mkdir` 5.15),
//! [`File::set_len`] 6.9 (`IORING_OP_FTRUNCATE`); the `O_DIRECT` alignments in [`Metadata`]
//! need 6.1.

mod compat;
mod error;
mod file;
mod helpers;
mod metadata;
mod open_options;
pub mod ops;
mod path;
mod read_dir;
mod resolve;

pub use error::{PathError, raw_os_error};
pub use file::File;
pub use helpers::{canonicalize, copy, read, read_to_string, write};
pub use metadata::Metadata;
pub use open_options::OpenOptions;
pub use path::{create_dir, metadata, remove_dir, remove_file, rename, symlink_metadata};
pub use read_dir::{DirEntry, ReadDir, read_dir};
pub use resolve::Resolve;

/// The fd of a [`File`], shared with every op in flight on it so it is closed only after the
/// last of them completes.
type SharedFd = std::rc::Rc<std::os::fd::OwnedFd>;
