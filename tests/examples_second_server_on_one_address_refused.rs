//! A server owns its address: a second instance of any example server on the address the
//! first listens on fails with "address in use" and a non-zero exit, instead of joining the
//! first one's `SO_REUSEPORT` group and taking half of its clients.

#[path = "support/example_bin.rs"]
mod example_bin;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server child; killed and reaped on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `name` with `args` plus `--listen 127.0.0.1:0 --cores 2`; its address from the
/// first stdout line (".. listening on ADDR ..").
fn start(name: &str, features: &[&str], args: &[&str]) -> (Server, SocketAddr) {
    let mut child = Command::new(example_bin::example_bin(name, features))
        .args(args)
        .args(["--listen", "127.0.0.1:0", "--cores", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let server = Server(child);
    let addr = line
        .split_whitespace()
        .skip_while(|w| *w != "on")
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line from {name}: {line:?}"));
    (server, addr)
}

/// Run `name` on `addr` and expect it to exit non-zero within 30 s saying the address is
/// in use.
fn second_is_refused(name: &str, features: &[&str], args: &[&str], addr: SocketAddr) {
    let mut child = Command::new(example_bin::example_bin(name, features))
        .args(args)
        .args(["--listen", &addr.to_string(), "--cores", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a second {name} on {addr} kept running (it joined the first one's address)");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success(), "{name}: exit status {status}");
    assert!(
        stderr.to_lowercase().contains("address in use")
            || stderr.to_lowercase().contains("address already in use"),
        "{name}: stderr says why: {stderr:?}"
    );
}

fn check(name: &str, features: &[&str], args: &[&str]) {
    let (_first, addr) = start(name, features, args);
    second_is_refused(name, features, args, addr);
}

#[test]
fn nbd_server() {
    check("nbd_server", &[], &["--size", "1M"]);
}

#[test]
fn echo() {
    check("echo", &[], &[]);
}

#[test]
fn proxy() {
    // The upstream is never dialled: nobody connects to the proxy.
    check("proxy", &[], &["--upstream", "127.0.0.1:9"]);
}

#[test]
fn http_server() {
    check("http_server", &["hyper"], &["--dir", "."]);
}
