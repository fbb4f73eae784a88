//! A burst of io-wq work for the io-wq cap tests (included with `#[path]`): `BURST` splices
//! from empty pipes, each blocking an io-wq worker until data comes, while the process's
//! `iou-wrk-*` threads are counted; then a byte into every pipe lets all of them, the ones
//! that waited in the io-wq queue for a worker too, complete.

use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use futures::future::join_all;
use ringleader::pipe::{pipe, splice};
use ringleader::runtime::LocalRuntime;

/// Splices blocked at once: well above either cap tested.
pub const BURST: usize = 200;

/// io-wq worker threads of this process now.
fn iowq_workers() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with("iou-wrk"))
        })
        .count()
}

/// `BURST` splices from empty pipes (each with its writer open, so they wait for data),
/// counted while they wait; returns the most io-wq workers seen.
pub fn burst(rt: &LocalRuntime) -> usize {
    rt.block_on(async {
        let mut pipes = Vec::with_capacity(BURST);
        for _ in 0..BURST {
            let (r, w) = pipe().await.expect("pipe");
            let (r2, w2) = pipe().await.expect("pipe");
            pipes.push((Rc::new(r), Rc::new(w), Rc::new(r2), Rc::new(w2)));
        }
        let splices = join_all(
            pipes
                .iter()
                .map(|(r, _, _, w2)| splice(r, None, w2, None, 4096)),
        );
        let count = async {
            // Submit the splices, then watch the workers appear: the kernel starts them one
            // by one as work queues up. Bounded: 100 looks, 20 ms apart.
            let mut most = 0;
            let mut still = 0;
            for _ in 0..100 {
                ringleader::time::sleep(Duration::from_millis(20)).await;
                let now = iowq_workers();
                still = if now == most { still + 1 } else { 0 };
                most = most.max(now);
                if still >= 10 {
                    break;
                }
            }
            // Let every splice finish: one byte into each source pipe.
            for (_, w, _, _) in &pipes {
                write_byte(w);
            }
            most
        };
        let (results, most) = futures::future::join(splices, count).await;
        for (i, r) in results.into_iter().enumerate() {
            assert_eq!(r.expect("splice"), 1, "splice {i} moved its byte");
        }
        most
    })
}

fn write_byte(w: &OwnedFd) {
    // SAFETY: write(2) reads one byte from a live local; `w` is an open pipe write end.
    let n = unsafe { libc::write(w.as_raw_fd(), b"x".as_ptr().cast(), 1) };
    assert_eq!(n, 1, "write: {}", std::io::Error::last_os_error());
}

pub fn on_own_thread(f: impl FnOnce() -> usize + Send + 'static) -> usize {
    std::thread::spawn(f).join().expect("the case's thread")
}
