//! One measured run of one row, and what it yields.

use std::time::Duration;

use super::iperf;
use super::procfs::{cpu_ticks, irq_ticks, ticks_per_sec, tree_ticks};
use super::rows::{self, Row, Setup};

/// How long after the client ends before the proxy's CPU time is read: lets a forked child
/// (socat) see both ends close, exit and be reaped into its parent's `cutime`.
const SETTLE: Duration = Duration::from_millis(200);

/// What one run measured.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Receiver-side throughput, Gbit/s.
    pub gbps: f64,
    /// Bytes that reached the upstream iperf3 server.
    pub bytes: u64,
    /// The proxy's CPU seconds (its process tree, user + system), `None` without a proxy.
    pub cpu_s: Option<f64>,
    /// irq + softirq seconds on the proxy's CPU (see [`super::procfs::irq_ticks`]).
    pub irq_s: f64,
    /// Length of the run, seconds.
    pub secs: f64,
    /// CPU of the processes on the load CPU (iperf3 client and server, mirror sinks),
    /// percent of one CPU: near 100 (less others) means the load CPU was the bottleneck.
    pub load_cpu_percent: f64,
    /// Busy time of the proxy and load CPUs that none of the bench's processes account
    /// for: other work on a shared host, percent of the two CPUs.
    pub others_percent: f64,
}

impl Sample {
    /// Proxy CPU seconds per GB (1e9 bytes) delivered to the upstream.
    pub fn cpu_per_gb(&self) -> Option<f64> {
        self.cpu_s.map(|c| c / (self.bytes as f64 / 1e9))
    }

    /// irq + softirq seconds on the proxy's CPU per GB delivered.
    pub fn irq_per_gb(&self) -> f64 {
        self.irq_s / (self.bytes as f64 / 1e9)
    }

    /// Proxy CPU time as a percentage of one CPU over the run.
    pub fn cpu_percent(&self) -> Option<f64> {
        self.cpu_s.map(|c| 100.0 * c / self.secs)
    }
}

/// Run `row` once: a fresh iperf3 server on `load_cpu`, the row's proxy on `setup.cpu`,
/// `iperf3 -c` for `secs` seconds on `load_cpu`; every process started is killed after.
pub fn once(row: Row, setup: &Setup, secs: u32, load_cpu: usize) -> Result<Sample, String> {
    let (server, upstream) = iperf::server(load_cpu)?;
    let mut proxy = rows::start(row, setup, upstream)?;
    let target = proxy.as_ref().map_or(upstream, |(_, addr)| *addr);
    let cpus = [setup.cpu, load_cpu];
    // Ours: the server, the sinks and (below) the client; the proxy apart.
    let ours = || server.tree_ticks() + setup.sinks.iter().map(|&p| tree_ticks(p)).sum::<u64>();
    let (busy0, total0, ours0) = {
        let (b, t) = cpu_ticks(&cpus);
        (b, t, ours())
    };
    let before = proxy.as_ref().map(|(p, _)| p.tree_ticks());
    let irq0 = irq_ticks(setup.cpu);
    let report = iperf::client(target, secs, load_cpu);
    std::thread::sleep(SETTLE);
    let irq1 = irq_ticks(setup.cpu);
    let after = proxy.as_ref().map(|(p, _)| p.tree_ticks());
    let (busy1, total1, ours1) = {
        let (b, t) = cpu_ticks(&cpus);
        (b, t, ours())
    };
    if let Some((p, _)) = proxy.as_mut() {
        // A proxy that died mid-run explains a failed client better than the client does.
        p.check_running()?;
    }
    let report = report?;
    let proxy_ticks = before.zip(after).map(|(b, a)| a.saturating_sub(b));
    let client_ticks = report.client_cpu_percent / 100.0 * f64::from(secs) * ticks_per_sec();
    let load_ticks = ours1.saturating_sub(ours0) as f64 + client_ticks;
    let accounted = proxy_ticks.unwrap_or(0) as f64 + load_ticks;
    let others = busy1.saturating_sub(busy0) as f64 - accounted;
    let cpu_s = proxy_ticks.map(|t| t as f64 / ticks_per_sec());
    Ok(Sample {
        gbps: report.bits_per_second / 1e9,
        bytes: report.bytes,
        cpu_s,
        irq_s: irq1.saturating_sub(irq0) as f64 / ticks_per_sec(),
        secs: f64::from(secs),
        load_cpu_percent: 100.0 * load_ticks / ticks_per_sec() / f64::from(secs),
        others_percent: (100.0 * others / (total1 - total0).max(1) as f64).max(0.0),
    })
}
