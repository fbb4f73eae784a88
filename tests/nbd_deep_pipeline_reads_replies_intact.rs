//! Deep pipelines of large requests on one connection: every reply arrives whole (its head
//! followed by exactly its own data), with the right handle, no error, and the bytes last
//! written.
//!
//! The server's registered pool has 16 slots of 1 MiB per core, so with 64 or 256 reads of
//! 256 KiB–1 MiB in flight most reads find no free slot and take the other reply path (the
//! connection's writer, head and data as separate sends), while the reads that got a slot
//! send their replies from the ring (a group member in the connection's send lane). Replies
//! of the two paths share the socket: a frame of one must never land inside a frame of the
//! other. A raw client keeps the pipeline full (refilling as replies arrive) with reads and
//! writes interleaved; `nbdcopy` does the same in both directions at its defaults and at
//! `-R 64 --request-size 1M`.

mod nbd_common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use nbd_common::*;

/// The unit of the client's model of the image: 256 KiB.
const UNIT: usize = 256 << 10;
/// 128 MiB: 512 units.
const UNITS: usize = 512;
/// A hung server fails the test instead of hanging it.
const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn raw_64_requests_of_256k_in_flight_replies_intact() {
    pipeline(&[], 64, &[UNIT as u32], false, 700);
}

#[test]
fn raw_64_requests_of_1m_in_flight_structured_replies_intact() {
    pipeline(&[], 64, &[1 << 20], true, 500);
}

#[test]
fn raw_256_requests_of_1m_in_flight_replies_intact() {
    pipeline(&["--cores", "1"], 256, &[1 << 20], false, 900);
}

/// Mixed sizes, and large writer replies from registered buffers by `SEND_ZC` (a group
/// member in the lane, behind the head the writer sent).
#[test]
fn raw_256_requests_of_256k_and_1m_in_flight_zero_copy_replies_intact() {
    pipeline(
        &["--read-path", "group", "--zc-threshold", "128K"],
        256,
        &[UNIT as u32, 1 << 20],
        true,
        1200,
    );
}

/// Every READ through the writer, from a registered buffer by `SEND_ZC` when one is free:
/// the head in the batch, the data by a group member in the same lane frame.
#[test]
fn raw_64_requests_of_1m_through_the_writer_zero_copy_replies_intact() {
    pipeline(
        &["--read-path", "batch", "--zc-threshold", "128K"],
        64,
        &[1 << 20],
        false,
        400,
    );
}

/// Every READ spliced (page-cache pages into a pipe, the pipe into the socket after the
/// head, in one lane frame) on one core, with structured replies: a short splice into a full
/// socket is finished in the frame, never overtaken by another reply.
#[test]
fn raw_256_requests_spliced_replies_intact() {
    pipeline(
        &["--read-path", "splice", "--cores", "1"],
        256,
        &[UNIT as u32, 1 << 20],
        true,
        1200,
    );
}

/// Reads as groups sent by the ring in the lane (the path `auto` takes where splicing is
/// not possible), against writer replies of the reads that found no registered buffer.
#[test]
fn raw_64_requests_of_256k_as_groups_replies_intact() {
    pipeline(&["--read-path", "group"], 64, &[UNIT as u32], false, 700);
}

#[test]
fn nbdcopy_both_directions_at_defaults_byte_exact() {
    nbdcopy_round_trip(&[]);
}

#[test]
fn nbdcopy_both_directions_64_requests_of_1m_byte_exact() {
    nbdcopy_round_trip(&["-R", "64", "--request-size", "1048576"]);
}

/// One image unit as the client last wrote it (`seed` 0: never written, zeroes).
#[derive(Clone, Copy, Default)]
struct Unit {
    seed: u64,
    readers: u32,
    writing: bool,
}

#[derive(Clone, Copy, Debug)]
struct Req {
    write: bool,
    first: usize,
    units: usize,
}

/// What the sender and the receiver share.
struct Model {
    units: Vec<Unit>,
    in_flight: HashMap<u64, Req>,
}

fn unit_bytes(seed: u64) -> Vec<u8> {
    if seed == 0 {
        vec![0; UNIT]
    } else {
        pseudo_random(UNIT, seed)
    }
}

/// Keep `depth` requests in flight on one connection until `total` have been answered:
/// reads and writes of `lens` interleaved, refilled as replies arrive, every reply checked.
fn pipeline(server_args: &[&str], depth: usize, lens: &[u32], structured: bool, total: u64) {
    let image = sparse_file("deep", (UNITS * UNIT) as u64);
    let mut args = vec!["--image", image.path().to_str().unwrap()];
    args.extend_from_slice(server_args);
    let mut server = Server::start(&args);
    let (raw, size, _) = Raw::ready(server.addr, structured);
    assert_eq!(size, (UNITS * UNIT) as u64);
    let sock = raw.s;
    sock.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    sock.set_write_timeout(Some(REPLY_TIMEOUT)).unwrap();

    let model = Arc::new(Mutex::new(Model {
        units: vec![Unit::default(); UNITS],
        in_flight: HashMap::new(),
    }));
    let (credit_tx, credit_rx) = mpsc::channel::<()>();
    for _ in 0..depth {
        credit_tx.send(()).unwrap();
    }

    let receiver = {
        let (sock, model) = (sock.try_clone().unwrap(), Arc::clone(&model));
        thread::spawn(move || {
            let _guard = ShutdownOnPanic(sock.try_clone().unwrap());
            receive(sock, &model, structured, total, credit_tx)
        })
    };
    let sender = {
        let (sock, model, lens) = (sock.try_clone().unwrap(), Arc::clone(&model), lens.to_vec());
        thread::spawn(move || {
            let _guard = ShutdownOnPanic(sock.try_clone().unwrap());
            send(sock, &model, &lens, total, credit_rx)
        })
    };
    let received = receiver.join();
    let sent = sender.join();
    let stats = match received {
        Ok(stats) => stats,
        Err(e) => std::panic::resume_unwind(e),
    };
    let writes = sent.expect("sender");
    assert_eq!(stats.replies, total);
    assert_eq!(stats.writes, writes);
    assert!(
        stats.reads > total / 2 && stats.writes > total / 8,
        "reads and writes both ran: {stats:?}"
    );
    eprintln!("depth {depth}, lengths {lens:?}: {stats:?}");

    let c = Raw { s: sock };
    c.disconnect();
    assert!(server.alive(), "the server survived the pipeline");
    server.stop();
}

/// The sender: one request per credit.
fn send(
    mut sock: TcpStream,
    model: &Mutex<Model>,
    lens: &[u32],
    total: u64,
    credits: mpsc::Receiver<()>,
) -> u64 {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut writes = 0;
    for handle in 0..total {
        if credits.recv().is_err() {
            return writes; // The receiver failed; its panic is the test's.
        }
        let len = lens[(next() % lens.len() as u64) as usize] as usize;
        let units = len / UNIT;
        let want_write = next() % 3 == 0;
        // Find a place: a write needs its units to itself, a read only no writer there.
        let (r, seeds) = {
            let mut m = model.lock().unwrap();
            let start = (next() as usize % (UNITS / units)) * units;
            let place = |write: bool| {
                (0..UNITS / units).find_map(|step| {
                    let first = (start + step * units) % UNITS;
                    let range = &m.units[first..first + units];
                    let free = if write {
                        range.iter().all(|u| u.readers == 0 && !u.writing)
                    } else {
                        range.iter().all(|u| !u.writing)
                    };
                    free.then_some(Req {
                        write,
                        first,
                        units,
                    })
                })
            };
            let r = want_write
                .then(|| place(true))
                .flatten()
                .or_else(|| place(false))
                .expect("free units: fewer requests in flight than units");
            let mut seeds = Vec::new();
            for (i, u) in m.units[r.first..r.first + units].iter_mut().enumerate() {
                if r.write {
                    u.writing = true;
                    u.seed = (handle << 8) | (i as u64 + 1);
                    seeds.push(u.seed);
                } else {
                    u.readers += 1;
                }
            }
            m.in_flight.insert(handle, r);
            (r, seeds)
        };
        let mut head = Vec::with_capacity(28);
        head.extend_from_slice(&REQUEST_MAGIC.to_be_bytes());
        head.extend_from_slice(&0u16.to_be_bytes());
        let kind = if r.write { CMD_WRITE } else { CMD_READ };
        head.extend_from_slice(&kind.to_be_bytes());
        head.extend_from_slice(&handle.to_be_bytes());
        head.extend_from_slice(&((r.first * UNIT) as u64).to_be_bytes());
        head.extend_from_slice(&(len as u32).to_be_bytes());
        if sock.write_all(&head).is_err() {
            return writes;
        }
        if r.write {
            writes += 1;
            for seed in seeds {
                if sock.write_all(&unit_bytes(seed)).is_err() {
                    return writes;
                }
            }
        }
    }
    writes
}

#[derive(Debug, Default)]
struct Stats {
    replies: u64,
    reads: u64,
    writes: u64,
    max_in_flight: usize,
}

/// The receiver: check every reply, free its units, hand back a credit.
fn receive(
    mut sock: TcpStream,
    model: &Mutex<Model>,
    structured: bool,
    total: u64,
    credits: mpsc::Sender<()>,
) -> Stats {
    let mut stats = Stats::default();
    let mut read_n = |n: usize, what: &str, stats: &Stats| -> Vec<u8> {
        let mut v = vec![0; n];
        sock.read_exact(&mut v).unwrap_or_else(|e| {
            panic!(
                "reply {}: receiving {what}: {e} (after {} whole replies)",
                stats.replies, stats.replies
            )
        });
        v
    };
    while stats.replies < total {
        let magic = be32(&read_n(4, "a reply magic", &stats));
        let (handle, error, data) = match magic {
            SIMPLE_REPLY_MAGIC => {
                let r = read_n(12, "a simple reply", &stats);
                (be64(&r[4..12]), be32(&r[0..4]), None)
            }
            STRUCTURED_REPLY_MAGIC if structured => {
                let r = read_n(16, "a chunk head", &stats);
                let (flags, kind, handle) = (be16(&r[0..2]), be16(&r[2..4]), be64(&r[4..12]));
                let len = be32(&r[12..16]) as usize;
                assert!(
                    len <= (1 << 20) + 8,
                    "reply {}: handle {handle}: chunk length {len}: not a chunk head",
                    stats.replies
                );
                let payload = read_n(len, "a chunk payload", &stats);
                assert_eq!(
                    (flags, kind),
                    (1, 1),
                    "reply {}: handle {handle}: one OFFSET_DATA chunk with DONE",
                    stats.replies
                );
                (handle, 0, Some(payload))
            }
            m => panic!(
                "reply {}: bad reply magic {m:#010x} after {} whole replies: a reply's bytes \
                 were cut by another's",
                stats.replies, stats.replies
            ),
        };
        let (req, in_flight) = {
            let mut m = model.lock().unwrap();
            let n = m.in_flight.len();
            let req = m.in_flight.remove(&handle).unwrap_or_else(|| {
                panic!(
                    "reply {}: handle {handle} is not in flight (answered twice, or a \
                     wrong handle)",
                    stats.replies
                )
            });
            (req, n)
        };
        stats.max_in_flight = stats.max_in_flight.max(in_flight);
        assert_eq!(error, 0, "reply {}: handle {handle} failed", stats.replies);
        if req.write {
            assert!(data.is_none(), "handle {handle}: a write's reply is simple");
            stats.writes += 1;
        } else {
            let bytes = match data {
                Some(payload) => {
                    assert_eq!(
                        be64(&payload[0..8]),
                        (req.first * UNIT) as u64,
                        "handle {handle}: chunk offset"
                    );
                    payload[8..].to_vec()
                }
                None => read_n(req.units * UNIT, "read data", &stats),
            };
            assert_eq!(
                bytes.len(),
                req.units * UNIT,
                "handle {handle}: data length"
            );
            let seeds: Vec<u64> = {
                let m = model.lock().unwrap();
                m.units[req.first..req.first + req.units]
                    .iter()
                    .map(|u| u.seed)
                    .collect()
            };
            for (i, seed) in seeds.into_iter().enumerate() {
                if bytes[i * UNIT..(i + 1) * UNIT] != unit_bytes(seed)[..] {
                    panic!(
                        "reply {}: handle {handle}: unit {} holds other bytes than last \
                         written{}",
                        stats.replies,
                        req.first + i,
                        foreign_head(&bytes)
                    );
                }
            }
            stats.reads += 1;
        }
        {
            let mut m = model.lock().unwrap();
            for u in &mut m.units[req.first..req.first + req.units] {
                if req.write {
                    u.writing = false;
                } else {
                    u.readers -= 1;
                }
            }
        }
        stats.replies += 1;
        let _ = credits.send(());
    }
    stats
}

/// Where `data` holds the head of another reply, if it does: a frame cut by another.
fn foreign_head(data: &[u8]) -> String {
    let found = data
        .windows(16)
        .enumerate()
        .find(|(_, w)| matches!(be32(w), SIMPLE_REPLY_MAGIC | STRUCTURED_REPLY_MAGIC));
    match found {
        Some((at, w)) if be32(w) == SIMPLE_REPLY_MAGIC => format!(
            "; at byte {at} of its data: the head of the reply to handle {}",
            be64(&w[8..16])
        ),
        Some((at, w)) => format!(
            "; at byte {at} of its data: a chunk head of handle {}",
            be64(&w[8..16])
        ),
        None => String::new(),
    }
}

/// Shuts the socket down if its thread panics, so the other thread stops too.
struct ShutdownOnPanic(TcpStream);

impl Drop for ShutdownOnPanic {
    fn drop(&mut self) {
        if thread::panicking() {
            let _ = self.0.shutdown(Shutdown::Both);
        }
    }
}

/// `nbdcopy` a random image out of the server, then another one into it, each compared
/// byte for byte.
fn nbdcopy_round_trip(opts: &[&str]) {
    if !have("nbdcopy") {
        return;
    }
    const SIZE: usize = 64 << 20;
    let image = TempPath::new("nbdcopy-image");
    let content = pseudo_random(SIZE, 0x5eed);
    std::fs::write(image.path(), &content).unwrap();
    let server = Server::start(&["--image", image.path().to_str().unwrap()]);

    // Server to file.
    let out = TempPath::new("nbdcopy-out");
    run_ok(
        Command::new("nbdcopy")
            .args(opts)
            .arg(server.uri())
            .arg(out.path()),
    );
    let copied = std::fs::read(out.path()).unwrap();
    assert_eq!(copied.len(), SIZE);
    assert!(
        copied == content,
        "nbdcopy {opts:?} out of the server: first difference at byte {:?}",
        copied.iter().zip(&content).position(|(a, b)| a != b)
    );

    // File to server, then read back through the server.
    let src = TempPath::new("nbdcopy-src");
    let fresh = pseudo_random(SIZE, 0xf00d);
    std::fs::write(src.path(), &fresh).unwrap();
    run_ok(
        Command::new("nbdcopy")
            .args(opts)
            .arg(src.path())
            .arg(server.uri()),
    );
    let back = TempPath::new("nbdcopy-back");
    run_ok(
        Command::new("nbdcopy")
            .args(opts)
            .arg(server.uri())
            .arg(back.path()),
    );
    let back = std::fs::read(back.path()).unwrap();
    assert!(
        back == fresh,
        "nbdcopy {opts:?} into the server and back: first difference at byte {:?}",
        back.iter().zip(&fresh).position(|(a, b)| a != b)
    );
    server.stop();
    let on_disk = std::fs::read(image.path()).unwrap();
    assert!(on_disk == fresh, "the image holds what nbdcopy wrote");
}
