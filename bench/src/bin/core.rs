//! `core`: the executor's own costs, beside their limits and peers, in one run.
//!
//! 1. NOP throughput through ringleader from 1, 32 and 256 tasks, beside a raw `io-uring`
//!    loop with batches of the same sizes on an identically set-up ring.
//! 2. Spawn + join of a trivial task on ringleader, tokio (current-thread) and
//!    async-executor (`LocalExecutor`), in batch and sequential shapes.
//!
//! Every row runs once to warm up, then `--runs` times; the table shows the median with
//! `[min .. max]`. The thread is pinned to one CPU first. See `bench/README.md`.

use std::process::ExitCode;

use async_executor::LocalExecutor;
use ringleader_bench::measure::repeat;
use ringleader_bench::nop::{self, RawRing};
use ringleader_bench::pin;
use ringleader_bench::spawn::{self, Shape};
use ringleader_bench::table::{Table, ns_cell, rate_cell, ratio};

const USAGE: &str = "\
usage: core [--runs R] [--quick] [--cpu N] [--only nop|spawn] [--nops OPS] [--spawns N]

Measures ringleader's NOP throughput (1, 32, 256 tasks) against a raw io-uring loop, and
spawn+join cost against tokio (current-thread) and async-executor, printing one table each.

  --runs R       timed runs per row, after one warm-up run (default 5); the median is shown
                 with [min .. max]
  --quick        fewer ops per run, for smoke tests (NOPs 65536, spawns 10000)
  --cpu N        pin the benchmark thread to CPU N (default: the last CPU this process may
                 use)
  --only SUITE   run only `nop` or only `spawn` (e.g. under `perf record`)
  --nops OPS     NOPs per NOP run (default 2097152; rounded down to a multiple of 256)
  --spawns N     tasks per spawn run (default 100000)
  -h, --help     this text";

/// Concurrency levels of the NOP table (tasks for ringleader, batch size for the raw loop).
const CONCURRENCY: [usize; 3] = [1, 32, 256];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Suite {
    All,
    Nop,
    Spawn,
}

#[derive(Debug)]
struct Args {
    runs: usize,
    cpu: Option<usize>,
    suite: Suite,
    nops: u64,
    spawns: u64,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut args = Args {
        runs: 5,
        cpu: None,
        suite: Suite::All,
        nops: 1 << 21,
        spawns: 100_000,
    };
    let mut quick = false;
    let (mut nops, mut spawns) = (None, None);
    fn value<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        v.parse()
            .map_err(|_| format!("{flag}: cannot parse {v:?} as a number"))
    }
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--quick" => quick = true,
            "--runs" => args.runs = value("--runs", it.next())?,
            "--cpu" => args.cpu = Some(value("--cpu", it.next())?),
            "--nops" => nops = Some(value("--nops", it.next())?),
            "--spawns" => spawns = Some(value("--spawns", it.next())?),
            "--only" => {
                args.suite = match it.next().as_deref() {
                    Some("nop") => Suite::Nop,
                    Some("spawn") => Suite::Spawn,
                    Some(other) => {
                        return Err(format!("--only takes `nop` or `spawn`, not {other:?}"));
                    }
                    None => return Err("--only needs a value: `nop` or `spawn`".to_owned()),
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if quick {
        args.nops = 1 << 16;
        args.spawns = 10_000;
    }
    args.nops = nops.unwrap_or(args.nops);
    args.spawns = spawns.unwrap_or(args.spawns);
    let max_batch = CONCURRENCY[CONCURRENCY.len() - 1] as u64;
    args.nops -= args.nops % max_batch;
    if args.runs == 0 || args.nops == 0 || args.spawns == 0 {
        return Err("--runs, --nops (at least 256) and --spawns must be positive".to_owned());
    }
    Ok(Some(args))
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("core: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("core: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> std::io::Result<()> {
    let cpus = pin::allowed_cpus()?;
    let cpu = match args.cpu {
        Some(c) => c,
        None => *cpus
            .last()
            .ok_or_else(|| std::io::Error::other("no CPU allowed"))?,
    };
    pin::pin_to_cpu(cpu)?;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!(
        "ringleader bench `core`: Linux {}, thread pinned to CPU {cpu} (sched_setaffinity; {} \
         CPUs allowed), {} timed runs per row after 1 warm-up; cells are median [min .. max]",
        kernel.trim(),
        cpus.len(),
        args.runs,
    );
    if args.suite != Suite::Spawn {
        nop_suite(args)?;
    }
    if args.suite != Suite::Nop {
        spawn_suite(args)?;
    }
    Ok(())
}

fn nop_suite(args: &Args) -> std::io::Result<()> {
    let rt = nop::ringleader_runtime()?;
    let info = rt.setup_info();
    let mut raw = RawRing::new()?;
    let (raw_sq, raw_cq) = raw.entries();
    println!();
    println!(
        "## NOP throughput, ops/s ({} NOPs per run)\n\
         ringleader: LocalRuntime, SQ {} / CQ {}, flags {:?}, ring fd registered: {}{}\n\
         raw:        io-uring crate, SQ {raw_sq} / CQ {raw_cq}, flags {:?}, ring fd registered: \
         true; per round: push B NOPs, submit_and_wait(B), reap B",
        args.nops,
        info.sq_entries,
        info.cq_entries,
        info.applied,
        info.ring_fd_registered,
        if info.fallbacks.is_empty() {
            String::new()
        } else {
            format!(" (fallbacks: {})", info.fallbacks.join("; "))
        },
        nop::FLAGS,
    );
    let mut table = Table::new([
        "concurrency B",
        "ringleader (B tasks)",
        "raw io-uring (batch B)",
        "ringleader/raw",
    ]);
    for b in CONCURRENCY {
        let per_task = args.nops / b as u64;
        let ours = repeat(args.runs, || nop::ringleader_nops(&rt, b, per_task));
        let mut raw_err = None;
        let limit = repeat(args.runs, || {
            raw.nops(b, args.nops).unwrap_or_else(|e| {
                raw_err.get_or_insert(e);
                std::time::Duration::MAX
            })
        });
        if let Some(e) = raw_err {
            return Err(e);
        }
        let (ours_rate, limit_rate) = (ours.rate(args.nops), limit.rate(args.nops));
        table.row([
            b.to_string(),
            rate_cell(ours_rate),
            rate_cell(limit_rate),
            ratio(ours_rate.0 / limit_rate.0),
        ]);
    }
    print!("{table}");
    Ok(())
}

fn spawn_suite(args: &Args) -> std::io::Result<()> {
    let n = args.spawns;
    let ours = nop::ringleader_runtime()?;
    let tokio = spawn::tokio_runtime()?;
    let ex = LocalExecutor::new();
    println!();
    println!(
        "## spawn + join of a trivial task, ns per task ({n} tasks per run)\n\
         batch: spawn all, then await all; sequential: spawn one, await it, repeat.\n\
         ratio: the runtime's median time / ringleader's (above 1 = slower than ringleader)"
    );
    let mut table = Table::new([
        "runtime (spawn call)",
        "batch ns/task",
        "vs ringleader",
        "sequential ns/task",
        "vs ringleader",
    ]);
    let mut base = None;
    let mut row = |name: &str, f: &mut dyn FnMut(Shape) -> std::time::Duration| {
        let batch = repeat(args.runs, || f(Shape::Batch)).per_item_ns(n);
        let seq = repeat(args.runs, || f(Shape::Sequential)).per_item_ns(n);
        let (b0, s0) = *base.get_or_insert((batch.0, seq.0));
        table.row([
            name.to_owned(),
            ns_cell(batch),
            ratio(batch.0 / b0),
            ns_cell(seq),
            ratio(seq.0 / s0),
        ]);
    };
    row("ringleader (ringleader::spawn)", &mut |s| {
        spawn::ringleader(&ours, n, s)
    });
    row("tokio current_thread (tokio::spawn)", &mut |s| {
        spawn::tokio_spawn(&tokio, n, s)
    });
    row("tokio current_thread + LocalSet (spawn_local)", &mut |s| {
        spawn::tokio_local(&tokio, n, s)
    });
    row("async-executor LocalExecutor (spawn)", &mut |s| {
        spawn::async_executor(&ex, n, s)
    });
    print!("{table}");
    Ok(())
}
