//! Run one test of this binary in a child process, so that an abort, a crash or a panic in
//! it is observed as the child's failure instead of ending the whole test binary.
//!
//! The parent re-executes `current_exe()` with `--exact <test>` and [`CASE_VAR`] set; the
//! test, seeing the variable, runs its scenario instead of spawning.
#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};

/// Set in the child to the case it must run.
pub const CASE_VAR: &str = "RINGLEADER_REEXEC_CASE";

/// The case this process must run, if it is a child.
pub fn case() -> Option<String> {
    std::env::var(CASE_VAR).ok()
}

/// Run test `test` of this binary in a child with [`CASE_VAR`]` = case` and `envs`.
pub fn run(test: &str, case: &str, envs: &[(&str, &str)]) -> Child {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CASE_VAR, case)
        .env("RUST_BACKTRACE", "0");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("spawn the test binary as a child");
    Child {
        case: case.to_owned(),
        out,
    }
}

/// A finished child.
pub struct Child {
    pub case: String,
    pub out: Output,
}

impl Child {
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    /// The child's stderr, with the function names of a quarantine report's frames of this
    /// binary (`binary(+0x...)` lines) appended, when `addr2line` is installed.
    pub fn stderr_symbolized(&self) -> String {
        let err = self.stderr();
        let exe = std::env::current_exe().expect("current_exe");
        let exe = exe.to_string_lossy().into_owned();
        // A frame is a return address, just past its call: look up the byte before it.
        let offset = |line: &str| -> Option<String> {
            let rest = line.strip_prefix(exe.as_str())?.strip_prefix("(+0x")?;
            let ret = u64::from_str_radix(&rest[..rest.find(')')?], 16).ok()?;
            Some(format!("{:#x}", ret.checked_sub(1)?))
        };
        let offsets: Vec<String> = err.lines().filter_map(offset).collect();
        if offsets.is_empty() {
            return err;
        }
        let Ok(out) = Command::new("addr2line")
            .args(["-f", "-C", "-i", "-a", "-e", &exe])
            .args(&offsets)
            .output()
        else {
            return err;
        };
        // `-a` starts each address's group with the address; then (function, file:line)
        // pairs, innermost inlined function first.
        let mut names: Vec<Vec<String>> = Vec::new();
        let mut in_group = 0;
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            if l.starts_with("0x") {
                names.push(Vec::new());
                in_group = 0;
            } else if let Some(group) = names.last_mut() {
                if in_group % 2 == 0 {
                    group.push(l.to_owned());
                }
                in_group += 1;
            }
        }
        let mut next = names.into_iter();
        err.lines()
            .map(|l| match offset(l) {
                Some(_) => match next.next() {
                    Some(n) => format!("{l}\n        in {}", n.join(" <- ")),
                    None => l.to_owned(),
                },
                None => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    /// The child's exit code, or the signal that killed it.
    pub fn describe(&self) -> String {
        match (self.out.status.code(), self.out.status.signal()) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            _ => "unknown status".to_owned(),
        }
    }

    /// Panic with the child's output unless it ran its one test and passed.
    pub fn assert_passed(&self) {
        let (stdout, stderr) = (self.stdout(), self.stderr());
        assert!(
            self.out.status.success()
                && stdout.contains("1 passed")
                && !stderr.contains("==quarantine=="),
            "child case {:?} failed ({}):\n--- child stderr ---\n{}\n--- child stdout ---\n{stdout}",
            self.case,
            self.describe(),
            self.stderr_symbolized(),
        );
    }

    /// Panic unless the child was killed by `SIGABRT`.
    pub fn assert_aborted(&self) {
        assert_eq!(
            self.out.status.signal(),
            Some(libc::SIGABRT),
            "child case {:?} should abort, but: {}\n--- child stderr ---\n{}",
            self.case,
            self.describe(),
            self.stderr(),
        );
    }
}
