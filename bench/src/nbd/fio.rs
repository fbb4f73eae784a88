//! fio's nbd engine (libnbd) as the client: one job, one connection, time-based.
//!
//! fio connects, runs the workload for the ramp without counting it, then for the runtime,
//! and prints one JSON report. Its `total_ios` and `runtime` (ms) cover the runtime only;
//! `timestamp_ms` is when the report was made, right after the last I/O and the
//! disconnect, so the measured window is `[timestamp_ms - runtime, timestamp_ms]`. The job
//! runs as a thread (`--thread`) so that the fio process's CPU time is all of fio's.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::Window;
use super::workload::Workload;

/// How long fio runs.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Not measured: connections, queues and caches settle.
    pub ramp: Duration,
    /// Measured.
    pub runtime: Duration,
}

/// The `fio` command for `w` against the server at `addr`, reporting JSON on stdout.
pub fn command(w: &Workload, addr: SocketAddr, t: &Timing) -> Command {
    let rw = match (w.random, w.write) {
        (true, false) => "randread",
        (true, true) => "randwrite",
        (false, false) => "read",
        (false, true) => "write",
    };
    let mut cmd = Command::new("fio");
    cmd.args([
        "--name=nbd".to_owned(),
        "--ioengine=nbd".to_owned(),
        format!("--uri=nbd://{addr}"),
        format!("--rw={rw}"),
        format!("--bs={}", w.size),
        format!("--iodepth={}", w.depth),
        "--time_based".to_owned(),
        format!("--runtime={}ms", t.runtime.as_millis()),
        format!("--ramp_time={}ms", t.ramp.as_millis()),
        "--thread".to_owned(),
        "--output-format=json".to_owned(),
    ]);
    if w.random {
        // Plain uniform offsets: no map of visited blocks to keep, a new seed every run.
        cmd.args(["--norandommap", "--randrepeat=0"]);
    }
    cmd
}

/// The measured window from fio's stdout (the nbd engine prints a line before the JSON).
pub fn parse(stdout: &str, write: bool) -> Result<Window, String> {
    let start = if stdout.starts_with('{') {
        0
    } else {
        stdout.find("\n{").ok_or("no JSON report")? + 1
    };
    let v: Value =
        serde_json::from_str(&stdout[start..]).map_err(|e| format!("fio's JSON report: {e}"))?;
    let job = v
        .get("jobs")
        .and_then(|j| j.get(0))
        .ok_or("fio's report has no job")?;
    let error = job.get("error").and_then(Value::as_i64).unwrap_or(0);
    if error != 0 {
        return Err(format!("fio's job failed with errno {error}"));
    }
    let dir = job
        .get(if write { "write" } else { "read" })
        .ok_or("fio's report has no read/write section")?;
    let num = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("fio's report has no {key:?}"))
    };
    let ios = num(dir, "total_ios")?;
    let runtime_ms = num(dir, "runtime")?;
    if ios <= 0.0 || runtime_ms <= 0.0 {
        return Err(format!(
            "fio did no {} I/O in its window",
            if write { "write" } else { "read" }
        ));
    }
    Ok(Window {
        ios,
        secs: runtime_ms / 1e3,
        end_ms: Some(num(&v, "timestamp_ms")?),
    })
}

/// `fio-3.33`, or `None` if fio is not there.
pub fn version() -> Option<String> {
    let out = Command::new("fio").arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"fio: connected to NBD server
{
  "fio version" : "fio-3.33",
  "timestamp_ms" : 1796677247475,
  "jobs" : [
    {
      "jobname" : "nbd",
      "error" : 0,
      "read" : { "iops" : 85777.44511, "runtime" : 2004, "total_ios" : 171898 },
      "write" : { "iops" : 0.0, "runtime" : 0, "total_ios" : 0 }
    }
  ]
}
"#;

    #[test]
    fn reads_the_window_after_the_engine_banner() {
        let w = parse(REPORT, false).unwrap();
        assert_eq!(w.ios, 171898.0);
        assert_eq!(w.secs, 2.004);
        assert_eq!(w.end_ms, Some(1796677247475.0));
    }

    #[test]
    fn an_empty_direction_is_an_error() {
        assert!(parse(REPORT, true).is_err());
        assert!(parse("fio: connection refused\n", false).is_err());
    }
}
