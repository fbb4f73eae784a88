//! The NBD benchmark's parts: which servers, which client drives them, and how one run is
//! measured.
//!
//! # Model
//!
//! A **server** ([`server::Server`]) is ringleader's `examples/nbd_server` (as it ships, or
//! with one of its options) or a peer (`qemu-nbd --aio=io_uring`, `qemu-nbd --aio=threads`,
//! `nbdkit file`), all exporting the same raw image from the page cache ([`image`]). A
//! **client** ([`workload::Client`]) is fio's nbd engine ([`fio`], time-based, with a ramp)
//! or `qemu-img bench` ([`qemu_img`], a fixed count of requests). A **workload**
//! ([`workload::Workload`]) is a request size, direction, pattern and queue depth.
//!
//! A **run** ([`Run`]) starts a fresh server, starts the client against it while a
//! [`sampler::Sampler`] reads the CPU time of the server, the client and the CPUs every
//! 20 ms, and kills the server by its PID when the client is done. The client reports how
//! many I/Os it completed in its measured window and where that window ended; the server's
//! CPU time over exactly that window is interpolated from the samples, so fio's ramp and
//! both processes' start-up and teardown are left out.
//!
//! # Invariants
//!
//! - Every run measures one server process: its `utime + stime` from `/proc/PID/stat`
//!   covers all its threads, io_uring's io-wq workers included.
//! - No server outlives its run: [`server::Running`] kills it by PID when dropped, and it is
//!   asked to die with the bench (`PR_SET_PDEATHSIG`) when pinned.
//! - The client and the sampler never run on the server's CPU when the bench pins.

pub mod fio;
pub mod image;
pub mod qemu_img;
pub mod report;
pub mod run;
pub mod sampler;
pub mod server;
pub mod workload;

/// What a client says about its measured window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    /// I/Os completed in it.
    pub ios: f64,
    /// Its length, seconds.
    pub secs: f64,
    /// When it ended, ms since the Unix epoch; `None`: when the client exited.
    pub end_ms: Option<f64>,
}

/// One measured run of one client against one server.
#[derive(Clone, Debug)]
pub struct Run {
    /// I/Os completed in the measured window.
    pub ios: f64,
    /// Length of the measured window, seconds.
    pub secs: f64,
    /// CPU seconds the server process used in the window (all threads).
    pub server_cpu: f64,
    /// CPU seconds the client process used in the window (all threads).
    pub client_cpu: f64,
    /// Percent of the measured CPUs' time other processes used, and the hypervisor stole.
    pub others: f64,
    pub steal: f64,
}

impl Run {
    /// I/Os per second of wall time.
    pub fn iops(&self) -> f64 {
        self.ios / self.secs
    }

    /// I/Os per second of server CPU time.
    pub fn iops_per_cpu_s(&self) -> f64 {
        self.ios / self.server_cpu
    }

    /// Microseconds of server CPU time per I/O.
    pub fn cpu_us_per_io(&self) -> f64 {
        self.server_cpu * 1e6 / self.ios
    }

    /// Server CPU time as a percentage of one CPU over the window.
    pub fn server_cpu_percent(&self) -> f64 {
        100.0 * self.server_cpu / self.secs
    }

    /// Client CPU time as a percentage of one CPU over the window.
    pub fn client_cpu_percent(&self) -> f64 {
        100.0 * self.client_cpu / self.secs
    }
}
