//! `OpenOptions::custom_flags(O_DIRECT)` opens a file for direct I/O, and aligned buffers
//! move data through it.

use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;

use ringleader::buf::AlignedBuf;
use ringleader::fs::OpenOptions;

/// A fresh directory under the temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("rl-fs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn o_direct_custom_flag_opens_for_direct_io_with_aligned_buffers() {
    let dir = TempDir::new("odirect");
    let path = dir.join("f");
    ringleader::block_on(async {
        let f = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
            .await
        {
            Ok(f) => f,
            Err(e) if ringleader::fs::raw_os_error(&e) == Some(libc::EINVAL) => {
                eprintln!("skipping: the temp dir's file system refuses O_DIRECT ({e})");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        // SAFETY: F_GETFL on an open fd has no memory effects.
        let fl = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFL) };
        assert_ne!(fl & libc::O_DIRECT, 0, "O_DIRECT is set on the fd");

        let mut out = AlignedBuf::for_file(f.as_fd(), 8192).unwrap();
        let data: Vec<u8> = (0..out.capacity()).map(|i| (i % 251) as u8).collect();
        out.extend_from_slice(&data);
        let (res, _out) = f.write_all_at(out, 0).await;
        match res {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                eprintln!("skipping: direct write refused ({e})");
                return;
            }
            Err(e) => panic!("{e}"),
        }
        let input = AlignedBuf::for_file(f.as_fd(), data.len()).unwrap();
        let (res, input) = f.read_exact_at(input, 0).await;
        res.unwrap();
        assert!(input[..] == data[..], "byte-exact through O_DIRECT");

        // A misaligned buffer is refused by the kernel (EINVAL), and comes back.
        let meta = f.metadata().await.unwrap();
        if meta.dio_mem_align().is_some_and(|a| a > 1) {
            let odd = vec![0u8; 4097].into_boxed_slice();
            let (res, odd) = f.read_at(odd, 1).await;
            assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EINVAL));
            assert_eq!(odd.len(), 4097);
        }
    });
}
