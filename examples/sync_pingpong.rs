//! How much the single-core `sync::local` flavour saves over the cross-core `sync` flavour,
//! and what a wake across cores costs: a value bounces between two tasks over two bounded
//! channels, on one core and between two cores, and a mutex is locked and unlocked without
//! contention. Prints the time per round trip (or per lock) and each row's ratio to the first;
//! each row is the best of `--repeat` runs, so that other load on the machine shows less.
//!
//! Run: `cargo run --release --example sync_pingpong [-- --rounds N --cross-rounds N]`

#[path = "common/flags.rs"]
mod flags;

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use ringleader::sync::{self, local};
use ringleader::{Runtime, spawn};

struct Args {
    rounds: u64,
    cross_rounds: u64,
    locks: u64,
    repeat: u64,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        rounds: 200_000,
        cross_rounds: 5_000,
        locks: 2_000_000,
        repeat: 5,
    };
    let mut it = flags::expand(std::env::args().skip(1)).into_iter();
    while let Some(flag) = it.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            it.next()
                .ok_or_else(|| format!("{name} needs a value"))?
                .parse::<u64>()
                .map(|n| n.max(1))
                .map_err(|e| format!("{name}: {e}"))
        };
        match flag.as_str() {
            "--rounds" => a.rounds = num("--rounds")?,
            "--cross-rounds" => a.cross_rounds = num("--cross-rounds")?,
            "--locks" => a.locks = num("--locks")?,
            "--repeat" => a.repeat = num("--repeat")?,
            "-h" | "--help" => {
                println!(
                    "sync_pingpong: time ringleader::sync::local against ringleader::sync\n\n\
                     USAGE: sync_pingpong [--rounds N] [--cross-rounds N] [--locks N] \
                     [--repeat N]\n\n\
                     --rounds N        round trips on one core [default: 200000]\n\
                     --cross-rounds N  round trips between core 0 and core 1 [default: 5000]\n\
                     --locks N         uncontended lock/unlock pairs [default: 2000000]\n\
                     --repeat N        runs per row; the best is printed [default: 5]\n\
                     -h, --help        this text"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(a)
}

/// Round trips over two capacity-1 channels of a flavour with tokio's API, both tasks on
/// this core.
macro_rules! ping_pong_one_core {
    ($channel:path, $rounds:expr) => {{
        let (ping_tx, mut ping_rx) = $channel(1);
        let (pong_tx, mut pong_rx) = $channel(1);
        let echo = spawn(async move {
            while let Some(v) = ping_rx.recv().await {
                pong_tx.send(v).await.expect("pong");
            }
        });
        let t = Instant::now();
        for i in 0..$rounds {
            ping_tx.send(i).await.expect("ping");
            assert_eq!(pong_rx.recv().await, Some(i));
        }
        let elapsed = t.elapsed();
        drop(ping_tx);
        echo.await.expect("echo task");
        elapsed
    }};
}

async fn futures_one_core(rounds: u64) -> Duration {
    let (mut ping_tx, mut ping_rx) = futures::channel::mpsc::channel::<u64>(1);
    let (mut pong_tx, mut pong_rx) = futures::channel::mpsc::channel::<u64>(1);
    let echo = spawn(async move {
        while let Some(v) = ping_rx.next().await {
            pong_tx.send(v).await.expect("pong");
        }
    });
    let t = Instant::now();
    for i in 0..rounds {
        ping_tx.send(i).await.expect("ping");
        assert_eq!(pong_rx.next().await, Some(i));
    }
    let elapsed = t.elapsed();
    drop(ping_tx);
    echo.await.expect("echo task");
    elapsed
}

/// Round trips between a task on core 0 (the caller) and an echo task on core 1.
fn cross_core(rt: &Runtime, rounds: u64) -> (Duration, u64) {
    let (ping_tx, mut ping_rx) = sync::mpsc::channel::<u64>(1);
    let (pong_tx, mut pong_rx) = sync::mpsc::channel::<u64>(1);
    let echo = rt.spawn_on(1, move || async move {
        while let Some(v) = ping_rx.recv().await {
            pong_tx.send(v).await.expect("pong");
        }
    });
    let out = rt.block_on(move || async move {
        let before = ringleader::runtime::stats().msg_ring_received;
        let t = Instant::now();
        for i in 0..rounds {
            ping_tx.send(i).await.expect("ping");
            assert_eq!(pong_rx.recv().await, Some(i));
        }
        let elapsed = t.elapsed();
        (
            elapsed,
            ringleader::runtime::stats().msg_ring_received - before,
        )
    });
    rt.block_on(move || async move { echo.await.expect("echo task") });
    out
}

fn per(d: Duration, n: u64) -> f64 {
    d.as_secs_f64() * 1e9 / n as f64
}

fn row(name: &str, ns: f64, base: f64) {
    println!("  {name:<40} {:>9.1} ns  {:>6.2}x", ns, ns / base);
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sync_pingpong: {e}");
            std::process::exit(2);
        }
    };
    let rt = match Runtime::builder().cores(2).build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sync_pingpong: cannot start a two-core runtime: {e}");
            std::process::exit(1);
        }
    };
    let (rounds, locks, repeat) = (args.rounds, args.locks, args.repeat);
    let one_core = rt.block_on(move || async move {
        // Warm up allocators and queues.
        ping_pong_one_core!(local::mpsc::channel, 1_000u64);
        ping_pong_one_core!(sync::mpsc::channel, 1_000u64);
        let mut best = [Duration::MAX; 3];
        for _ in 0..repeat {
            let runs = [
                ping_pong_one_core!(local::mpsc::channel, rounds),
                ping_pong_one_core!(sync::mpsc::channel, rounds),
                futures_one_core(rounds).await,
            ];
            for (b, r) in best.iter_mut().zip(runs) {
                *b = (*b).min(r);
            }
        }
        best
    });
    cross_core(&rt, 1_000);
    let (mut cross, mut msgs) = (Duration::MAX, 0);
    for _ in 0..repeat {
        let (d, m) = cross_core(&rt, args.cross_rounds);
        if d < cross {
            (cross, msgs) = (d, m);
        }
    }
    let (local_lock, sync_lock) = rt.block_on(move || async move {
        let mut best = (Duration::MAX, Duration::MAX);
        for _ in 0..repeat {
            let m = local::Mutex::new(0u64);
            let t = Instant::now();
            for _ in 0..locks {
                *m.lock().await += 1;
            }
            best.0 = best.0.min(t.elapsed());
            let m = sync::Mutex::new(0u64);
            let t = Instant::now();
            for _ in 0..locks {
                *m.lock().await += 1;
            }
            best.1 = best.1.min(t.elapsed());
        }
        best
    });

    println!(
        "round trip of a u64 over two bounded(1) mpsc channels ({} rounds on one core, {} \
         across; best of {})",
        args.rounds, args.cross_rounds, args.repeat
    );
    let base = per(one_core[0], args.rounds);
    row("sync::local::mpsc, one core", base, base);
    row("sync::mpsc, one core", per(one_core[1], args.rounds), base);
    row(
        "futures::channel::mpsc, one core",
        per(one_core[2], args.rounds),
        base,
    );
    row(
        "sync::mpsc, core 0 <-> core 1",
        per(cross, args.cross_rounds),
        base,
    );
    println!(
        "  (core 0 received {:.2} MSG_RING wake-ups per round trip)",
        msgs as f64 / args.cross_rounds as f64
    );
    println!("uncontended lock + unlock ({} times)", args.locks);
    let base = per(local_lock, args.locks);
    row("sync::local::Mutex", base, base);
    row("sync::Mutex", per(sync_lock, args.locks), base);
}
