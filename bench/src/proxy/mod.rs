//! The proxy benchmark's parts: which proxies, how they are started, and how a run of
//! iperf3 through one of them is measured.
//!
//! # Model
//!
//! A **row** ([`rows::Row`]) is one path for a single iperf3 TCP stream over 127.0.0.1:
//! straight to the server (`direct`, the ceiling), or through one proxy: ringleader's
//! `examples/proxy` in each mode, socat, haproxy, or a peer written here ([`peers`]: tokio,
//! monoio, the tokio fan-out proxy). A **run** ([`run::once`]) starts a fresh iperf3 server
//! ([`iperf`]), starts the row's proxy, reads the proxy's CPU time, lets `iperf3 -c` send
//! for S seconds, reads the CPU time again and kills both. It yields the receiver's
//! throughput and the proxy's CPU seconds (its whole process tree, [`procfs`]), from which
//! CPU seconds per GB delivered follow.
//!
//! Fan-out rows add mirror sinks (started once for the whole bench, the same for every
//! row): the proxy sends every byte from the client to the upstream and to each sink.
//! iperf3's control connection goes through the proxy (and to the mirrors) too.
//!
//! The `proxy_burst` bin measures connection handling instead of throughput: bursts of
//! short connections against an echo upstream ([`burst`]), through the same rows.
//!
//! # Invariants
//!
//! - Placement is the same for every row: the proxy and everything it starts on one CPU,
//!   the iperf3 client, server and the sinks on another, each pinned before `exec`
//!   ([`process`]).
//! - No process outlives its run: every child is killed by its own PID (descendants first)
//!   when its [`process::Proc`] drops, and asked to die with the bench (`PDEATHSIG`).
//! - Nothing probes a proxy by connecting to it: readiness is its `listening on` line or a
//!   LISTEN socket in `/proc/net/tcp`, so no stray connection reaches the iperf3 server.

pub mod burst;
pub mod iperf;
pub mod peers;
pub mod process;
pub mod procfs;
pub mod report;
pub mod rows;
pub mod run;
