//! Locating an example binary from an integration test (included with `#[path]` by the
//! tests that run examples as child processes).

use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/<profile>/examples/<name>`, built now (with `features`) if a filtered `cargo test`
/// skipped building examples.
pub fn example_bin(name: &str, features: &[&str]) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let bin = profile_dir.join("examples").join(name);
    if !bin.exists() {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--example", name]);
        for f in features {
            cmd.args(["--features", f]);
        }
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .unwrap_or_else(|e| panic!("running cargo to build the {name} example: {e}"));
        assert!(status.success(), "building the {name} example failed");
    }
    bin
}
