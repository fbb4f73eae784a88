//! `mem::forget` of an in-flight op leaks its resources and its slot; it never frees memory
//! the kernel still writes into, and the runtime keeps working (and shuts down) afterwards.

mod common;
#[path = "support/quarantine.rs"]
mod quarantine;
#[global_allocator]
static ALLOC: quarantine::Quarantine = quarantine::Quarantine;

use std::rc::Rc;

use common::{CountedBuf, counter, fd_count, get, pipe, until, write_all};

/// The tests of this file count fds: run them one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn forgotten_read_leaks_its_buffer_and_slot_but_nothing_breaks() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let drops = counter();
    let (r, w) = pipe();
    let r = Rc::new(r);
    ringleader::block_on(async {
        let base = ringleader::runtime::stats();
        let op = ringleader::fd::read(&r, CountedBuf::new(4096, &drops), u64::MAX);
        ringleader::yield_now().await;
        std::mem::forget(op);
        // The kernel completes the read into the leaked buffer.
        write_all(&w, &[7u8; 100]);
        until(
            || ringleader::runtime::stats().ops_in_flight == base.ops_in_flight,
            "read completed",
        )
        .await;
        let s = ringleader::runtime::stats();
        assert_eq!(
            s.slots_occupied,
            base.slots_occupied + 1,
            "the slot is leaked, not reused"
        );
        assert_eq!(get(&drops), 0, "the buffer is leaked, not freed");
        // Later ops use other slots and see their own data.
        write_all(&w, b"next");
        let (n, buf) = ringleader::fd::read(&r, Vec::with_capacity(16), u64::MAX).await;
        assert_eq!((n.unwrap(), &buf[..]), (4, &b"next"[..]));
    });
    assert_eq!(get(&drops), 0);
    quarantine::check_all();
}

#[test]
fn runtime_with_a_forgotten_in_flight_op_still_shuts_down() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let drops = counter();
    let (r, _w) = pipe();
    let r = Rc::new(r);
    let fds_before = fd_count();
    ringleader::block_on(async {
        let op = ringleader::fd::read(&r, CountedBuf::new(64, &drops), u64::MAX);
        ringleader::yield_now().await;
        std::mem::forget(op);
        assert_eq!(ringleader::runtime::stats().ops_in_flight, 1);
    });
    // block_on's runtime cancelled and reaped the op before freeing the ring; the buffer
    // itself was forgotten by the user, so it is never dropped.
    assert_eq!(get(&drops), 0);
    // The forgotten op does not keep the ring alive: its fd is closed.
    assert_eq!(
        fd_count(),
        fds_before,
        "the ring was torn down despite the forgotten op"
    );
    quarantine::check_all();
}
