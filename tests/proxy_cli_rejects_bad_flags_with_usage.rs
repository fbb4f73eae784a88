//! `examples/proxy`'s command line: `--help` prints the usage and exits 0; a bad or missing
//! flag prints what is wrong and the usage on stderr and exits with status 2, before
//! listening on anything.

mod proxy_common;

use std::process::Command;

use proxy_common::proxy_bin;

#[test]
fn help_prints_usage() {
    let out = Command::new(proxy_bin()).arg("--help").output().unwrap();
    assert!(out.status.success(), "--help exits 0");
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--upstream",
        "--mirror",
        "--mode",
        "--cores",
        "--max-buffered",
        "--buf-size",
        "--mirror-budget",
        "--mirror-timeout",
        "--ring-memory",
        "--zc",
        "--stats",
    ] {
        assert!(text.contains(flag), "the usage documents {flag}:\n{text}");
    }
}

#[test]
fn bad_flags_exit_2_with_the_reason_and_usage() {
    let cases: [(&[&str], &str); 12] = [
        (&[], "--upstream"),
        (&["--upstream"], "needs a value"),
        (
            &["--upstream", "127.0.0.1:1", "--mode", "teleport"],
            "--mode",
        ),
        (&["--upstream", "127.0.0.1:1", "--cores", "0"], "--cores"),
        (
            &["--upstream", "127.0.0.1:1", "--max-buffered", "4X"],
            "--max-buffered",
        ),
        (
            &["--upstream", "127.0.0.1:1", "--max-buffered", "4K"],
            "--buf-size",
        ),
        (
            &["--upstream", "127.0.0.1:1", "--mode", "copy", "--zc"],
            "--zc",
        ),
        (&["--upstream", "127.0.0.1:1", "--bogus"], "--bogus"),
        (
            &["--upstream", "127.0.0.1:1", "--mirror-timeout", "soon"],
            "--mirror-timeout",
        ),
        // A budget must leave the upstream room in the bound, or a slow mirror would stop
        // the client after all.
        (
            &[
                "--upstream",
                "127.0.0.1:1",
                "--mirror",
                "127.0.0.1:2",
                "--max-buffered",
                "1M",
                "--mirror-budget",
                "1M",
            ],
            "--mirror-budget",
        ),
        (
            &[
                "--upstream",
                "127.0.0.1:1",
                "--mirror",
                "127.0.0.1:2",
                "--mirror-budget",
                "1K",
            ],
            "--mirror-budget",
        ),
        (
            &[
                "--upstream",
                "127.0.0.1:1",
                "--mirror",
                "127.0.0.1:2",
                "--mode",
                "splice",
                "--max-buffered",
                "4K",
            ],
            "splice mode needs",
        ),
    ];
    for (args, reason) in cases {
        let out = Command::new(proxy_bin()).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} exits 2; stderr:\n{err}"
        );
        assert!(
            err.contains(reason),
            "{args:?}: stderr names {reason}:\n{err}"
        );
        assert!(
            err.contains("USAGE"),
            "{args:?}: stderr has the usage:\n{err}"
        );
        assert!(
            out.stdout.is_empty(),
            "{args:?}: nothing on stdout (never listened)"
        );
    }
}
