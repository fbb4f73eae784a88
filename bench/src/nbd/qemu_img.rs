//! `qemu-img bench` as the client: a fixed count of requests at a fixed stride.
//!
//! Its measured window is its own timing of the I/O phase (`Run completed in S seconds`),
//! which ends when the last request completes, just before it disconnects and exits.

use std::net::SocketAddr;
use std::process::Command;

use super::Window;
use super::workload::Workload;

/// The `qemu-img bench` command for `count` requests of `w` against the server at `addr`.
pub fn command(w: &Workload, addr: SocketAddr, count: u64) -> Command {
    let mut cmd = Command::new("qemu-img");
    cmd.args(["bench", "-f", "raw", "-c", &count.to_string()])
        .args(["-d", &w.depth.to_string(), "-s", &w.size.to_string()])
        .args(["-S", &w.qemu_img_step().to_string()]);
    if w.write {
        cmd.arg("-w");
    }
    cmd.arg(format!("nbd://{addr}"));
    cmd
}

/// The measured window from qemu-img's stdout; it ends when qemu-img exits.
pub fn parse(stdout: &str, count: u64) -> Result<Window, String> {
    let secs = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Run completed in "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|&s| s > 0.0)
        .ok_or_else(|| format!("qemu-img bench said {stdout:?}"))?;
    Ok(Window {
        ios: count as f64,
        secs,
        end_ms: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_run_time() {
        let out = "Sending 1000 read requests, 4096 bytes each, 32 in parallel \
                   (starting at offset 0, step size 32436224)\nRun completed in 0.045 seconds.\n";
        let w = parse(out, 1000).unwrap();
        assert_eq!((w.ios, w.secs, w.end_ms), (1000.0, 0.045, None));
    }
}
