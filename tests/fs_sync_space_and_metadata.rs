//! `sync_all`/`sync_data`, `fallocate`, `set_len` and `metadata` do what their syscalls do,
//! and their values agree with std's view of the same file.

use std::os::fd::{AsFd, FromRawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

use ringleader::fs::{self, File, OpenOptions};

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
fn sync_all_and_sync_data_reach_the_kernel() {
    let dir = TempDir::new("sync");
    let path = dir.join("f");
    ringleader::block_on(async {
        let f = File::create(&path).await.unwrap();
        f.write_all_at(vec![7u8; 8192], 0).await.0.unwrap();
        f.sync_data().await.unwrap();
        f.write_all_at(vec![8u8; 10], 8192).await.0.unwrap();
        f.sync_all().await.unwrap();
        assert_eq!(f.metadata().await.unwrap().len(), 8202);

        // A pipe cannot be synced: the kernel's EINVAL proves the op got there.
        let mut fds = [0; 2];
        // SAFETY: `fds` is a valid array for pipe2 to fill.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: fresh fds that nothing else owns; the Files close them.
        let (r, w) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
        assert_eq!(
            w.sync_all().await.unwrap_err().raw_os_error(),
            Some(libc::EINVAL)
        );
        assert_eq!(
            r.sync_data().await.unwrap_err().raw_os_error(),
            Some(libc::EINVAL)
        );
    });
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 8202);
}

#[test]
fn fallocate_extends_and_punches_holes() {
    let dir = TempDir::new("falloc");
    let path = dir.join("f");
    ringleader::block_on(async {
        let f = File::create(&path).await.unwrap();
        // Mode 0 allocates and extends the size.
        f.fallocate(0, 1 << 20, 0).await.unwrap();
        let m = f.metadata().await.unwrap();
        assert_eq!(m.len(), 1 << 20);
        assert!(
            m.blocks() * 512 >= 1 << 20,
            "blocks allocated: {}",
            m.blocks()
        );
        // KEEP_SIZE allocates past the end without moving it.
        f.fallocate(1 << 20, 1 << 20, libc::FALLOC_FL_KEEP_SIZE)
            .await
            .unwrap();
        assert_eq!(f.metadata().await.unwrap().len(), 1 << 20);

        f.write_all_at(vec![0xAA; 65536], 0).await.0.unwrap();
        let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        match f.fallocate(0, 65536, punch).await {
            Ok(()) => {
                let f2 = File::open(&path).await.unwrap();
                let (res, buf) = f2.read_exact_at(vec![1u8; 65536], 0).await;
                res.unwrap();
                assert!(buf.iter().all(|&b| b == 0), "the hole reads as zeros");
            }
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                eprintln!("skipping the hole punch: the file system refuses it ({e})");
            }
            Err(e) => panic!("punch hole: {e}"),
        }
        // A zero length is the kernel's EINVAL, errno intact.
        let err = f.fallocate(0, 0, 0).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    });
}

#[test]
fn set_len_truncates_and_extends_with_zeros() {
    let dir = TempDir::new("setlen");
    let path = dir.join("f");
    ringleader::block_on(async {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .open(&path)
            .await
            .unwrap();
        f.write_all_at(b"0123456789".to_vec(), 0).await.0.unwrap();
        f.set_len(4).await.unwrap();
        assert_eq!(f.metadata().await.unwrap().len(), 4);
        f.set_len(8).await.unwrap();
        let (res, buf) = f.read_exact_at(vec![9u8; 8], 0).await;
        res.unwrap();
        assert_eq!(&buf[..], b"0123\0\0\0\0");

        // A read-only fd cannot be truncated.
        let ro = File::open(&path).await.unwrap();
        let err = ro.set_len(0).await.unwrap_err();
        assert!(
            matches!(err.raw_os_error(), Some(libc::EINVAL | libc::EBADF)),
            "{err}"
        );
    });
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 8);
}

#[test]
fn metadata_matches_std_for_files_and_dirs() {
    let dir = TempDir::new("meta");
    let path = dir.join("f");
    ringleader::block_on(async {
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .await
            .unwrap();
        f.write_all_at(vec![1u8; 12345], 0).await.0.unwrap();
        let ours = f.metadata().await.unwrap();
        let std_m = std::fs::metadata(&path).unwrap();
        assert_eq!(ours.len(), 12345);
        assert!(ours.is_file() && !ours.is_dir() && !ours.is_symlink());
        assert_eq!(ours.permissions().mode(), 0o600);
        assert_eq!(ours.mode(), std_m.mode());
        assert_eq!(ours.modified().unwrap(), std_m.modified().unwrap());
        assert_eq!(ours.accessed().unwrap(), std_m.accessed().unwrap());
        assert_eq!(ours.blksize(), std_m.blksize());
        assert_eq!(ours.ino(), std_m.ino());
        assert_eq!(ours.nlink(), 1);
        assert_eq!((ours.uid(), ours.gid()), (std_m.uid(), std_m.gid()));

        // The O_DIRECT alignments agree with a direct statx(STATX_DIOALIGN).
        let direct = ringleader::buf::dio_align(f.as_fd()).unwrap();
        assert_eq!(
            ours.dio_mem_align().map(|a| a as usize),
            direct.map(|d| d.mem)
        );
        assert_eq!(
            ours.dio_offset_align().map(|a| a as usize),
            direct.map(|d| d.offset)
        );

        let by_path = fs::metadata(&path).await.unwrap();
        assert_eq!((by_path.len(), by_path.ino()), (12345, ours.ino()));

        let d = fs::metadata(&dir.0).await.unwrap();
        assert!(d.is_dir() && !d.is_file());

        std::os::unix::fs::symlink(&path, dir.join("link")).unwrap();
        assert!(
            fs::symlink_metadata(dir.join("link"))
                .await
                .unwrap()
                .is_symlink()
        );
        assert!(fs::metadata(dir.join("link")).await.unwrap().is_file());
    });
}
