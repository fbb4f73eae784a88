//! Locating an example binary from an integration test (included with `#[path]` by the
//! tests that run examples as child processes).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// `target/<profile>/examples/<name>`, built now with `features` (once per test process).
///
/// Always through `cargo build`, which does nothing when the binary is up to date: `cargo
/// test` compiles examples but does not refresh `target/<profile>/examples/<name>` itself
/// (only hashed copies beside it), so a test that only checked the file exists ran whatever
/// binary an earlier `cargo build` left there, stale after any change to the example.
pub fn example_bin(name: &str, features: &[&str]) -> PathBuf {
    static BUILT: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let bin = profile_dir.join("examples").join(name);
    let key = format!("{name} {features:?}");
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if built.get_or_insert_with(HashSet::new).insert(key) {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "--example", name]);
        cmd.arg("--manifest-path")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
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
