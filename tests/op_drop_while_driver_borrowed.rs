//! Issue 12, hole 1: dropping an in-flight op while the driver is borrowed further up the
//! stack (user code inside `ringleader::ops::with_submitter`, or a user waker whose `clone` or
//! `drop` runs while the runtime stores a waker) must not panic and must not release the
//! op's resources: they stay alive until the op's final CQE and are released exactly once.
//!
//! Victims: a pipe read into a heap buffer, a `GroupOp` (read leader, write member) and a
//! multishot `MultiOp`, each dropped through each trigger; a pipe read dropped inside
//! `with_submitter` before it reached the kernel, in the kernel, and after its CQE; and,
//! inside `with_submitter`, an io-level `Group` on a fixed-buffer lease, a plain lease read
//! (an op that settles on drop) and a `TcpListener::incoming` stream. Before the fix the
//! drop panicked with "already borrowed" and the unwind freed the buffer under the kernel.

#[path = "support/borrowed_drop.rs"]
mod borrowed_drop;
mod common;

use std::future::{Future, IntoFuture};
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Waker};

use borrowed_drop::{Bystander, Kind, Trigger, Victim, drop_while_borrowed, read_pipe, unread};
use common::{CountedBuf, counter, get, pipe, until, write_all};
use ringleader::buf::FixedPool;
use ringleader::group::{Group, Leader, Member};

/// Drop an in-flight `kind` through `trigger`; it must be released once, at its final CQE.
fn drop_in_flight(kind: Kind, trigger: Trigger) {
    ringleader::block_on(async {
        let baseline = ringleader::runtime::stats();
        let mut bystander = Bystander::new();
        let mut victim = Victim::new(kind, 1000, b'k');
        // Both SQEs reach the kernel with this submit; the pipes are empty, so they wait.
        ringleader::ops::nop().await.unwrap();

        drop_while_borrowed(trigger, victim.op.take().unwrap(), &mut bystander);
        victim.assert_not_released_early(trigger);
        victim.feed();
        victim.assert_released_once(trigger).await;

        bystander.finish().await;
        until(
            || ringleader::runtime::stats().ops_in_flight == baseline.ops_in_flight,
            "every op reaped",
        )
        .await;
        ringleader::yield_now().await;
        let after = ringleader::runtime::stats();
        assert_eq!(
            after.slots_occupied, baseline.slots_occupied,
            "no op slot stays occupied: {after:?}"
        );
    });
}

#[test]
fn read_op_dropped_inside_with_submitter() {
    drop_in_flight(Kind::Read, Trigger::WithSubmitter);
}

#[test]
fn read_op_dropped_by_a_waker_clone() {
    drop_in_flight(Kind::Read, Trigger::WakerClone);
}

#[test]
fn read_op_dropped_by_a_waker_drop() {
    drop_in_flight(Kind::Read, Trigger::WakerDrop);
}

#[test]
fn group_op_dropped_inside_with_submitter() {
    drop_in_flight(Kind::Group, Trigger::WithSubmitter);
}

#[test]
fn group_op_dropped_by_a_waker_clone() {
    drop_in_flight(Kind::Group, Trigger::WakerClone);
}

#[test]
fn group_op_dropped_by_a_waker_drop() {
    drop_in_flight(Kind::Group, Trigger::WakerDrop);
}

#[test]
fn multi_op_dropped_inside_with_submitter() {
    drop_in_flight(Kind::Multi, Trigger::WithSubmitter);
}

#[test]
fn multi_op_dropped_by_a_waker_clone() {
    drop_in_flight(Kind::Multi, Trigger::WakerClone);
}

#[test]
fn multi_op_dropped_by_a_waker_drop() {
    drop_in_flight(Kind::Multi, Trigger::WakerDrop);
}

/// A read dropped inside `with_submitter` in each state: pushed but not yet submitted, in the
/// kernel, and completed but not collected.
#[test]
fn read_dropped_inside_with_submitter_in_every_state() {
    ringleader::block_on(async {
        for state in ["queued", "in kernel", "completed"] {
            let (r, w) = pipe();
            let r = Rc::new(r);
            let drops = counter();
            if state == "completed" {
                write_all(&w, b"ready");
            }
            let read = read_pipe(&r, CountedBuf::new(64, &drops));
            if state != "queued" {
                // The read's SQE went to the kernel with the nop's; a read of a pipe with
                // data completes before the nop does.
                ringleader::ops::nop().await.unwrap();
            }
            ringleader::ops::with_submitter(move |_| drop(read));
            if state != "completed" {
                assert_eq!(get(&drops), 0, "{state}: buffer released under the kernel");
                write_all(&w, b"late");
            }
            until(|| get(&drops) >= 1, &format!("{state}: buffer released")).await;
            for _ in 0..20 {
                ringleader::yield_now().await;
            }
            assert_eq!(get(&drops), 1, "{state}: buffer released exactly once");
        }
    });
}

fn pipe_rc() -> (Rc<OwnedFd>, OwnedFd) {
    let (r, w) = pipe();
    (Rc::new(r), w)
}

/// Right after a dropped lease op and its lease: the slot is back in the pool only if the
/// drop settled (waited for the op's final CQE); otherwise the kernel may still read into it.
fn assert_slot_held_while_in_flight(pool: &FixedPool, baseline: &ringleader::runtime::Stats) {
    let now = ringleader::runtime::stats();
    assert!(
        pool.available() == 0 || now.ops_in_flight == baseline.ops_in_flight,
        "the slot is free while its read is in flight: {now:?}"
    );
}

/// A `Group` (READ_FIXED leader on a pipe, one member) dropped inside `with_submitter`: the
/// lease slot is not reused until the leader's final CQE, and the member never runs.
#[test]
fn lease_group_dropped_inside_with_submitter() {
    ringleader::block_on(async {
        let baseline = ringleader::runtime::stats();
        let pool = FixedPool::new(4096, 1).expect("fixed pool");
        let (src_r, src_w) = pipe_rc();
        let (out_r, out_w) = pipe();
        let out_w = Rc::new(out_w);
        let mut lease = pool.lease(4096).await.unwrap();
        let mut group = Group::new(&mut lease)
            .leader(Leader::read_fixed(&src_r, u64::MAX))
            .member(Member::write(&out_w, u64::MAX))
            .into_future();
        // The first poll submits the leader; the nop's round trip puts it in the kernel.
        let mut cx = Context::from_waker(Waker::noop());
        assert!(Pin::new(&mut group).poll(&mut cx).is_pending());
        ringleader::ops::nop().await.unwrap();

        ringleader::ops::with_submitter(move |_| drop(group));
        drop(lease);
        assert_slot_held_while_in_flight(&pool, &baseline);
        write_all(&src_w, b"into the lease");
        until(
            || pool.available() == 1,
            "the slot comes back at the final CQE",
        )
        .await;
        for _ in 0..20 {
            ringleader::yield_now().await;
        }
        assert_eq!(
            unread(&out_r),
            0,
            "the member of a dropped group was submitted"
        );
    });
}

/// A plain read into a borrowed lease (its op settles on drop) dropped inside
/// `with_submitter`: no panic, and the slot is not reused until the final CQE.
#[test]
fn settling_lease_read_dropped_inside_with_submitter() {
    ringleader::block_on(async {
        let baseline = ringleader::runtime::stats();
        let pool = FixedPool::new(4096, 1).expect("fixed pool");
        let (src_r, src_w) = pipe_rc();
        let mut lease = pool.lease(4096).await.unwrap();
        let read = ringleader::group::read_fixed_at(&src_r, &mut lease, u64::MAX);
        ringleader::ops::nop().await.unwrap();

        ringleader::ops::with_submitter(move |_| drop(read));
        drop(lease);
        assert_slot_held_while_in_flight(&pool, &baseline);
        write_all(&src_w, b"into the lease");
        until(
            || pool.available() == 1,
            "the slot comes back at the final CQE",
        )
        .await;
    });
}

/// A multishot accept stream dropped inside `with_submitter` (with its listener): no panic,
/// its op is cancelled and reaped.
#[test]
fn incoming_stream_dropped_inside_with_submitter() {
    ringleader::block_on(async {
        let baseline = ringleader::runtime::stats();
        let listener = ringleader::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = listener.incoming();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(
            futures::Stream::poll_next(Pin::new(&mut incoming), &mut cx).is_pending(),
            "nobody connected yet"
        );
        ringleader::ops::nop().await.unwrap();

        ringleader::ops::with_submitter(move |_| {
            drop(incoming);
            drop(listener);
        });
        // A connection the accept may take before its cancel: the orphaned op closes it.
        let _client = std::net::TcpStream::connect(addr);
        until(
            || ringleader::runtime::stats().ops_in_flight == baseline.ops_in_flight,
            "the multishot accept reaped",
        )
        .await;

        // The runtime still serves a new listener.
        let listener = ringleader::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::thread::spawn(move || std::net::TcpStream::connect(addr).map(drop));
        listener.accept().await.unwrap();
        client.join().unwrap().unwrap();
    });
}
