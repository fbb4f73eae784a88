//! One run: a fresh server, the client against it, the server's CPU time over the client's
//! measured window; and the same on quiet CPUs, redone when other work disturbed it.

use std::process::Stdio;
use std::time::Duration;

use ringleader_bench::procfs;

use super::sampler::{Sampler, now_ms};
use super::server::{self, Launch, Server};
use super::workload::{Client, Workload};
use super::{Run, Window, fio, qemu_img};

/// Runs during which other processes took more than this share of the CPUs are redone.
pub const MAX_OTHERS: f64 = 10.0;
/// How many times a disturbed run is redone before it is kept as it is.
pub const RETRIES: usize = 3;

/// How every run of a bench is driven.
#[derive(Clone, Debug)]
pub struct Plan<'a> {
    pub client: Client,
    /// fio's ramp and runtime.
    pub timing: fio::Timing,
    /// qemu-img's request counts are divided by this (`--quick`).
    pub count_div: u64,
    /// The CPU the client is confined to, if pinned.
    pub client_cpu: Option<usize>,
    /// The CPUs watched for other processes' work (both, when pinned: all otherwise).
    pub cpus: &'a [usize],
    /// Wait up to this long for quiet CPUs before a run; zero: neither wait nor redo.
    pub quiet_wait: Duration,
}

/// Start `server`, run the client against it, stop the server.
pub fn once(
    server: Server,
    w: &Workload,
    launch: &Launch<'_>,
    plan: &Plan<'_>,
) -> Result<Run, String> {
    let mut running = server::start(server, launch)?;
    let count = (w.qemu_img_count / plan.count_div).max(1000);
    let mut cmd = match plan.client {
        Client::Fio => fio::command(w, running.addr(), &plan.timing),
        Client::QemuImg => qemu_img::command(w, running.addr(), count),
    };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = server::pinned(&mut cmd, plan.client_cpu)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", plan.client.name()))?;
    let sampler = Sampler::start(running.pid(), child.id(), plan.cpus);
    let out = child.wait_with_output();
    let exited_ms = now_ms();
    let samples = sampler.stop();
    running.check_running()?;
    drop(running);
    let out = out.map_err(|e| format!("waiting for {}: {e}", plan.client.name()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}): {}{}",
            plan.client.name(),
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let window: Window = match plan.client {
        Client::Fio => fio::parse(&stdout, w.write)?,
        Client::QemuImg => qemu_img::parse(&stdout, count)?,
    };
    let end = window.end_ms.unwrap_or(exited_ms);
    let d = samples
        .between(end - window.secs * 1e3, end)
        .ok_or("no CPU samples")?;
    let tick = 1.0 / procfs::ticks_per_sec();
    let total = d.total.max(1.0);
    let ours = d.server + d.client + d.bench;
    Ok(Run {
        ios: window.ios,
        secs: window.secs,
        server_cpu: d.server * tick,
        client_cpu: d.client * tick,
        others: 100.0 * (d.busy - ours).max(0.0) / total,
        steal: 100.0 * d.steal / total,
    })
}

/// [`once`] on quiet CPUs: wait for them (up to `plan.quiet_wait`), run, and redo the run
/// (up to [`RETRIES`] times) when other processes took more than [`MAX_OTHERS`] percent of
/// the CPUs during it; if every attempt was disturbed, the least disturbed one is kept.
/// `label` prefixes the line printed to stderr for every attempt.
pub fn clean(
    server: Server,
    w: &Workload,
    launch: &Launch<'_>,
    plan: &Plan<'_>,
    label: &str,
) -> Result<Run, String> {
    let waits = !plan.quiet_wait.is_zero();
    let mut attempt = 0;
    let mut kept: Option<Run> = None;
    loop {
        if waits && !procfs::wait_quiet(plan.cpus, MAX_OTHERS, plan.quiet_wait) {
            eprintln!("nbd: the CPUs are busy with other work; running anyway");
        }
        let run = once(server, w, launch, plan)?;
        let redo = waits && run.others > MAX_OTHERS && attempt < RETRIES;
        // Of disturbed attempts, the least disturbed one is kept.
        if kept.as_ref().is_none_or(|k| run.others < k.others) {
            kept = Some(run.clone());
        }
        eprintln!(
            "nbd: {label} {:>9.0} IOPS {:>9.0} IOPS/CPU-s {:>6.2} us/IO  server {:>3.0}%  \
             client {:>3.0}%  others {:>4.1}%  steal {:>4.1}%{}",
            run.iops(),
            run.iops_per_cpu_s(),
            run.cpu_us_per_io(),
            run.server_cpu_percent(),
            run.client_cpu_percent(),
            run.others,
            run.steal,
            if redo { "  (disturbed: redone)" } else { "" }
        );
        if !redo {
            return Ok(kept.unwrap_or(run));
        }
        attempt += 1;
    }
}
