//! `JoinSet`: outputs come in finishing order, a panic is a `JoinError::Panic`, a dropped
//! `join_next` future loses nothing, `abort_all` and dropping the set drop every task's
//! future on its core (counted with drop guards, including a task on another core), and
//! `spawn_blocking` tasks join like the others.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::FutureExt;
use ringleader::task::JoinSet;

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
async fn outputs_in_finishing_order_and_panics_reported() {
    let mut set = JoinSet::new();
    for i in (0..5u64).rev() {
        set.spawn(async move {
            ringleader::time::sleep(Duration::from_millis(5 * i)).await;
            i
        });
    }
    set.spawn(async { panic!("boom") });
    assert_eq!(set.len(), 6);
    let first = set.join_next().await.unwrap().unwrap_err();
    assert!(first.is_panic(), "{first}");
    assert!(first.to_string().contains("boom"));
    let mut got = Vec::new();
    while let Some(r) = set.join_next().await {
        got.push(r.unwrap());
    }
    assert_eq!(got, [0, 1, 2, 3, 4]);
    assert!(set.is_empty() && set.try_join_next().is_none());
}

#[ringleader::test]
async fn dropped_join_next_loses_no_output() {
    let mut set = JoinSet::new();
    set.spawn(async {
        ringleader::time::sleep(Duration::from_millis(10)).await;
        7
    });
    // Poll join_next once and drop it while the task runs.
    assert!(set.join_next().now_or_never().is_none());
    assert_eq!(set.len(), 1);
    assert_eq!(set.join_next().await.unwrap().unwrap(), 7);
}

#[ringleader::test]
async fn abort_all_drops_every_future_and_reports_cancelled() {
    let drops = Rc::new(Cell::new(0));
    let mut set = JoinSet::new();
    for _ in 0..10 {
        let guard = CountDrop(drops.clone());
        set.spawn(async move {
            let _g = guard;
            // An op in flight: the abort must cancel it.
            ringleader::time::sleep(Duration::from_secs(3600)).await;
        });
    }
    ticks(2).await; // every task is parked on its sleep
    set.abort_all();
    let mut cancelled = 0;
    while let Some(r) = set.join_next().await {
        assert!(r.unwrap_err().is_cancelled());
        cancelled += 1;
    }
    assert_eq!(cancelled, 10);
    ticks(4).await;
    assert_eq!(
        drops.get(),
        10,
        "every aborted future is dropped on the core"
    );
}

#[ringleader::test]
async fn dropping_the_set_aborts_its_tasks() {
    let drops = Rc::new(Cell::new(0));
    let finished = Rc::new(Cell::new(false));
    {
        let mut set = JoinSet::new();
        let guard = CountDrop(drops.clone());
        let f = finished.clone();
        set.spawn(async move {
            let _g = guard;
            ringleader::time::sleep(Duration::from_millis(50)).await;
            f.set(true);
        });
        ticks(2).await;
    }
    ticks(4).await;
    assert_eq!(drops.get(), 1);
    ringleader::time::sleep(Duration::from_millis(80)).await;
    assert!(!finished.get(), "an aborted task never resumes");
    assert_eq!(ringleader::runtime::stats().tasks_active, 0);
}

#[ringleader::test]
async fn detach_all_lets_tasks_finish() {
    let done = Rc::new(Cell::new(false));
    let mut set = JoinSet::new();
    let d = done.clone();
    set.spawn(async move {
        ticks(3).await;
        d.set(true);
    });
    set.detach_all();
    drop(set);
    ticks(10).await;
    assert!(done.get());
}

#[ringleader::test]
async fn blocking_jobs_join_like_tasks() {
    let mut set = JoinSet::new();
    set.spawn_blocking(|| 2 + 2);
    set.spawn_blocking(|| -> i32 { panic!("blocking boom") });
    let mut ok = 0;
    let mut panics = 0;
    while let Some(r) = set.join_next().await {
        match r {
            Ok(v) => ok += v,
            Err(e) => {
                assert!(e.is_panic());
                panics += 1;
            }
        }
    }
    assert_eq!((ok, panics), (4, 1));
}

#[test]
fn tasks_on_other_cores_join_and_abort() {
    let rt = ringleader::Runtime::builder().cores(2).build().unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    rt.block_on(move || async move {
        let mut set = JoinSet::new();
        for core in [0, 1, 1] {
            set.spawn_on(core, move || async move { ringleader::current_core() });
        }
        let mut cores = set.join_all().await;
        cores.sort();
        assert_eq!(cores, [0, 1, 1]);

        let mut set = JoinSet::new();
        let guard = CountDropSync(d.clone());
        set.spawn_on(1, move || async move {
            let _g = guard;
            std::future::pending::<()>().await
        });
        ringleader::time::sleep(Duration::from_millis(20)).await;
        drop(set);
        for _ in 0..100 {
            if d.load(Ordering::SeqCst) == 1 {
                break;
            }
            ringleader::time::sleep(Duration::from_millis(5)).await;
        }
    });
    assert_eq!(drops.load(Ordering::SeqCst), 1, "dropped on core 1");
}
