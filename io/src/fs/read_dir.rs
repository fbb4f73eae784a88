//! [`read_dir`]: a directory's entries, listed on the blocking pool (tokio's `fs::read_dir`).
//!
//! io_uring has no `getdents` op yet, so listing runs `getdents64` (through
//! `std::fs::ReadDir`) on the blocking pool, `BATCH` entries per job, while the core goes
//! on; entries come back with their name, inode and file type (the kernel's `d_type`, or an
//! `lstat` on the pool for filesystems that do not fill it). [`DirEntry::metadata`] is a
//! ring op (`STATX`).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::fs::FileType;
use std::future::Future;
use std::io;
use std::os::unix::fs::DirEntryExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::Stream;
use ringleader_executor::BlockingHandle;

use super::Metadata;
use super::error::{c_path, path_error};

/// Entries fetched per blocking-pool job.
const BATCH: usize = 32;

/// Open directory `path` for listing (tokio's `fs::read_dir`).
///
/// ```
/// use futures::TryStreamExt;
///
/// ringleader::block_on(async {
///     let dir = std::env::temp_dir().join(format!("rl-doc-readdir-{}", std::process::id()));
///     ringleader::fs::create_dir(&dir).await?;
///     ringleader::fs::write(dir.join("a"), b"1").await?;
///     ringleader::fs::create_dir(dir.join("sub")).await?;
///
///     let mut entries = ringleader::fs::read_dir(&dir).await?;
///     let mut seen = Vec::new();
///     while let Some(e) = entries.next_entry().await? {
///         seen.push((e.file_name().into_string().unwrap(), e.file_type().await?.is_dir()));
///     }
///     seen.sort();
///     assert_eq!(seen, [("a".to_owned(), false), ("sub".to_owned(), true)]);
///
///     // Or as a `Stream`:
///     let n = ringleader::fs::read_dir(&dir).await?.try_collect::<Vec<_>>().await?.len();
///     assert_eq!(n, 2);
///
///     ringleader::fs::remove_file(dir.join("a")).await?;
///     ringleader::fs::remove_dir(dir.join("sub")).await?;
///     ringleader::fs::remove_dir(&dir).await
/// }).unwrap();
/// ```
///
/// # Errors
/// As `std::fs::read_dir` (`NotFound`, `NotADirectory`, ...), naming the path.
pub async fn read_dir(path: impl AsRef<Path>) -> io::Result<ReadDir> {
    let path = path.as_ref().to_owned();
    let c = c_path("opendir", &path)?;
    let dir = ringleader_executor::spawn_blocking(move || std::fs::read_dir(&path))
        .await?
        .map_err(|e| path_error("opendir", &c, None, e))?;
    Ok(ReadDir {
        state: State::Idle(Some(Box::new(dir))),
        ready: VecDeque::new(),
    })
}

type Batch = (
    VecDeque<io::Result<DirEntry>>,
    Option<Box<std::fs::ReadDir>>,
);

enum State {
    /// The directory stream, `None` once it is exhausted.
    Idle(Option<Box<std::fs::ReadDir>>),
    /// A job is listing the next batch.
    Listing(BlockingHandle<Batch>),
}

/// The entries of a directory, in the order the filesystem lists them (without `.` and
/// `..`). Also a `Stream` of `io::Result<DirEntry>`.
///
/// Cancellation: dropping a [`next_entry`](ReadDir::next_entry) future loses nothing: the
/// batch being listed is kept in the `ReadDir` and served by the next call. Dropping the
/// `ReadDir` while a batch is listed lets that job finish on the pool, then closes the
/// directory there.
pub struct ReadDir {
    state: State,
    ready: VecDeque<io::Result<DirEntry>>,
}

impl ReadDir {
    /// The next entry, or `None` at the end.
    pub async fn next_entry(&mut self) -> io::Result<Option<DirEntry>> {
        std::future::poll_fn(|cx| self.poll_next_entry(cx)).await
    }

    /// Poll form of [`next_entry`](ReadDir::next_entry).
    pub fn poll_next_entry(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<DirEntry>>> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Poll::Ready(e.map(Some));
            }
            match &mut self.state {
                State::Idle(None) => return Poll::Ready(Ok(None)),
                State::Idle(dir) => {
                    let mut dir = dir.take().expect("checked above");
                    self.state = State::Listing(ringleader_executor::spawn_blocking(move || {
                        let batch: VecDeque<_> = dir.by_ref().take(BATCH).map(entry).collect();
                        let more = (batch.len() == BATCH).then_some(dir);
                        (batch, more)
                    }));
                }
                State::Listing(job) => {
                    let res = ready!(Pin::new(job).poll(cx));
                    match res {
                        Ok((batch, more)) => {
                            self.ready = batch;
                            self.state = State::Idle(more);
                        }
                        Err(e) => {
                            self.state = State::Idle(None);
                            return Poll::Ready(Err(e.into()));
                        }
                    }
                }
            }
        }
    }
}

fn entry(e: io::Result<std::fs::DirEntry>) -> io::Result<DirEntry> {
    let e = e?;
    Ok(DirEntry {
        file_type: e.file_type(),
        ino: e.ino(),
        name: e.file_name(),
        path: e.path(),
    })
}

impl Stream for ReadDir {
    type Item = io::Result<DirEntry>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_next_entry(cx).map(Result::transpose)
    }
}

impl fmt::Debug for ReadDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadDir")
            .field("buffered", &self.ready.len())
            .finish_non_exhaustive()
    }
}

/// One entry of a [`ReadDir`] (tokio's `fs::DirEntry`).
#[derive(Debug)]
pub struct DirEntry {
    path: PathBuf,
    name: OsString,
    ino: u64,
    file_type: io::Result<FileType>,
}

impl DirEntry {
    /// The directory's path joined with the entry's name.
    pub fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// The entry's name.
    pub fn file_name(&self) -> OsString {
        self.name.clone()
    }

    /// The entry's inode number, as the directory lists it.
    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// The entry's file type, not following symlinks (found while listing: `async` only to
    /// match tokio's signature, it never waits).
    pub async fn file_type(&self) -> io::Result<FileType> {
        match &self.file_type {
            Ok(t) => Ok(*t),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        }
    }

    /// The entry's metadata, not following symlinks (`IORING_OP_STATX`, Linux 5.6).
    pub async fn metadata(&self) -> io::Result<Metadata> {
        super::symlink_metadata(&self.path).await
    }
}
