//! Many requests in flight on one connection, and several connections at once: a raw client
//! pipelines hundreds of mixed requests without waiting, and every one is answered exactly
//! once with the right handle and data (replies may come in any order).

mod nbd_common;

use std::collections::HashMap;

use nbd_common::*;

const SIZE: u64 = 64 << 20;

#[test]
fn pipelined_mixed_requests_are_all_answered() {
    pipelined(&[]);
}

#[test]
fn pipelined_requests_with_ring_writes_are_all_answered() {
    pipelined(&["--ring-writes"]);
}

/// Every READ as a group whose reply (head + data in one SENDMSG) the ring sends in the
/// connection's lane, interleaved with the writer's batched write replies: frames stay whole.
#[test]
fn pipelined_requests_with_group_reads_are_all_answered() {
    pipelined(&["--read-path", "group"]);
}

/// Every READ spliced from the page cache, small ones too, between the writer's batches.
#[test]
fn pipelined_requests_with_spliced_reads_are_all_answered() {
    pipelined(&["--read-path", "splice"]);
}

fn pipelined(extra: &[&str]) {
    let image = sparse_file("pipeline", SIZE);
    let mut args = vec!["--image", image.path().to_str().unwrap()];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let addr = server.addr;
            std::thread::spawn(move || {
                let (mut c, _, _) = Raw::ready(addr, t % 2 == 1);
                let region = t * (16 << 20);
                // Phase 1: 300 writes of varying sizes, pipelined; then 300 reads.
                let mut expect = HashMap::new();
                let mut off = region;
                let mut sent = Vec::new();
                for h in 0..300u64 {
                    let len = 1 + (h * 4099) % 40_000;
                    let data = pseudo_random(len as usize, t * 1000 + h);
                    c.request(0, CMD_WRITE, h, off, len as u32);
                    c.send(&data);
                    sent.push((off, data));
                    expect.insert(h, None::<Vec<u8>>);
                    off += len;
                }
                for _ in 0..300 {
                    let (err, h) = c.simple();
                    assert_eq!(err, 0);
                    assert!(expect.remove(&h).is_some(), "handle {h} answered twice");
                }
                for (h, (off, data)) in sent.iter().enumerate() {
                    c.request(0, CMD_READ, 1000 + h as u64, *off, data.len() as u32);
                }
                let mut seen = 0;
                while seen < sent.len() {
                    let (h, bytes) = match c.reply() {
                        Reply::Simple { error, handle } => {
                            assert_eq!(error, 0);
                            let n = sent[(handle - 1000) as usize].1.len();
                            (handle, c.read_n(n))
                        }
                        Reply::Chunk {
                            flags,
                            kind,
                            handle,
                            payload,
                        } => {
                            assert_eq!((flags, kind), (1, 1));
                            (handle, payload[8..].to_vec())
                        }
                    };
                    assert_eq!(bytes, sent[(h - 1000) as usize].1, "handle {h}");
                    seen += 1;
                }
                c.request(CMD_FLAG_FUA, CMD_FLUSH, 5000, 0, 0);
                assert_eq!(c.simple(), (0, 5000));
                c.disconnect();
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
}
