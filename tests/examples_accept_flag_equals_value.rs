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

#[test]
fn chat_and_proxy_take_flags_with_equals() {
    let line = first_line("chat", &["--listen=127.0.0.1:0", "--max-line=100"]);
    assert!(line.contains("listening on 127.0.0.1:"), "{line:?}");
    let line = first_line(
        "proxy",
        &[
            "--listen=127.0.0.1:0",
            "--upstream=127.0.0.1:9",
            "--mode=copy",
        ],
    );
    assert!(line.contains("listening on 127.0.0.1:"), "{line:?}");
}

/// Run example `name` with `args` to its end; its stdout, or a panic with its stderr.
fn run_to_end(name: &str, args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(example_bin::example_bin(name, &[]))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {name}: {e}"));
    assert!(
        out.status.success(),
        "{name} {args:?}: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_non_server_examples_take_flags_with_equals() {
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    let out = run_to_end("tour", &[os("--cores=1"), os("--tasks=2"), os("--nops=10")]);
    assert!(out.contains("graceful shutdown of 1 cores"), "{out}");
    let out = run_to_end(
        "sync_pingpong",
        &[
            os("--rounds=10"),
            os("--cross-rounds=10"),
            os("--locks=10"),
            os("--repeat=1"),
        ],
    );
    assert!(out.contains("sync::Mutex"), "{out}");
    let out = run_to_end("accept_cancel_repro", &[os("--runs=1")]);
    assert!(out.contains("of 1 runs"), "{out}");

    let dir = std::env::temp_dir().join(format!("rl-fanout-eq-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (src, dst) = (dir.join("src"), dir.join("dst"));
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    run_to_end(
        "fanout",
        &[
            os("--block=64K"),
            os("--depth=2"),
            src.as_os_str(),
            dst.as_os_str(),
        ],
    );
    let copied = std::fs::read(&dst).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(copied == data, "fanout --block=64K copied the file wrong");
}
