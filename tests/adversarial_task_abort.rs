//! Adversarial review of `JoinSet`'s `AbortHandle` (`src/task/abort.rs`).
//!
//! `AbortHandle::is_finished` promises to turn true "once the task's core has dropped the
//! future" (so a caller on another thread may take it as "the task's resources are gone").
//! The abortable wrapper holds a `Finished` guard and the user's future; when the task is
//! cancelled before its first poll (`abort_all`, dropping the set, the runtime's shutdown)
//! the wrapper's captures are dropped in capture order, the guard first: the flag is set
//! while the user's future is still alive. (Polled at least once, the wrapper drops its
//! locals in reverse order, the future first, and the flag is right.)
//!
//! Also pinned: an abort from a plain thread racing the task's completion on another core
//! yields the output or `Cancelled`, and the future is dropped exactly once.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ringleader::task::{AbortHandle, JoinSet};

/// Records, in its drop, whether its own task's handle already claimed to be finished.
struct Witness {
    handle: Rc<RefCell<Option<AbortHandle>>>,
    finished_while_alive: Rc<RefCell<Option<bool>>>,
}

impl Drop for Witness {
    fn drop(&mut self) {
        let h = self.handle.borrow();
        let seen = h.as_ref().expect("handle stored").is_finished();
        *self.finished_while_alive.borrow_mut() = Some(seen);
    }
}

#[derive(Clone, Copy, Debug)]
enum Cancel {
    /// `AbortHandle::abort` before the first poll.
    Handle,
    /// `JoinSet::abort_all` before the first poll.
    AbortAll,
    /// Dropping the set before the first poll.
    DropSet,
    /// `JoinSet::abort_all` after the task has been polled once.
    AbortAllAfterPoll,
}

async fn check(how: Cancel) {
    let handle = Rc::new(RefCell::new(None));
    let seen = Rc::new(RefCell::new(None));
    let mut set = JoinSet::new();
    let w = Witness {
        handle: Rc::clone(&handle),
        finished_while_alive: Rc::clone(&seen),
    };
    let h = set.spawn(async move {
        let _w = w;
        std::future::pending::<()>().await;
    });
    *handle.borrow_mut() = Some(h.clone());
    match how {
        Cancel::Handle => h.abort(),
        Cancel::AbortAll => set.abort_all(),
        Cancel::DropSet => drop(std::mem::take(&mut set)),
        Cancel::AbortAllAfterPoll => {
            ringleader::yield_now().await;
            set.abort_all();
        }
    }
    while set.join_next().await.is_some() {}
    // The drop runs on this core at its next tick at the latest.
    for _ in 0..10 {
        if seen.borrow().is_some() {
            break;
        }
        ringleader::yield_now().await;
    }
    assert_eq!(
        *seen.borrow(),
        Some(false),
        "{how:?}: is_finished() was already true while the task's future was being dropped"
    );
    assert!(h.is_finished(), "{how:?}: finished once the future is gone");
}

#[ringleader::test]
async fn adversarial_task_abort_handle_before_first_poll_finishes_after_drop() {
    check(Cancel::Handle).await;
}

#[ringleader::test]
async fn adversarial_task_abort_all_after_a_poll_finishes_after_drop() {
    check(Cancel::AbortAllAfterPoll).await;
}

#[ringleader::test]
async fn adversarial_task_abort_all_before_first_poll_finishes_after_drop() {
    check(Cancel::AbortAll).await;
}

#[ringleader::test]
async fn adversarial_task_set_dropped_before_first_poll_finishes_after_drop() {
    check(Cancel::DropSet).await;
}

/// An abort from another thread racing the task's own completion: the output or
/// `Cancelled`, never both, never neither, and the future dropped exactly once.
#[test]
fn adversarial_task_abort_races_completion_from_another_thread() {
    let rt = ringleader::Builder::new().cores(2).build().unwrap();
    rt.block_on(|| async {
        for round in 0..300u32 {
            let drops = Arc::new(AtomicUsize::new(0));
            let go = Arc::new(AtomicBool::new(false));
            let mut set = JoinSet::new();
            struct D(Arc<AtomicUsize>);
            impl Drop for D {
                fn drop(&mut self) {
                    self.0.fetch_add(1, Ordering::SeqCst);
                }
            }
            let d = D(Arc::clone(&drops));
            let h = set.spawn_on(1, move || async move {
                let _d = d;
                for _ in 0..(round % 7) {
                    ringleader::yield_now().await;
                }
                round
            });
            let t = {
                let go = Arc::clone(&go);
                std::thread::spawn(move || {
                    while !go.load(Ordering::Acquire) {
                        std::hint::spin_loop();
                    }
                    h.abort();
                    h
                })
            };
            go.store(true, Ordering::Release);
            let r = set.join_next().await.expect("one task");
            match r {
                Ok(v) => assert_eq!(v, round),
                Err(e) => assert!(e.is_cancelled(), "round {round}: {e}"),
            }
            assert!(set.join_next().await.is_none());
            let h = t.join().unwrap();
            for _ in 0..100 {
                if h.is_finished() {
                    break;
                }
                ringleader::yield_now().await;
            }
            assert!(h.is_finished(), "round {round}: finished");
            assert_eq!(
                drops.load(Ordering::SeqCst),
                1,
                "round {round}: dropped once"
            );
        }
    });
}
