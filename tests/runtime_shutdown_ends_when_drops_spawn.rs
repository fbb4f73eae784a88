//! Shutdown drops every task on its core; a task's drop may spawn another, which is dropped
//! in turn. A future whose drop *always* spawns again must not keep shutdown going for ever:
//! after a bounded number of rounds the rest is leaked (never freed) and the runtime ends.

use std::sync::mpsc;
use std::time::Duration;

struct Respawn(u64);

impl Drop for Respawn {
    fn drop(&mut self) {
        let next = Respawn(self.0 + 1);
        drop(ringleader::spawn(async move {
            let _r = next;
            std::future::pending::<()>().await;
        }));
    }
}

#[test]
fn a_task_whose_drop_respawns_does_not_stop_shutdown() {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = ringleader::Builder::new().build_local().unwrap();
        rt.block_on(async {
            let r = Respawn(0);
            drop(ringleader::spawn(async move {
                let _r = r;
                std::future::pending::<()>().await;
            }));
            ringleader::yield_now().await;
        });
        drop(rt);
        tx.send(()).unwrap();
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("LocalRuntime::drop never returned");
}
