//! Issue 14 defect 7: http_server serves only what lies beneath `--dir`. Files, files in
//! subdirectories and symlinks that stay inside are served; a symlink to a directory
//! outside (`etcdir -> /etc`, the reported `download/etcdir/passwd`), to a file outside (by
//! relative and absolute target), `..`, absolute paths and their percent-encoded forms
//! (`%2e%2e`, `%2f`), through both routes, are refused with a 4xx and never return the
//! outside file's bytes. Requests go over raw TCP, so no client normalises the path.
#![cfg(feature = "hyper")]

#[path = "support/example_bin.rs"]
mod example_bin;
#[path = "support/example_server.rs"]
mod example_server;

use std::io::{Read, Write};
use std::path::PathBuf;

use example_server::Server;

const SECRET: &str = "outside-secret-7f3a";

/// `base/served` (the `--dir`) and `base/outside`.
struct Tree(PathBuf);

impl Tree {
    fn new() -> Tree {
        let base = std::env::temp_dir().join(format!("rl-http-beneath-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let served = base.join("served");
        std::fs::create_dir_all(served.join("sub")).unwrap();
        std::fs::create_dir_all(base.join("outside")).unwrap();
        std::fs::write(served.join("top.txt"), "top-file").unwrap();
        std::fs::write(served.join("sub/nested.txt"), "nested-file").unwrap();
        std::fs::write(base.join("outside/secret.txt"), SECRET).unwrap();
        let link = |target: &str, name: &str| {
            std::os::unix::fs::symlink(target, served.join(name)).unwrap();
        };
        link("/etc", "etcdir");
        link("../outside", "outdir");
        link("../outside/secret.txt", "secret_link");
        link(
            base.join("outside/secret.txt").to_str().unwrap(),
            "abs_link",
        );
        link("sub/nested.txt", "inner_link");
        Tree(base)
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `GET target` on a fresh connection: the status code and the body.
fn get(server: &Server, target: &str) -> (u16, String) {
    let mut s = server.connect();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{target}: no status line in {reply:?}"));
    let body = reply
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

#[test]
fn only_paths_beneath_the_directory_are_served() {
    let tree = Tree::new();
    let dir = tree.0.join("served");
    let server = Server::start(
        "http_server",
        &["hyper"],
        &[
            "--listen",
            "127.0.0.1:0",
            "--cores",
            "2",
            "--dir",
            dir.to_str().unwrap(),
        ],
        None,
    );
    for (target, want) in [
        ("/download/top.txt", "top-file"),
        ("/download/sub/nested.txt", "nested-file"),
        ("/download/sub%2fnested.txt", "nested-file"),
        ("/download/inner_link", "nested-file"),
        ("/file?path=sub%2Fnested.txt", "nested-file"),
        ("/file?path=top.txt", "top-file"),
    ] {
        assert_eq!(get(&server, target), (200, want.to_owned()), "{target}");
    }
    let mut refused = Vec::new();
    for target in [
        "/download/etcdir/passwd",
        "/download/etcdir/hostname",
        "/download/outdir/secret.txt",
        "/download/secret_link",
        "/download/abs_link",
        "/download/../outside/secret.txt",
        "/download/sub/../../outside/secret.txt",
        "/download/%2e%2e/outside/secret.txt",
        "/download/%2E%2E%2Foutside%2Fsecret.txt",
        "/download/sub%2f..%2f..%2foutside%2fsecret.txt",
        "/download//etc/passwd",
        "/download/%2fetc%2fpasswd",
        "/file?path=/etc/passwd",
        "/file?path=%2Fetc%2Fpasswd",
        "/file?path=../outside/secret.txt",
        "/file?path=..%2Foutside%2Fsecret.txt",
        "/file?path=etcdir%2Fpasswd",
        "/file?path=secret_link",
    ] {
        let (status, body) = get(&server, target);
        assert!(
            (400..500).contains(&status),
            "{target}: status {status}, body {body:?}: a way out of --dir was not refused"
        );
        assert!(
            !body.contains(SECRET) && !body.contains("root:"),
            "{target}: the body leaks a file outside --dir: {body:?}"
        );
        refused.push(format!("{status} {target}"));
    }
    eprintln!("refused:\n{}", refused.join("\n"));
    // The symlink escapes the report named are refused as such (403), not as bad names.
    assert_eq!(get(&server, "/download/etcdir/passwd").0, 403);
    assert_eq!(get(&server, "/download/secret_link").0, 403);
}
