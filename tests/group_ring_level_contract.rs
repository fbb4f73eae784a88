//! The executor's group mechanism (the ring-level half of G1, G3, G4, G6, G8): members are
//! pushed by the driver when the leader's CQE is reaped, all in one batch, never before; a
//! failed leader cancels every member unsubmitted; dropping the group before its leader
//! completes never submits a member.

mod common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;

use common::{pipe, until, write_all};
use io_uring::{opcode, types::Fd};
use ringleader::ops::{Completable, Cqe, GroupOp, MemberLen, MemberSpec, Orphan};

/// A shared buffer standing in for a lease: heap memory kept alive by every op holding it.
#[derive(Clone)]
struct Shared(Rc<Vec<u8>>);
impl Orphan for Shared {}
impl Completable for Shared {
    type Output = i32;
    fn complete(self, cqe: Cqe) -> i32 {
        cqe.result
    }
}

fn read_leader(fd: &OwnedFd, buf: &Shared) -> io_uring::squeue::Entry {
    opcode::Read::new(
        Fd(fd.as_raw_fd()),
        buf.0.as_ptr() as *mut u8,
        buf.0.len() as u32,
    )
    .build()
}

fn write_member(fd: &OwnedFd, buf: &Shared, offset: u32, len: u32) -> MemberSpec<Shared> {
    let ptr = buf.0.as_ptr().wrapping_add(offset as usize);
    MemberSpec {
        entry: opcode::Write::new(Fd(fd.as_raw_fd()), ptr, len).build(),
        len: MemberLen::FromLeader { offset, max: len },
        data: buf.clone(),
        lane: None,
    }
}

fn read_all(fd: &OwnedFd) -> Vec<u8> {
    let mut out = vec![0u8; 1 << 16];
    // SAFETY: `out` is valid for its length; O_NONBLOCK is not set but data is present.
    let n = unsafe { libc::read(fd.as_raw_fd(), out.as_mut_ptr().cast(), out.len()) };
    out.truncate(n.max(0) as usize);
    out
}

#[test]
fn members_pushed_only_after_leader_cqe_all_in_one_batch() {
    let rt = ringleader::Builder::new().build_local().unwrap();
    rt.block_on(async {
        let (src_r, src_w) = pipe();
        let dsts: Vec<_> = (0..4).map(|_| pipe()).collect();
        let buf = Shared(Rc::new(vec![0u8; 64]));
        let members = dsts
            .iter()
            .map(|(_, w)| write_member(w, &buf, 0, 64))
            .collect();
        // SAFETY: every pointer is into `buf`'s heap memory, which each op's data keeps alive.
        let group =
            unsafe { GroupOp::submit(read_leader(&src_r, &buf), buf.clone(), members, None) };
        let h = ringleader::spawn(group);
        until(
            || ringleader::runtime::stats().ops_in_flight == 1,
            "leader in flight",
        )
        .await;
        let before = ringleader::runtime::stats();
        for _ in 0..10 {
            ringleader::yield_now().await;
        }
        let held = ringleader::runtime::stats();
        assert_eq!(
            held.sqes_pushed, before.sqes_pushed,
            "no member pushed while the leader waits"
        );
        assert_eq!(held.group_members_pushed, 0);

        write_all(&src_w, b"hello group");
        let out = h.await.unwrap();
        let after = ringleader::runtime::stats();
        assert_eq!(out.leader, 11);
        assert_eq!(
            out.members,
            vec![11; 4],
            "each member wrote exactly the leader's bytes (G6)"
        );
        assert_eq!(after.group_members_pushed, 4);
        assert_eq!(after.group_batches, 1, "all members pushed in one batch");
        for (r, _) in &dsts {
            assert_eq!(read_all(r), b"hello group");
        }
        drop(dsts);
    });
}

#[test]
fn failed_leader_cancels_members_unsubmitted() {
    ringleader::block_on(async {
        let dsts: Vec<_> = (0..3).map(|_| pipe()).collect();
        let buf = Shared(Rc::new(vec![0u8; 16]));
        let members = dsts
            .iter()
            .map(|(_, w)| write_member(w, &buf, 0, 16))
            .collect();
        // A read on an fd that is not open fails with EBADF.
        let leader = opcode::Read::new(Fd(1_000_000), buf.0.as_ptr() as *mut u8, 16).build();
        let before = ringleader::runtime::stats();
        // SAFETY: pointers into `buf`, kept alive by each op's data.
        let out = unsafe { GroupOp::submit(leader, buf.clone(), members, None) }.await;
        assert_eq!(out.leader, -libc::EBADF);
        assert_eq!(out.members, vec![-libc::ECANCELED; 3]);
        let after = ringleader::runtime::stats();
        assert_eq!(
            after.sqes_pushed - before.sqes_pushed,
            1,
            "only the leader reached the ring"
        );
        assert_eq!(after.group_members_pushed, before.group_members_pushed);
    });
}

#[test]
fn dropped_group_before_leader_never_submits_members() {
    ringleader::block_on(async {
        let (src_r, src_w) = pipe();
        let (dst_r, dst_w) = pipe();
        let buf = Shared(Rc::new(vec![0u8; 8]));
        let base = ringleader::runtime::stats();
        // SAFETY: pointers into `buf`, kept alive by each op's data.
        let group = unsafe {
            GroupOp::submit(
                read_leader(&src_r, &buf),
                buf.clone(),
                vec![write_member(&dst_w, &buf, 0, 8)],
                None,
            )
        };
        ringleader::yield_now().await;
        drop(group);
        until(
            || ringleader::runtime::stats().ops_in_flight == base.ops_in_flight,
            "leader cancelled",
        )
        .await;
        write_all(&src_w, b"late");
        for _ in 0..10 {
            ringleader::yield_now().await;
        }
        let s = ringleader::runtime::stats();
        assert_eq!(
            s.group_members_pushed, base.group_members_pushed,
            "no member submitted"
        );
        assert_eq!(s.slots_occupied, base.slots_occupied, "no slot left behind");
        assert_eq!(Rc::strong_count(&buf.0), 1, "every op's reference released");
        // Nothing was written to the destination.
        // SAFETY: plain fcntl on an fd we own.
        unsafe { libc::fcntl(dst_r.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        assert!(read_all(&dst_r).is_empty());
    });
}

#[test]
fn zero_fill_gives_members_the_full_length_with_a_zeroed_tail() {
    ringleader::block_on(async {
        let (src_r, src_w) = pipe();
        let (dst_r, dst_w) = pipe();
        let buf = Shared(Rc::new(vec![0xAAu8; 16]));
        let zf = {
            let ptr = buf.0.as_ptr() as *mut u8;
            // SAFETY: `buf`'s 16 heap bytes stay alive in every op's data; nothing else reads
            // or writes them between the leader's CQE and the member's push.
            unsafe { ringleader::ops::ZeroFill::new(ptr, 16) }
        };
        write_all(&src_w, b"abc");
        // SAFETY: pointers into `buf`, kept alive by each op's data.
        let out = unsafe {
            GroupOp::submit(
                read_leader(&src_r, &buf),
                buf.clone(),
                vec![write_member(&dst_w, &buf, 0, 16)],
                Some(zf),
            )
        }
        .await;
        assert_eq!(out.leader, 3, "short leader");
        assert_eq!(out.members, vec![16], "the member wrote the full length");
        let mut want = b"abc".to_vec();
        want.resize(16, 0);
        assert_eq!(
            read_all(&dst_r),
            want,
            "the unread tail was zeroed, no stale bytes"
        );
    });
}
