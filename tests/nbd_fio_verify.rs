//! fio's `nbd` engine (libnbd) against the server, with `--verify=crc32c`: every block fio
//! writes is read back and checked, at queue depths 1, 32 and 128, block sizes 4 KiB to
//! 4 MiB, reads and writes mixed, one and two connections, one and two cores.
//!
//! Each case runs two fio passes on a fresh (all-zero) image:
//!
//! 1. the workload through the server: writes (or random reads and writes mixed) that fio
//!    logs, then fio's verify phase, which reads back every logged block through the same
//!    connection and checks its header (offset, length, seed) and its CRC;
//! 2. after a restart of the server, the same job with `--verify_only`: fio replays the
//!    workload without writing and verifies every block again — the data is in the image
//!    file, at the right place, not just in a server's memory.
//!
//! A block the server lost (zeroes: bad magic), put at the wrong place (bad offset in the
//! header) or changed (bad CRC) makes fio exit non-zero with error 84 (`EILSEQ`) in its
//! JSON; the test checks both, and that the passes moved the bytes they should.
//!
//! Two traps of fio 3.33 shape the recipe (both seen by hand with a corrupted image):
//! - without `--verify_fatal=1`, a bad CRC in any 4 KiB piece of a block but the last is
//!   printed and then forgotten (exit 0, error 0): the next piece's result overwrites it;
//! - the backlog's verify reads count in how a mixed (`randrw`) job picks reads or writes,
//!   so a `--verify_only` replay (without the backlog) of a `randrw` job run with
//!   `--verify_backlog` expects other data than was written (bad header seed), and a replay
//!   given the backlog too did not notice a flipped byte. The backlog is used with
//!   `randwrite` only, whose replay without it checks every block.
//!
//! `a_corrupted_image_fails_the_replay` proves that the check can fail: it flips one byte of
//! a block fio wrote in the image file and expects the replay to fail. By hand, the replay
//! of a job against a fresh all-zero image through the server (a server that dropped every
//! write) fails with `bad magic header 0`, and a byte flipped between the two passes of
//! [`check`] fails it with `crc32c: verify failed`.
//!
//! Without fio the tests print why and pass, except under CI (`CI` set), where `.ci/run`
//! installs fio and a missing one fails them.

mod nbd_common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nbd_common::*;

/// Every case's image: 256 MiB.
const IMAGE: u64 = 256 << 20;
/// A hung server fails the test instead of hanging it (not a timing assertion: a pass takes
/// about a second).
const FIO_DEADLINE: Duration = Duration::from_secs(300);
/// `EILSEQ`: what fio reports for a block that fails verification.
const EILSEQ: u64 = 84;

/// One fio job, as command-line options.
struct Job {
    /// `randrw` or `randwrite`.
    rw: &'static str,
    /// `--bsrange=...` or `--bssplit=...`.
    bs: &'static str,
    depth: u32,
    /// Connections (fio jobs), each on its own `region` of the image.
    jobs: u32,
    region: u64,
    /// Extra options (e.g. `--verify_backlog`).
    extra: &'static [&'static str],
}

#[test]
fn qd1_randrw_4k_to_4m_verified() {
    check(
        &[],
        &Job {
            rw: "randrw",
            bs: "--bssplit=4k/40:12k/10:64k/20:1m/15:1028k/5:4m/10",
            depth: 1,
            jobs: 1,
            region: IMAGE,
            extra: &[],
        },
    );
}

/// Two connections, each on its own half of the image.
#[test]
fn qd32_randrw_4k_to_4m_two_connections_verified() {
    check(
        &[],
        &Job {
            rw: "randrw",
            bs: "--bsrange=4k-4m",
            depth: 32,
            jobs: 2,
            region: IMAGE / 2,
            extra: &[],
        },
    );
}

/// Many small requests: the inline write path (up to 64 KiB) and batched read replies.
#[test]
fn qd32_randrw_4k_to_64k_verified() {
    check(
        &[],
        &Job {
            rw: "randrw",
            bs: "--bsrange=4k-64k",
            depth: 32,
            jobs: 1,
            region: 64 << 20,
            extra: &[],
        },
    );
}

/// One core, 128 requests of 256 KiB–1 MiB in flight: the core's 16 registered 1 MiB
/// buffers run out, so most requests take heap buffers alongside the pooled ones.
#[test]
fn qd128_randrw_256k_to_1m_one_core_verified() {
    check(
        &["--cores", "1"],
        &Job {
            rw: "randrw",
            bs: "--bsrange=256k-1m",
            depth: 128,
            jobs: 1,
            region: IMAGE,
            extra: &[],
        },
    );
}

/// Reads right behind writes: after every 32 writes fio reads back and checks those 32
/// while the next writes are in flight (128 requests of up to 4 MiB deep).
#[test]
fn qd128_randwrite_4k_to_4m_verify_backlog_verified() {
    check(
        &[],
        &Job {
            rw: "randwrite",
            bs: "--bsrange=4k-4m",
            depth: 128,
            jobs: 1,
            region: IMAGE,
            extra: &["--verify_backlog=32"],
        },
    );
}

/// The check can fail: one byte flipped in a block fio wrote makes the replay fail with a
/// CRC error.
#[test]
fn a_corrupted_image_fails_the_replay() {
    if !need("fio") {
        return;
    }
    let job = Job {
        rw: "randrw",
        bs: "--bsrange=4k-4m",
        depth: 32,
        jobs: 1,
        region: IMAGE,
        extra: &[],
    };
    let image = sparse_file("fio-corrupt", IMAGE);
    let args = ["--image", image.path().to_str().unwrap()];
    let server = Server::start(&args);
    fio(&server.uri(), &job, false).assert_verified("workload and verify");
    server.stop();

    // A written block: fio's data is never all zeroes, the rest of a fresh image is. Flip a
    // byte in the middle of the 4 KiB piece (after its verify header).
    let mut bytes = std::fs::read(image.path()).unwrap();
    let piece = (bytes.len() / 2 / 4096..bytes.len() / 4096)
        .find(|&p| bytes[p * 4096..(p + 1) * 4096].iter().any(|&b| b != 0))
        .expect("fio wrote in the image's second half");
    let at = piece * 4096 + 2000;
    bytes[at] ^= 0xff;
    std::fs::write(image.path(), &bytes).unwrap();

    let server = Server::start(&args);
    let run = fio(&server.uri(), &job, true);
    server.stop();
    assert!(
        !run.success && run.error == EILSEQ && run.stderr.contains("verify failed"),
        "the replay over an image with byte {at} flipped must fail verification, got exit \
         success {}, error {}\nstderr: {}",
        run.success,
        run.error,
        run.stderr
    );
}

/// Run `job` through a server started with `server_args`, then replay it with
/// `--verify_only` through a restarted server.
fn check(server_args: &[&str], job: &Job) {
    if !need("fio") {
        return;
    }
    let image = sparse_file("fio", IMAGE);
    let mut args = vec!["--image", image.path().to_str().unwrap()];
    args.extend_from_slice(server_args);

    let mut server = Server::start(&args);
    let run = fio(&server.uri(), job, false);
    run.assert_verified("workload and verify");
    assert!(server.alive(), "the server survived the workload");
    server.stop();
    // The workload touches every block of its regions once (fio's random map), reading or
    // writing it; the verify phase then reads every written block again. So the reads are
    // the regions' size exactly when every written byte was read back.
    let total = job.region * u64::from(job.jobs);
    let written = run.write_bytes;
    assert!(
        written >= total / 4 && run.read_bytes == total,
        "fio wrote {written} bytes and read {} of a {total}-byte job: not every written \
         block was read back",
        run.read_bytes
    );

    let server = Server::start(&args);
    let replay = fio(&server.uri(), job, true);
    replay.assert_verified("verify-only replay");
    server.stop();
    assert_eq!(
        replay.write_bytes, written,
        "the replay logged the same writes"
    );
    assert_eq!(replay.read_bytes, total, "the replay read back every write");
    eprintln!(
        "{} {} depth {} x{}: wrote {written}, read {} (+ {} in the replay)",
        job.rw, job.bs, job.depth, job.jobs, run.read_bytes, replay.read_bytes
    );
}

/// What one fio run reported.
struct Run {
    success: bool,
    error: u64,
    read_bytes: u64,
    write_bytes: u64,
    stdout: String,
    stderr: String,
}

impl Run {
    fn assert_verified(&self, what: &str) {
        assert!(
            self.success && self.error == 0,
            "fio {what}: exit success {}, error {} (84: a block failed verification)\n\
             stderr: {}\nfio's messages: {}",
            self.success,
            self.error,
            self.stderr,
            self.stdout.split('{').next().unwrap_or_default()
        );
        assert!(
            !self.stderr.contains("verify"),
            "fio {what} printed a verify complaint:\n{}",
            self.stderr
        );
    }
}

/// Run fio's nbd engine on `uri` with `job`; `verify_only` replays it without writing.
fn fio(uri: &str, job: &Job, verify_only: bool) -> Run {
    let mut cmd = Command::new("fio");
    cmd.current_dir(std::env::temp_dir());
    cmd.args([
        "--name=verify",
        "--ioengine=nbd",
        &format!("--uri={uri}"),
        &format!("--rw={}", job.rw),
        job.bs,
        &format!("--iodepth={}", job.depth),
        &format!("--numjobs={}", job.jobs),
        &format!("--size={}", job.region),
        &format!("--offset_increment={}", job.region),
        "--randseed=4242",
        "--verify=crc32c",
        "--verify_fatal=1",
        "--do_verify=1",
        // No `local-*-verify.state` dump on a failure (fio writes it to its cwd).
        "--verify_state_save=0",
        "--group_reporting",
        "--output-format=json",
    ]);
    cmd.args(job.extra);
    if verify_only {
        cmd.arg("--verify_only");
    }
    let (success, stdout, stderr) = run_with_deadline(&mut cmd);
    let stats = |key: &str| -> u64 {
        json_number(&stdout, key).unwrap_or_else(|| {
            panic!("no {key} in fio's JSON ({cmd:?}):\nstdout: {stdout}\nstderr: {stderr}")
        })
    };
    Run {
        success,
        error: stats("\"error\""),
        read_bytes: stats("\"read\""),
        write_bytes: stats("\"write\""),
        stdout: stdout.clone(),
        stderr: stderr.clone(),
    }
}

/// With `--group_reporting` fio's JSON has one job: `"error" : N` is its error, and the
/// first `"io_bytes" : N` after `"read" :` or `"write" :` its bytes in that direction.
fn json_number(json: &str, key: &str) -> Option<u64> {
    let job = &json[json.find("\"jobs\"")?..];
    let rest = &job[job.find(&format!("{key} :"))?..];
    let rest = if key == "\"error\"" {
        rest
    } else {
        &rest[rest.find("\"io_bytes\" :")?..]
    };
    let digits = rest[rest.find(':')? + 1..].trim_start();
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// Run `cmd` to completion (killed if it outlives [`FIO_DEADLINE`]): (success, stdout,
/// stderr).
fn run_with_deadline(cmd: &mut Command) -> (bool, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for fio") {
            break status;
        }
        if start.elapsed() > FIO_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} still running after {FIO_DEADLINE:?}: the server stopped answering\n\
                 stderr: {}",
                err.join().unwrap()
            );
        }
        thread::sleep(Duration::from_millis(50));
    };
    (status.success(), out.join().unwrap(), err.join().unwrap())
}
