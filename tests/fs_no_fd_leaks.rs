//! No fs op leaks an fd: not a completed one, not a failed one, not one whose future was
//! dropped in flight (an open's late fd is closed), not one whose result raced the drop, and
//! not a `File` dropped with a `futures::io` op in flight. One test in its own binary, so no
//! other test's fds are counted.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures::task::noop_waker;
use ringleader::fs::{self, File, OpenOptions};

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Poll `fut` once (submitting its SQE) without a real waker.
fn poll_once<F: Future + Unpin>(fut: &mut F) -> bool {
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    Pin::new(fut).poll(&mut cx).is_ready()
}

async fn settle(base_in_flight: u64) {
    for _ in 0..100_000 {
        if ringleader::runtime::stats().ops_in_flight == base_in_flight {
            return;
        }
        ringleader::yield_now().await;
    }
    panic!("ops still in flight: {:?}", ringleader::runtime::stats());
}

#[test]
fn fs_ops_leak_no_fds() {
    let dir = std::env::temp_dir().join(format!("rl-fs-leaks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    ringleader::block_on(async {
        let base = ringleader::runtime::stats();
        let before = fd_count();

        fs::create_dir(&dir).await.unwrap();
        let path = dir.join("f");
        for round in 0..20 {
            // Open, write, read, metadata, sync, resize, close: both close paths.
            let f = File::create(&path).await.unwrap();
            f.write_all_at(vec![round as u8; 10_000], 0)
                .await
                .0
                .unwrap();
            f.sync_data().await.unwrap();
            f.set_len(5000).await.unwrap();
            f.fallocate(0, 8192, 0).await.unwrap();
            assert_eq!(f.metadata().await.unwrap().len(), 8192);
            if round % 2 == 0 {
                f.close().await.unwrap();
            } else {
                drop(f);
            }

            // Failed opens.
            assert!(File::open(dir.join("missing")).await.is_err());
            assert!(
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .await
                    .is_err()
            );

            // An open dropped in flight: its fd is closed when it arrives.
            let mut open = Box::pin(File::open(&path));
            let _ = poll_once(&mut open);
            drop(open);

            // An op dropped in flight, then its File.
            let f = File::open(&path).await.unwrap();
            let mut read = f.read_at(Vec::with_capacity(1 << 16), 0);
            let _ = poll_once(&mut read);
            drop(read);
            drop(f);

            // A File dropped with a futures-io read in flight.
            let mut f = File::open(&path).await.unwrap();
            let mut small = [0u8; 16];
            let mut r = f.read(&mut small);
            let _ = poll_once(&mut r);
            drop(r);
            drop(f);

            // futures-io copy, std round trip.
            let mut out = File::create(dir.join("g")).await.unwrap();
            futures::io::copy(File::open(&path).await.unwrap(), &mut out)
                .await
                .unwrap();
            out.flush().await.unwrap();
            let std_file = out.into_std();
            drop(File::from_std(std_file));

            fs::rename(dir.join("g"), dir.join("h")).await.unwrap();
            fs::remove_file(dir.join("h")).await.unwrap();
            let mut s = String::new();
            let _ = File::open(&path)
                .await
                .unwrap()
                .read_to_string(&mut s)
                .await;
        }

        // An open whose result races the drop: completed and reaped, never polled again.
        let mut open = Box::pin(File::open(&path));
        let _ = poll_once(&mut open);
        settle(base.ops_in_flight).await;
        drop(open);

        fs::remove_file(&path).await.unwrap();
        fs::remove_dir(&dir).await.unwrap();
        settle(base.ops_in_flight).await;
        assert_eq!(fd_count(), before, "fds open before and after");
        assert_eq!(
            ringleader::runtime::stats().slots_occupied,
            base.slots_occupied
        );
    });
}
