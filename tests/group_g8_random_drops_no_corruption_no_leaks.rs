//! G8: dropping a group future at any point — before it is submitted, while the leader
//! waits, while members run, between a `SEND_ZC` member's result and its notification —
//! never submits a member that was not yet submitted, cancels what is in flight, and never
//! lets the lease slot be reused before every CQE that references it.
//!
//! 100,000 randomized drops over four kinds of group (a read leader with write, vectored write and
//! `SEND_ZC` members; a bare lease with striped reads; a buffer-ring recv group; a kernel-linked
//! chain). After each drop the test immediately leases every free slot as a *canary* filled with a
//! marker byte, then feeds every pipe and socket so that any op still alive would write now; once
//! every op has been reaped, the canaries must be intact, and everything the members wrote out must
//! be this iteration's data (a member writing from a reused slot would send canary bytes). At the
//! end: no op slot, pool slot, ring buffer or fd leaked.

mod group_util;
#[path = "support/quarantine.rs"]
mod quarantine;
#[global_allocator]
static ALLOC: quarantine::Quarantine = quarantine::Quarantine;

use std::future::{Future, IntoFuture};
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::rc::Rc;

use futures::{FutureExt, poll};
use group_util::{pipe, put, take, ticks, until};
use ringleader::buf::{BufRing, FixedPool, Lease};
use ringleader::group::{Group, Leader, Member, RecvGroup};
use ringleader::net::UnixStream;

const ITERATIONS: u64 = 100_000;
const SLOTS: usize = 4;
const SIZE: usize = 256;

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

struct Rig {
    pool: FixedPool,
    ring: BufRing,
    src: (Rc<OwnedFd>, Rc<OwnedFd>),
    stripes: [(Rc<OwnedFd>, Rc<OwnedFd>); 2],
    outs: [(Rc<OwnedFd>, Rc<OwnedFd>); 2],
    /// A connected UDP socket for `SEND_ZC` (loopback TCP would hold every notification
    /// for a delayed ACK), and its peer.
    udp: Rc<OwnedFd>,
    peer: std::net::UdpSocket,
    unix: (UnixStream, UnixStream),
}

type Dyn<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

impl Rig {
    fn group<'a>(&'a self, kind: u64, lease: &'a mut Lease) -> Dyn<'a> {
        let (src, [s0, s1], [o0, o1]) = (&self.src, &self.stripes, &self.outs);
        match kind {
            0 => Group::new(lease)
                .leader(Leader::read_fixed(&src.0, u64::MAX))
                .member(Member::write_fixed(&o0.1, u64::MAX))
                .member(Member::write(&o1.1, u64::MAX))
                .member(Member::writev_fixed(&o1.1, u64::MAX, [0..64, 128..SIZE]))
                .member(Member::send_zc(&self.udp))
                .into_future()
                .map(drop)
                .boxed_local(),
            1 => Group::new(lease)
                .leader(Leader::nop())
                .member(Member::read_fixed(&s0.0, u64::MAX).at(..SIZE / 2))
                .member(Member::read_fixed(&s1.0, u64::MAX).at(SIZE / 2..))
                .into_future()
                .map(drop)
                .boxed_local(),
            2 => RecvGroup::new(&self.unix.1, &self.ring)
                .member(Member::write_fixed(&o0.1, u64::MAX))
                .member(Member::send_zc(&self.udp))
                .into_future()
                .map(drop)
                .boxed_local(),
            _ => Group::new(lease)
                .leader(Leader::read_fixed(&src.0, u64::MAX))
                .member(Member::write_fixed(&o0.1, u64::MAX))
                .member(Member::write(&o1.1, u64::MAX))
                .linked()
                .into_future()
                .map(drop)
                .boxed_local(),
        }
    }

    /// Give the leader something to read.
    fn feed_leader(&self, byte: u8) {
        put(&self.src.1, &[byte; SIZE]);
        put(&self.unix.0, &[byte; SIZE]);
    }

    /// Give the striped-read members something to read.
    fn feed_members(&self, byte: u8) {
        for (_, w) in &self.stripes {
            put(w, &[byte; SIZE / 2]);
        }
    }

    /// Everything members wrote out this iteration, and discard leftovers in the inputs.
    fn drain(&self) -> Vec<u8> {
        take(&self.src.0);
        take(&self.unix.1);
        for (r, _) in &self.stripes {
            take(r);
        }
        let mut out = Vec::new();
        for (r, _) in &self.outs {
            out.extend(take(r));
        }
        out.extend(take(&self.peer));
        out
    }
}

#[test]
fn random_drops_never_corrupt_or_leak() {
    ringleader::block_on(async {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.connect(peer.local_addr().unwrap()).unwrap();
        peer.connect(udp.local_addr().unwrap()).unwrap();
        let rig = Rig {
            pool: FixedPool::new(SIZE, SLOTS).unwrap(),
            ring: BufRing::new_fixed(2, SIZE).unwrap(),
            src: pipe(),
            stripes: [pipe(), pipe()],
            outs: [pipe(), pipe()],
            udp: Rc::new(OwnedFd::from(udp)),
            peer,
            unix: UnixStream::pair().unwrap(),
        };
        let fds = fd_count();
        let base = ringleader::runtime::stats();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut stages = [0u64; 4]; // unsubmitted, leader pending, members running, completed
        let mut corruptions = 0u64;

        for i in 0..ITERATIONS {
            let data = (i % 128) as u8; // data bytes < 128, canary bytes >= 128
            let canary = 128 | data;
            let kind = rng.below(4);
            let mut lease = rig.pool.try_lease(SIZE).expect("every slot back by now");
            lease.extend_from_slice(&[data; SIZE]);
            let before = ringleader::runtime::stats();
            let mut completed = false;
            let polls = rng.below(6);
            {
                let mut group = rig.group(kind, &mut lease);
                for _ in 0..polls {
                    if poll!(group.as_mut()).is_ready() {
                        completed = true;
                        break;
                    }
                    match rng.below(4) {
                        0 => rig.feed_leader(data),
                        1 => rig.feed_members(data),
                        _ => {}
                    }
                    ticks(rng.below(3) as usize).await;
                }
                // Sometimes wake the ops right before the drop, so their completions race
                // the cancellation (the kernel then writes after the future is gone).
                match rng.below(3) {
                    0 => rig.feed_leader(data),
                    1 => rig.feed_members(data),
                    _ => {}
                }
                // The group future is dropped here.
            }
            let now = ringleader::runtime::stats();
            let stage = if polls == 0 {
                assert_eq!(
                    now.sqes_pushed, before.sqes_pushed,
                    "unpolled: nothing submitted"
                );
                0
            } else if completed {
                3
            } else if now.group_members_pushed == before.group_members_pushed {
                1
            } else {
                2
            };
            stages[stage] += 1;
            // Half the time the lease ends at once: its slot must still not be reused.
            let lease = (rng.below(2) == 0).then_some(lease);
            // Canaries on every slot free right now, then wake every op still alive.
            let mut canaries = Vec::new();
            while let Some(mut c) = rig.pool.try_lease(SIZE) {
                c.extend_from_slice(&[canary; SIZE]);
                canaries.push(c);
            }
            rig.feed_leader(data);
            rig.feed_members(data);
            until(
                || ringleader::runtime::stats().ops_in_flight == base.ops_in_flight,
                "every op of the dropped group reaped",
            )
            .await;
            for c in &canaries {
                if c.iter().any(|&b| b != canary) {
                    corruptions += 1;
                }
            }
            if rig.drain().iter().any(|&b| b != data) {
                corruptions += 1;
            }
            drop(canaries);
            drop(lease);
            assert_eq!(
                rig.pool.available(),
                SLOTS,
                "iteration {i}: a pool slot leaked"
            );
            assert_eq!(rig.ring.leased(), 0, "iteration {i}: a ring buffer leaked");
        }

        let end = ringleader::runtime::stats();
        println!(
            "{ITERATIONS} drops: unsubmitted {}, leader pending {}, members running {}, \
             completed {}; {corruptions} corruptions",
            stages[0], stages[1], stages[2], stages[3]
        );
        assert_eq!(corruptions, 0);
        assert!(
            stages.iter().all(|&n| n > ITERATIONS / 50),
            "every stage exercised: {stages:?}"
        );
        assert_eq!(
            end.slots_occupied, base.slots_occupied,
            "op slots back to baseline"
        );
        assert_eq!(end.ops_in_flight, base.ops_in_flight);
        assert_eq!(rig.pool.available(), SLOTS);
        assert_eq!(rig.ring.leased(), 0);
        assert_eq!(fd_count(), fds, "no fd leaked");
    });
    quarantine::check_all();
}
