//! The whole-file helpers: `fs::read`/`write` round-trip small, empty and multi-chunk files
//! and read `/proc` files whose size statx reports as 0; `read_to_string` refuses invalid
//! UTF-8; `fs::copy` copies bytes and permission bits; `canonicalize` resolves symlinks and
//! `..`; `read_dir` lists more entries than one batch with names, types, inodes and
//! metadata, and a dropped `next_entry` future loses no entry; errors name the path.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use futures::FutureExt;
use ringleader::fs;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rl-fs-helpers-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir(&d).unwrap();
    d
}

#[ringleader::test]
async fn read_write_round_trip_and_proc_files() {
    let dir = scratch("rw");
    for len in [0usize, 1, 4096, 256 * 1024 + 17, 3 << 20] {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let p = dir.join(format!("f{len}"));
        fs::write(&p, &data).await.unwrap();
        assert_eq!(fs::read(&p).await.unwrap(), data, "len {len}");
        // write truncates what was there.
        fs::write(&p, b"x").await.unwrap();
        assert_eq!(fs::read(&p).await.unwrap(), b"x");
    }
    // statx says 0 bytes; the contents are still read whole.
    let status = fs::read_to_string("/proc/self/status").await.unwrap();
    assert!(status.contains("Pid:"), "{status}");

    fs::write(dir.join("bad"), [0xff, 0xfe]).await.unwrap();
    let err = fs::read_to_string(dir.join("bad")).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);

    let err = fs::read(dir.join("missing")).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    assert!(err.to_string().contains("missing"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[ringleader::test]
async fn copy_keeps_bytes_and_permissions() {
    let dir = scratch("copy");
    let data: Vec<u8> = (0..(5 << 20) + 3).map(|i| (i % 253) as u8).collect();
    let (a, b) = (dir.join("a"), dir.join("b"));
    fs::write(&a, &data).await.unwrap();
    std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o640)).unwrap();
    fs::write(&b, b"old contents, longer than nothing")
        .await
        .unwrap();
    assert_eq!(fs::copy(&a, &b).await.unwrap(), data.len() as u64);
    assert_eq!(fs::read(&b).await.unwrap(), data);
    assert_eq!(fs::metadata(&b).await.unwrap().mode() & 0o777, 0o640);

    let err = fs::copy(dir.join("nope"), &b).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    assert!(err.to_string().contains("nope"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[ringleader::test]
async fn canonicalize_resolves_links_and_dots() {
    let dir = scratch("canon");
    std::fs::create_dir(dir.join("real")).unwrap();
    std::os::unix::fs::symlink(dir.join("real"), dir.join("link")).unwrap();
    let got = fs::canonicalize(dir.join("link/../link/./")).await.unwrap();
    assert_eq!(got, std::fs::canonicalize(dir.join("real")).unwrap());
    let err = fs::canonicalize(dir.join("gone")).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    assert!(err.to_string().contains("gone"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[ringleader::test]
async fn read_dir_lists_every_entry_with_types() {
    let dir = scratch("readdir");
    let mut want = BTreeMap::new();
    for i in 0..100 {
        let name = format!("file{i:03}");
        fs::write(dir.join(&name), vec![1u8; i]).await.unwrap();
        want.insert(name, "file");
    }
    std::fs::create_dir(dir.join("sub")).unwrap();
    want.insert("sub".into(), "dir");
    std::os::unix::fs::symlink("file000", dir.join("ln")).unwrap();
    want.insert("ln".into(), "symlink");

    let mut rd = fs::read_dir(&dir).await.unwrap();
    // A next_entry future polled once and dropped, most often while its batch is listed on
    // the pool (if the pool was quicker, it gives the first entry): nothing is lost.
    let mut entries = Vec::new();
    if let Some(first) = rd.next_entry().now_or_never() {
        entries.extend(first.unwrap());
    }
    while let Some(e) = rd.next_entry().await.unwrap() {
        entries.push(e);
    }
    let mut got = BTreeMap::new();
    for e in entries {
        let name = e.file_name().into_string().unwrap();
        assert_eq!(e.path(), dir.join(&name));
        let t = e.file_type().await.unwrap();
        let kind = if t.is_symlink() {
            "symlink"
        } else if t.is_dir() {
            "dir"
        } else {
            "file"
        };
        let md = e.metadata().await.unwrap();
        assert_eq!(md.ino(), e.ino());
        if let Some(n) = name.strip_prefix("file") {
            assert_eq!(md.len(), n.parse::<u64>().unwrap());
        }
        assert!(got.insert(name, kind).is_none(), "listed twice");
    }
    assert!(rd.next_entry().await.unwrap().is_none(), "stays at the end");
    assert_eq!(got, want);

    let err = fs::read_dir(dir.join("file001")).await.unwrap_err();
    assert_eq!(fs::raw_os_error(&err), Some(libc::ENOTDIR));
    assert!(err.to_string().contains("file001"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
