//! A signalfd only sees a signal blocked in the thread the kernel picks; anywhere else the
//! signal's action runs, and SIGTERM's default action kills the process. So once SIGTERM is
//! listened for, every thread of the process must either block it or catch it and pass it
//! on: the cores, io-wq workers (started for punted ops before and after the first
//! `signal()`), blocking-pool threads (started before, which keep their mask, and after,
//! which inherit a core's), and plain threads such as this test's.
//!
//! Checked from `/proc/self/task/*/status`: the process catches SIGTERM (so no thread can
//! take the default action, now or later); io-wq workers, every core and pool threads
//! started from a core block it; pool threads started before keep their mask. And by
//! deliveries: a SIGTERM to the process, and one directed at each thread that does not
//! block it, all reach the listener, and the process lives.

use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use ringleader::signal::unix::{SignalKind, signal};

fn gettid() -> libc::pid_t {
    // SAFETY: no preconditions.
    unsafe { libc::gettid() }
}

fn tgkill(tid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: tgkill only sends a signal, to a thread of this process.
    let r = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, sig) };
    assert_eq!(r, 0, "tgkill {tid}: {}", std::io::Error::last_os_error());
}

/// A bit of a `/proc` signal mask line (`SigBlk:\t0000000000004000`).
fn mask_has(status: &str, field: &str, sig: libc::c_int) -> bool {
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in {status}"));
    let hex = line[field.len()..].trim();
    let mask = u64::from_str_radix(hex, 16).unwrap();
    mask & (1 << (sig - 1)) != 0
}

struct Thread {
    tid: libc::pid_t,
    name: String,
    blocks: bool,
}

/// Every thread of this process: id, name, whether it blocks `sig`.
fn threads(sig: libc::c_int) -> Vec<Thread> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc/self/task").unwrap() {
        let e = e.unwrap();
        let tid: libc::pid_t = e.file_name().to_str().unwrap().parse().unwrap();
        // A thread may exit between the listing and the read.
        let Ok(status) = std::fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        let name = status
            .lines()
            .find_map(|l| l.strip_prefix("Name:"))
            .unwrap_or("")
            .trim()
            .to_owned();
        out.push(Thread {
            tid,
            name,
            blocks: mask_has(&status, "SigBlk:", sig),
        });
    }
    out
}

/// A splice from an empty pipe: io_uring cannot poll for it, so it punts the splice to an
/// io-wq worker, which blocks in it until `unblock` is written to. Returns the write end.
async fn park_an_iowq_worker() -> Rc<OwnedFd> {
    let (r, w) = ringleader::pipe::pipe().await.unwrap();
    let (r2, w2) = ringleader::pipe::pipe().await.unwrap();
    let (r, w2) = (Rc::new(r), Rc::new(w2));
    ringleader::spawn(async move {
        // The splice's output must stay open (r2) until it is done.
        let n = ringleader::pipe::splice(&r, None, &w2, None, 1).await;
        drop(r2);
        n
    })
    .detach();
    Rc::new(w)
}

#[test]
fn every_thread_blocks_sigterm_or_passes_it_on() {
    const SIG: libc::c_int = libc::SIGTERM;
    let rt = ringleader::Runtime::builder().cores(2).build().unwrap();
    let (acks_tx, acks) = mpsc::channel::<()>();
    let (tids_tx, tids) = mpsc::channel::<(&str, libc::pid_t)>();
    let (release_tx, release) = mpsc::channel::<()>();
    let release = std::sync::Arc::new(std::sync::Mutex::new(release));

    // Core 0: a blocking-pool thread and an io-wq worker started before the first signal();
    // then the listener; then another pool thread and another io-wq worker.
    let (listening_tx, listening) = mpsc::channel::<()>();
    let (done_tx, done) = ringleader::sync::oneshot::channel::<()>();
    let core0 = rt.spawn_on(0, move || async move {
        // A pool job that reports its thread, then holds that thread until the test ends.
        // Awaiting `started` makes sure the job runs on a thread that exists by then (the
        // pool could otherwise hand it to a thread started later).
        let hold = |what, release: std::sync::Arc<std::sync::Mutex<mpsc::Receiver<()>>>| {
            let tids = tids_tx.clone();
            let (started_tx, started) = ringleader::sync::oneshot::channel();
            let job = ringleader::spawn_blocking(move || {
                tids.send((what, gettid())).unwrap();
                let _ = started_tx.send(());
                let _ = release.lock().unwrap().recv();
            });
            (job, started)
        };
        let (early, started) = hold("early pool thread", release.clone());
        started.await.unwrap();
        let pipe_a = park_an_iowq_worker().await;
        ringleader::yield_now().await;

        let mut term = signal(SignalKind::terminate()).unwrap();
        let (late, started) = hold("late pool thread", release.clone());
        started.await.unwrap();
        let pipe_b = park_an_iowq_worker().await;
        ringleader::yield_now().await;
        listening_tx.send(()).unwrap();

        let mut done = done;
        loop {
            ringleader::select! {
                got = term.recv() => {
                    assert!(got.is_some(), "the signal reader failed");
                    acks_tx.send(()).unwrap();
                }
                _ = &mut done => break,
            }
        }
        // Finish the parked splices and the pool jobs.
        for w in [pipe_a, pipe_b] {
            let (res, _) = ringleader::fd::write(&w, vec![1u8], u64::MAX).await;
            res.unwrap();
        }
        drop(early);
        drop(late);
    });
    listening.recv().unwrap();
    let pool: Vec<_> = (0..2).map(|_| tids.recv().unwrap()).collect();
    // Let the punted splices reach their workers: the workers exist once the ops are queued,
    // but a worker may be created a moment after the submit.
    let mut iowq = Vec::new();
    for _ in 0..500 {
        iowq = threads(SIG)
            .into_iter()
            .filter(|t| t.name.starts_with("iou-wrk"))
            .collect();
        if iowq.len() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if iowq.len() < 2 {
        eprintln!(
            "note: {} io-wq worker(s) seen, 2 expected (this kernel ran a splice inline?)",
            iowq.len()
        );
    }

    // No thread can take the default action: the process catches SIGTERM.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    assert!(mask_has(&status, "SigCgt:", SIG), "SIGTERM is caught");
    assert!(!mask_has(&status, "SigIgn:", SIG), "SIGTERM is not ignored");
    for t in &iowq {
        assert!(
            t.blocks,
            "io-wq worker {} ({}) blocks SIGTERM",
            t.tid, t.name
        );
    }

    // Every core blocks it: core 0 in signal(), core 1 when the message core 0 sent it runs
    // (a moment later). Wait for that: a signal directed at core 1 once it blocks it would
    // wait in core 1's own queue, which only a listener on core 1 reads (see the module
    // docs of ringleader::signal).
    let mut cores = Vec::new();
    for _ in 0..2000 {
        cores = threads(SIG)
            .into_iter()
            .filter(|t| t.name.starts_with("ringleader-core"))
            .collect();
        if cores.iter().all(|t| t.blocks) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(cores.len(), 2);
    assert!(cores.iter().all(|t| t.blocks), "every core blocks SIGTERM");

    // The masks, read before any delivery: a thread running the handler blocks the signal
    // while it does.
    let early = pool
        .iter()
        .find(|(w, _)| *w == "early pool thread")
        .unwrap()
        .1;
    assert!(
        threads(SIG).iter().any(|t| t.tid == early && !t.blocks),
        "a pool thread started before signal() keeps its mask"
    );
    let late = pool
        .iter()
        .find(|(w, _)| *w == "late pool thread")
        .unwrap()
        .1;
    assert!(
        threads(SIG).iter().any(|t| t.tid == late && t.blocks),
        "a pool thread started from a core after signal() inherits the core's mask"
    );
    assert!(threads(SIG).iter().any(|t| t.tid == gettid() && !t.blocks));

    let wait_ack = |what: &str| {
        acks.recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("the listener never saw the SIGTERM sent to {what}"));
    };
    // To the process.
    // SAFETY: kill only sends a signal, to this process.
    assert_eq!(unsafe { libc::kill(libc::getpid(), SIG) }, 0);
    wait_ack("the process");
    // To each thread that does not block it: its handler passes it on to core 0.
    let mut directed = 0;
    for t in threads(SIG) {
        if !t.blocks {
            tgkill(t.tid, SIG);
            wait_ack(&format!("thread {} ({})", t.tid, t.name));
            directed += 1;
        }
    }
    assert!(
        directed >= 2,
        "this thread and the early pool thread let it through"
    );

    done_tx.send(()).unwrap();
    drop(release_tx);
    futures::executor::block_on(core0).unwrap();
    rt.shutdown();
}
