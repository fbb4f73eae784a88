//! On a ring of 128-byte SQEs (`Builder::sqe128`) every push path widens the 64-byte ops
//! correctly: a group's members pushed by the driver in one batch (all-or-nothing), a
//! kernel-linked chain (`push_all`) finished by the runtime after a short read (G10), and
//! a lane's linked sends, each with an SQ of 4 entries so that the SQ-full paths run too.
//! The bytes that land are checked.

use std::io::Read;

use ringleader::Builder;
use ringleader::buf::FixedPool;
use ringleader::group::{Group, Leader, Member};
use ringleader::net::OwnedIo;

fn temp(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("rl-sqe128-{tag}-{}", std::process::id()))
}

#[test]
fn groups_linked_chains_and_lanes_on_128_byte_sqes() {
    let rt = Builder::new()
        .sqe128(true)
        .entries(4)
        .build_local()
        .expect("ring");
    assert!(rt.setup_info().sqe128);
    rt.block_on(async {
        let data: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
        let src_path = temp("src");
        std::fs::write(&src_path, &data).unwrap();
        let src = ringleader::fs::File::open(&src_path).await.unwrap();
        let outs: Vec<_> = (0..6).map(|i| temp(&format!("out{i}"))).collect();
        let mut files = Vec::new();
        for p in &outs {
            files.push(ringleader::fs::File::create(p).await.unwrap());
        }
        let pool = FixedPool::new(4096, 1).unwrap();
        let mut lease = pool.lease(4096).await.unwrap();

        // Six members released together by the leader's CQE: more than the SQ holds.
        let out = Group::new(&mut lease)
            .leader(Leader::read_fixed(&src, 0))
            .members(files.iter().map(|f| Member::write_fixed(f, 0)))
            .await;
        assert!(!out.failed(), "{out:?}");
        assert_eq!(
            *out.leader.as_ref().unwrap(),
            3000,
            "short read: the file's 3000 bytes"
        );
        for p in &outs {
            assert_eq!(std::fs::read(p).unwrap(), data);
        }

        // A linked chain broken by the short read, finished by the runtime.
        let out = Group::new(&mut lease)
            .leader(Leader::read_fixed(&src, 0))
            .member(Member::write_fixed(&files[0], 3000))
            .member(Member::write_fixed(&files[1], 3000))
            .linked()
            .await;
        assert!(!out.failed(), "{out:?}");
        for p in &outs[..2] {
            let mut twice = data.clone();
            twice.extend_from_slice(&data);
            assert_eq!(std::fs::read(p).unwrap(), twice);
        }

        // A lane: sends linked in order on one socket.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let b = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let a = ringleader::net::TcpStream::from_std(l.accept().unwrap().0).unwrap();
        let lane = ringleader::ops::Lane::new();
        let mut sends = Vec::new();
        for i in 0..10u8 {
            sends.push(a.send_in(&lane, vec![i; 100]));
        }
        for s in sends {
            let (res, _) = s.await;
            assert_eq!(res.unwrap(), 100);
        }
        drop(a);
        let mut got = Vec::new();
        let mut b = b;
        b.read_to_end(&mut got).unwrap();
        let want: Vec<u8> = (0..10u8).flat_map(|i| [i; 100]).collect();
        assert_eq!(got, want, "lane sends arrive whole and in order");

        for p in outs.iter().chain([&src_path]) {
            let _ = std::fs::remove_file(p);
        }
    });
}
