//! `JoinSet::spawn` returns an `AbortHandle`, as in tokio: it aborts that one task (its
//! future is dropped on its core, with its op in flight; `join_next` reports it cancelled;
//! the others go on), from the same task, another core or a plain thread; an output the
//! task already produced is kept; dropping the handle aborts nothing; `is_finished` turns
//! true once the task's future is gone, however it went.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ringleader::task::{AbortHandle, JoinSet};

struct CountDrop(Rc<Cell<usize>>);
impl Drop for CountDrop {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

struct CountDropSync(Arc<AtomicUsize>);
impl Drop for CountDropSync {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

async fn ticks(n: usize) {
    for _ in 0..n {
        ringleader::yield_now().await;
    }
}

#[ringleader::test]
async fn abort_handle_ends_one_task_only() {
    let drops = Rc::new(Cell::new(0));
    let mut set = JoinSet::new();
    let mut handles = Vec::new();
    for i in 0..3u32 {
        let guard = CountDrop(drops.clone());
        handles.push(set.spawn(async move {
            let _g = guard;
            if i == 1 {
                // An op in flight: the abort must cancel it.
                ringleader::time::sleep(Duration::from_secs(3600)).await;
            }
            ticks(3).await;
            i
        }));
    }
    ticks(1).await; // every task has started
    assert!(!handles[1].is_finished());
    handles[1].abort();
    let mut got = Vec::new();
    while let Some(r) = set.join_next().await {
        got.push(r.map_err(|e| e.is_cancelled()));
    }
    got.sort();
    assert_eq!(got, [Ok(0), Ok(2), Err(true)]);
    assert_eq!(drops.get(), 3, "the aborted future was dropped on the core");
    assert!(handles.iter().all(AbortHandle::is_finished));
    assert_eq!(ringleader::runtime::stats().tasks_active, 0);
}

#[ringleader::test]
async fn abort_before_the_first_poll_and_after_the_output() {
    let mut set = JoinSet::new();
    let polled = Rc::new(Cell::new(false));
    let p = polled.clone();
    let early = set.spawn(async move {
        p.set(true);
        1
    });
    early.abort(); // before the task ever ran
    let done = set.spawn(async { 2 });
    ticks(3).await; // `done` has produced its output
    assert!(done.is_finished());
    done.abort(); // too late: the output stays
    let mut got = Vec::new();
    while let Some(r) = set.join_next().await {
        got.push(r.map_err(|e| e.is_cancelled()));
    }
    got.sort();
    assert_eq!(got, [Ok(2), Err(true)]);
    assert!(!polled.get(), "an abort before the first poll runs nothing");
    assert!(early.is_finished());
}

#[ringleader::test]
async fn dropping_the_handle_aborts_nothing() {
    let mut set = JoinSet::new();
    drop(set.spawn(async {
        ticks(3).await;
        5
    }));
    assert_eq!(set.join_next().await.unwrap().unwrap(), 5);
}

#[ringleader::test]
async fn handles_of_spawn_blocking_and_pushed_tasks() {
    let mut set = JoinSet::new();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let blocking = set.spawn_blocking(move || {
        let _ = rx.recv();
        9
    });
    blocking.abort(); // stops waiting; the closure runs on until `tx` drops
    assert!(set.join_next().await.unwrap().unwrap_err().is_cancelled());
    drop(tx);
    // A JoinHandle pushed in is aborted by abort_all as before.
    set.push(ringleader::spawn(std::future::pending::<i32>()));
    set.abort_all();
    assert!(set.join_next().await.unwrap().unwrap_err().is_cancelled());
}

/// The handle is `Send`: a plain thread aborts a task on core 0, and core 0 aborts a task
/// the set placed on core 1 (dropped there).
#[test]
fn abort_from_a_thread_and_onto_another_core() {
    let rt = ringleader::Runtime::builder().cores(2).build().unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    rt.block_on(move || async move {
        let mut set = JoinSet::new();
        let g = CountDropSync(d.clone());
        let local = set.spawn(async move {
            let _g = g;
            std::future::pending::<usize>().await
        });
        let g = CountDropSync(d.clone());
        let remote = set.spawn_on(1, move || async move {
            let _g = g;
            std::future::pending::<usize>().await
        });
        ticks(2).await;
        std::thread::spawn(move || local.abort()).join().unwrap();
        remote.abort();
        for _ in 0..2 {
            assert!(set.join_next().await.unwrap().unwrap_err().is_cancelled());
        }
        assert!(set.is_empty());
        // The remote future is dropped on core 1, perhaps a moment after join_next saw the
        // cancellation: wait for it (bounded).
        for _ in 0..1000 {
            if remote.is_finished() {
                break;
            }
            ringleader::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(remote.is_finished());
    });
    assert_eq!(drops.load(Ordering::SeqCst), 2, "both futures dropped");
    rt.shutdown();
}
