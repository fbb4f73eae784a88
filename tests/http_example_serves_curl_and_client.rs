//! Acceptance a of the hyper issue, through the real example binaries: `examples/http_server`
//! on 2 cores answers `curl` (the Debian package) and `examples/http_client` with the right
//! status and body, serves a 64 MiB download byte-exact to both, and handles 200 concurrent
//! connections.
//!
//! The examples are built by `cargo test --features hyper` (examples are built with the
//! tests); they sit in `target/<profile>/examples/`, next to this test's `deps/` directory.
//! Every child process is killed by its PID and reaped on drop, so a failing assertion
//! leaves no server behind.
#![cfg(feature = "hyper")]

#[path = "support/example_bin.rs"]
mod example_bin;

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::Barrier;
use std::time::Duration;

use common::Rng;

const IO_TIMEOUT: Duration = Duration::from_secs(60);
const BIG: usize = 64 * 1024 * 1024;

/// The example's binary (see `support/example_bin.rs`).
fn example_binary(name: &str) -> PathBuf {
    example_bin::example_bin(name, &["hyper"])
}

/// A scratch directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rl-http-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The server example as a child process; killed (by PID) and reaped on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    fn start(dir: &Path) -> Self {
        let mut child = Command::new(example_binary("http_server"))
            .args(["--listen", "127.0.0.1:0", "--cores", "2", "--dir"])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning the http_server example");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        // "http_server: listening on ADDR (N cores)"
        let addr = line
            .split_whitespace()
            .nth(3)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                let _ = child.wait();
                panic!("unexpected first line from http_server: {line:?}")
            });
        Server {
            child,
            addr,
            _stdout: stdout,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn assert_running(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the http_server example exited"
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // `Child::kill` sends SIGKILL to this child's PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| {
        panic!("running {cmd:?}: {e} (is curl installed? apt-get install curl)")
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `curl URL`: (status code, body).
fn curl(url: &str) -> (u16, Vec<u8>) {
    let out =
        run(Command::new("curl").args(["-sS", "--max-time", "60", "-w", "\n%{http_code}", url]));
    let mut body = out.stdout;
    let split = body.iter().rposition(|&b| b == b'\n').unwrap();
    let code = std::str::from_utf8(&body[split + 1..])
        .unwrap()
        .parse()
        .unwrap();
    body.truncate(split);
    (code, body)
}

/// `http_client URL [-o FILE]`: (status line, stdout).
fn client(url: &str, output: Option<&Path>) -> (String, Vec<u8>) {
    let mut cmd = Command::new(example_binary("http_client"));
    cmd.arg(url);
    if let Some(path) = output {
        cmd.arg("-o").arg(path);
    }
    let out = run(&mut cmd);
    let status = String::from_utf8(out.stderr).unwrap().trim().to_owned();
    (status, out.stdout)
}

/// FNV-1a, to name a mismatch in a message without dumping 64 MiB.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    assert!(
        got == want,
        "{what}: {} bytes, checksum {:#x}; expected {} bytes, checksum {:#x}",
        got.len(),
        checksum(got),
        want.len(),
        checksum(want)
    );
}

#[test]
fn hello_and_errors_through_curl_and_the_client_example() {
    let dir = TempDir::new("hello");
    let mut server = Server::start(&dir.0);

    assert_eq!(curl(&server.url("/")), (200, b"hello".to_vec()));
    assert_eq!(curl(&server.url("/nope")).0, 404);
    assert_eq!(curl(&server.url("/download/missing.bin")).0, 404);
    assert_eq!(curl(&server.url("/file?path=..%2Fescape")).0, 400);

    let (status, body) = client(&server.url("/"), None);
    assert_eq!(
        (status.as_str(), &body[..]),
        ("HTTP/1.1 200 OK", &b"hello"[..])
    );
    let (status, _) = client(&server.url("/file?path=missing.bin"), None);
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    server.assert_running();
}

#[test]
fn download_of_64_mib_is_byte_exact_through_curl_and_the_client_example() {
    let dir = TempDir::new("download");
    let mut rng = Rng::new(0x5eed_0064);
    let mut data = Vec::with_capacity(BIG);
    while data.len() < BIG {
        data.extend_from_slice(&rng.next().to_le_bytes());
    }
    std::fs::write(dir.0.join("big.bin"), &data).unwrap();
    let mut server = Server::start(&dir.0);

    let (code, body) = curl(&server.url("/download/big.bin"));
    assert_eq!(code, 200);
    assert_same("curl /download/big.bin", &body, &data);

    let out = dir.0.join("client.out");
    let (status, stdout) = client(&server.url("/file?path=big.bin"), Some(&out));
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(stdout.is_empty(), "with -o the body goes to the file only");
    assert_same("http_client -o", &std::fs::read(&out).unwrap(), &data);

    let (_, stdout) = client(&server.url("/download/big.bin"), None);
    assert_same("http_client to stdout", &stdout, &data);
    server.assert_running();
}

#[test]
fn two_hundred_concurrent_connections_each_get_hello() {
    const CONNS: usize = 200;
    let dir = TempDir::new("conns");
    let mut server = Server::start(&dir.0);
    let addr = server.addr;
    let all_connected = Barrier::new(CONNS);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..CONNS)
            .map(|i| {
                let all_connected = &all_connected;
                scope.spawn(move || {
                    let mut s = TcpStream::connect(addr).unwrap();
                    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
                    // Every connection is open before any request is sent.
                    all_connected.wait();
                    let req = format!("GET / HTTP/1.1\r\nHost: c{i}\r\nConnection: close\r\n\r\n");
                    s.write_all(req.as_bytes()).unwrap();
                    let mut res = Vec::new();
                    s.read_to_end(&mut res)
                        .unwrap_or_else(|e| panic!("connection {i}: {e}"));
                    let res = String::from_utf8(res).unwrap();
                    assert!(
                        res.starts_with("HTTP/1.1 200 OK\r\n"),
                        "connection {i}: {res:?}"
                    );
                    assert!(res.ends_with("\r\n\r\nhello"), "connection {i}: {res:?}");
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    });
    server.assert_running();
}
