//! iperf3, the workload: a server per run, one single-stream client, and its JSON report.
//!
//! The server (`iperf3 -s -B 127.0.0.1 -p PORT`) is started fresh for every run and killed
//! by PID afterwards; the client (`iperf3 -c 127.0.0.1 -p PORT -t S -J`) sends for `S`
//! seconds, client to server, one TCP stream (plus iperf3's control connection). Both are
//! pinned to the load CPU. The throughput the bench reports is the receiver's (what reached
//! the iperf3 server through the proxy); the byte count it divides CPU time by is the
//! receiver's byte count.

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::process::Proc;

/// An iperf3 server on `127.0.0.1:port`.
pub fn server(cpu: usize) -> Result<(Proc, SocketAddr), String> {
    let port = free_port()?;
    let mut cmd = Command::new("iperf3");
    cmd.args(["-s", "-B", "127.0.0.1", "-p", &port.to_string()]);
    let mut p = Proc::spawn(cmd, cpu, "iperf3 -s").map_err(|e| e.to_string())?;
    p.wait_listening(port, Duration::from_secs(5))?;
    Ok((p, SocketAddr::from(([127, 0, 0, 1], port))))
}

/// A port no one listens on right now (the kernel's pick for a socket bound and dropped).
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

/// What one client run reports.
#[derive(Clone, Copy, Debug)]
pub struct Report {
    /// Bytes that reached the server (receiver side).
    pub bytes: u64,
    /// The receiver's rate.
    pub bits_per_second: f64,
    /// CPU use of the iperf3 client, percent of one CPU over the test.
    pub client_cpu_percent: f64,
}

/// Run `iperf3 -c` against `target` for `secs` seconds, pinned to `cpu`.
pub fn client(target: SocketAddr, secs: u32, cpu: usize) -> Result<Report, String> {
    let mut cmd = Command::new("iperf3");
    cmd.args([
        "-c",
        &target.ip().to_string(),
        "-p",
        &target.port().to_string(),
    ])
    .args(["-t", &secs.to_string(), "-J"])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    ringleader_bench::pin::pin_child(&mut cmd, cpu)
        .map_err(|e| format!("pinning iperf3 -c: {e}"))?;
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("starting iperf3 -c: {e}"))?;
    let mut out = child.stdout.take().expect("stdout is piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(u64::from(secs) + 30);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("iperf3 -c did not finish in time".to_owned());
            }
            Err(e) => return Err(format!("waiting for iperf3 -c: {e}")),
        }
    };
    let json = reader.join().unwrap_or_default();
    if let Some(e) = string_field(&json, "\"error\"") {
        return Err(format!("iperf3 -c: {e}"));
    }
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        return Err(format!("iperf3 -c failed ({status}): {}", err.trim()));
    }
    parse(&json).ok_or_else(|| "iperf3 -c: no end.sum_received in its JSON".to_owned())
}

/// The receiver and sender sums of an `iperf3 -J` report.
fn parse(json: &str) -> Option<Report> {
    let end = &json[json.find("\"end\"")?..];
    let received = object(end, "\"sum_received\"")?;
    let cpu = object(end, "\"cpu_utilization_percent\"")?;
    Some(Report {
        bytes: number_field(received, "\"bytes\"")? as u64,
        bits_per_second: number_field(received, "\"bits_per_second\"")?,
        client_cpu_percent: number_field(cpu, "\"host_total\"")?,
    })
}

/// The text of the flat object that follows `key` (up to its first `}`).
fn object<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let rest = &json[json.find(key)? + key.len()..];
    let open = rest.find('{')?;
    let close = rest[open..].find('}')? + open;
    Some(&rest[open + 1..close])
}

/// The number after `key:` in `obj`.
fn number_field(obj: &str, key: &str) -> Option<f64> {
    let rest = obj[obj.find(key)? + key.len()..].trim_start();
    let rest = rest.strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The string after `key:` in `json`, if there is one.
fn string_field(json: &str, key: &str) -> Option<String> {
    let rest = json[json.find(key)? + key.len()..].trim_start();
    let rest = rest.strip_prefix(':')?.trim_start().strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
        "start": {"connected": [{"socket": 5}]},
        "intervals": [{"sum": {"bytes": 1, "bits_per_second": 2}}],
        "end": {
            "streams": [{"sender": {"bytes": 7, "bits_per_second": 8}}],
            "sum_sent": {"start": 0, "end": 5.0, "bytes": 6250000000, "bits_per_second": 1.0e10,
                         "retransmits": 0, "sender": true},
            "sum_received": {"start": 0, "end": 5.0004, "bytes": 6249000000,
                             "bits_per_second": 9998400127.98, "sender": true},
            "cpu_utilization_percent": {"host_total": 50.5, "host_user": 1.0,
                                        "remote_total": 40.25, "remote_user": 2.0}
        }
    }"#;

    #[test]
    fn reads_the_end_sums() {
        let r = parse(SAMPLE).unwrap();
        assert_eq!(r.bytes, 6_249_000_000);
        assert_eq!(r.bits_per_second, 9_998_400_127.98);
        assert_eq!(r.client_cpu_percent, 50.5);
    }

    #[test]
    fn reads_an_error() {
        let e = r#"{"start": {}, "intervals": [], "end": {}, "error": "unable to connect"}"#;
        assert_eq!(
            string_field(e, "\"error\"").as_deref(),
            Some("unable to connect")
        );
        assert!(parse(e).is_none());
    }
}
