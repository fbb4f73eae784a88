//! The example servers take `--flag=value` as well as `--flag value` (a new user's first try
//! was `--size=16M`).

#[path = "support/example_bin.rs"]
mod example_bin;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Start `name` with `args` and return its first stdout line; the server is then killed.
fn first_line(name: &str, args: &[&str]) -> String {
    let mut child = Command::new(example_bin::example_bin(name, &[]))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(
        !line.is_empty(),
        "{name} {args:?} printed nothing: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    line
}

#[test]
fn nbd_server_takes_size_and_listen_with_equals() {
    let line = first_line(
        "nbd_server",
        &["--listen=127.0.0.1:0", "--size=1M", "--cores=1"],
    );
    assert!(
        line.contains("listening on 127.0.0.1:") && line.contains("1048576 bytes"),
        "{line:?}"
    );
}

#[test]
fn echo_takes_listen_with_equals() {
    let line = first_line("echo", &["--listen=127.0.0.1:0", "--cores=1"]);
    assert!(line.contains("listening on 127.0.0.1:"), "{line:?}");
}
