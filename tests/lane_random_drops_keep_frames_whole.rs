//! Lanes under random drops: sends and group members queued in one lane, dropped at random
//! points (queued, in flight, done). Whatever is dropped, the peer sees whole frames, each
//! once (a group member joins the lane when its leader completes, so frames need not follow
//! creation order) — with at most one cut frame at the end, and only if the lane failed —
//! and every op slot, pool slot and fd comes back.

mod common;
#[path = "support/quarantine.rs"]
mod quarantine;
#[global_allocator]
static ALLOC: quarantine::Quarantine = quarantine::Quarantine;

use std::future::Future;
use std::io::Read;
use std::os::unix::net::UnixStream as StdUnix;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use common::{Rng, fd_count};
use ringleader::buf::FixedPool;
use ringleader::group::{Group, Member};
use ringleader::net::{OwnedIo, UnixStream};
use ringleader::ops::Lane;

const ITERATIONS: u64 = 1500;

fn byte(id: u32, i: usize) -> u8 {
    (id as u8).wrapping_mul(7) ^ (i as u8) ^ ((i >> 9) as u8)
}

fn head(id: u32, len: usize) -> Vec<u8> {
    let mut h = id.to_le_bytes().to_vec();
    h.extend_from_slice(&(len as u32).to_le_bytes());
    h
}

/// Parse `stream` as frames: each id once, each body intact. Returns the number of whole
/// frames and whether a cut frame ends it.
fn check_frames(stream: &[u8], iteration: u64) -> (usize, bool) {
    let mut at = 0;
    let mut whole = 0;
    let mut seen = std::collections::HashSet::new();
    while at < stream.len() {
        if stream.len() - at < 8 {
            return (whole, true);
        }
        let id = u32::from_le_bytes(stream[at..at + 4].try_into().unwrap());
        let len = u32::from_le_bytes(stream[at + 4..at + 8].try_into().unwrap()) as usize;
        assert!(
            (1..=8).contains(&id) && seen.insert(id) && len <= 1 << 20,
            "iteration {iteration}: frame header {id}/{len} at byte {at}: frames interleaved"
        );
        let body = &stream[at + 8..stream.len().min(at + 8 + len)];
        for (i, &b) in body.iter().enumerate() {
            assert_eq!(b, byte(id, i), "iteration {iteration}: frame {id} byte {i}");
        }
        if body.len() < len {
            return (whole, true);
        }
        whole += 1;
        at += 8 + len;
    }
    (whole, false)
}

type Job = Pin<Box<dyn Future<Output = bool>>>;

#[test]
fn random_drops_in_a_lane_keep_frames_whole_and_leak_nothing() {
    let fds = fd_count();
    let mut rng = Rng::new(0x1a9e_5eed);
    let (mut failed_lanes, mut dropped, mut cut) = (0u64, 0u64, 0u64);
    ringleader::block_on(async {
        let pool = FixedPool::new(128 << 10, 8).unwrap();
        let slots = ringleader::runtime::stats().slots_occupied;
        for it in 0..ITERATIONS {
            let (a, b) = StdUnix::pair().unwrap();
            let reader = std::thread::spawn(move || {
                let mut b = b;
                let mut all = Vec::new();
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    match b.read(&mut buf) {
                        Ok(0) => return all,
                        Ok(n) => {
                            all.extend_from_slice(&buf[..n]);
                            if all.len() % 3 == 0 {
                                std::thread::sleep(Duration::from_micros(50));
                            }
                        }
                        Err(e) => panic!("read: {e}"),
                    }
                }
            });
            let sock = std::rc::Rc::new(UnixStream::from_std(a).unwrap());
            let lane = Lane::new();
            let n = 1 + rng.below(6) as usize;
            let mut jobs: Vec<Option<Job>> = Vec::new();
            for k in 0..n {
                let id = (k + 1) as u32;
                let max = if rng.below(2) == 0 { 2000 } else { 120_000 };
                let len = 1 + rng.below(max) as usize;
                let body: Vec<u8> = (0..len).map(|i| byte(id, i)).collect();
                let job: Job = if rng.below(2) == 0 {
                    let mut frame = head(id, len);
                    frame.extend_from_slice(&body);
                    let op = sock.send_in(&lane, frame);
                    Box::pin(async move { op.await.0.is_ok() })
                } else {
                    let (sock, lane, pool) = (sock.clone(), lane.clone(), pool.clone());
                    Box::pin(async move {
                        let mut lease = pool.lease(len).await.unwrap();
                        lease.extend_from_slice(&body);
                        let out = Group::new(&mut lease)
                            .member(Member::send_prefixed(&*sock, head(id, len)).in_lane(&lane))
                            .await;
                        !out.failed()
                    })
                };
                jobs.push(Some(job));
            }
            // Poll everything a few rounds, dropping jobs at random in between.
            let rounds = rng.below(4);
            for _ in 0..=rounds {
                for j in jobs.iter_mut() {
                    if let Some(f) = j {
                        let polled = std::future::poll_fn(|cx: &mut Context<'_>| {
                            Poll::Ready(f.as_mut().poll(cx))
                        })
                        .await;
                        if polled.is_ready() {
                            *j = None;
                        }
                    }
                    if j.is_some() && rng.below(5) == 0 {
                        *j = None;
                        dropped += 1;
                    }
                }
                match rng.below(3) {
                    0 => ringleader::yield_now().await,
                    1 => ringleader::time::sleep(Duration::from_micros(200)).await,
                    _ => {}
                }
            }
            // The rest run to completion.
            for f in jobs.into_iter().flatten() {
                f.await;
            }
            if lane.is_failed() {
                failed_lanes += 1;
            }
            let failed = lane.is_failed();
            drop(lane);
            drop(sock);
            // Dropped in-flight ops finish (cancelled) before their slots come back.
            common::until(
                || ringleader::runtime::stats().slots_occupied == slots && pool.available() == 8,
                "slots and leases back",
            )
            .await;
            let stream = reader.join().unwrap();
            let (_, was_cut) = check_frames(&stream, it);
            assert!(
                !was_cut || failed,
                "iteration {it}: a cut frame in a lane that did not fail"
            );
            cut += u64::from(was_cut);
        }
    });
    assert!(dropped > 1000, "drops exercised: {dropped}");
    assert!(
        failed_lanes > 0,
        "in-flight drops exercised: {failed_lanes}"
    );
    eprintln!(
        "{ITERATIONS} lanes: {dropped} ops dropped, {failed_lanes} lanes failed, {cut} frames cut"
    );
    assert_eq!(fd_count(), fds, "fds back");
    quarantine::check_all();
}
