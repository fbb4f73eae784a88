//! A tour of the ringleader runtime: prints what each step did and what the rings counted.
//!
//! Run: `cargo run --release --example tour [-- --cores N --tasks N --nops N]`

#[path = "common/flags.rs"]
mod flags;

use std::time::{Duration, Instant};

use ringleader::{Runtime, runtime::stats, spawn};

struct Args {
    cores: usize,
    tasks: usize,
    nops: usize,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        cores: 2,
        tasks: 32,
        nops: 10_000,
    };
    let mut it = flags::expand(std::env::args().skip(1)).into_iter();
    while let Some(flag) = it.next() {
        // Zero is refused, not rounded up: `--cores 0` used to run "on 1 cores".
        let mut num = |name: &str| -> Result<usize, String> {
            match it
                .next()
                .ok_or_else(|| format!("{name} needs a value"))?
                .parse()
                .map_err(|e| format!("{name}: {e}"))?
            {
                0 => Err(format!("{name} must be at least 1")),
                n => Ok(n),
            }
        };
        match flag.as_str() {
            "--cores" => a.cores = num("--cores")?,
            "--tasks" => a.tasks = num("--tasks")?,
            "--nops" => a.nops = num("--nops")?,
            "-h" | "--help" => {
                println!(
                    "tour: exercise the ringleader runtime and print what it did\n\n\
                     USAGE: tour [--cores N] [--tasks N] [--nops N]\n\n\
                     --cores N   cores (threads, one io_uring each) [default: 2]\n\
                     --tasks N   concurrent tasks per core issuing NOPs [default: 32]\n\
                     --nops N    NOPs per task [default: 10000]\n\
                     -h, --help  this text"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(a)
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tour: {e}");
            std::process::exit(2);
        }
    };
    let rt = match Runtime::builder().cores(args.cores).build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tour: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let info = rt.block_on(|| async { ringleader::runtime::setup_info() });
    println!(
        "ring setup: {:?} (SQ {}, CQ {}, ring fd registered: {})",
        info.applied, info.sq_entries, info.cq_entries, info.ring_fd_registered
    );
    for f in &info.fallbacks {
        println!("  fallback: {f}");
    }

    let start = Instant::now();
    let handles: Vec<_> = (0..args.cores)
        .map(|core| {
            let (tasks, nops) = (args.tasks, args.nops);
            rt.spawn_on(core, move || async move {
                let hs: Vec<_> = (0..tasks)
                    .map(|_| {
                        spawn(async move {
                            for _ in 0..nops {
                                ringleader::ops::nop().await.expect("nop");
                            }
                        })
                    })
                    .collect();
                for h in hs {
                    h.await.expect("task");
                }
                stats()
            })
        })
        .collect();
    let per_core: Vec<_> = handles
        .into_iter()
        .map(|h| futures::executor::block_on(h).expect("core task"))
        .collect();
    let secs = start.elapsed().as_secs_f64();
    let total = (args.cores * args.tasks * args.nops) as f64;
    println!(
        "{} NOPs from {} tasks on {} cores in {:.3}s: {:.2} M ops/s",
        total,
        args.tasks * args.cores,
        args.cores,
        secs,
        total / secs / 1e6
    );
    for (core, s) in per_core.iter().enumerate() {
        println!(
            "  core {core}: {} SQEs in {} submits ({:.1} SQEs/enter), {} CQEs, {} waits",
            s.sqes_pushed,
            s.submits,
            s.sqes_pushed as f64 / s.submits.max(1) as f64,
            s.cqes_reaped,
            s.waits
        );
    }

    // Cross-core: a task on the last core is woken by core 0 through MSG_RING.
    let last = args.cores - 1;
    let (tx, rx) = futures::channel::oneshot::channel::<Instant>();
    let waiter = rt.spawn_on(last, move || async move {
        let sent_at = rx.await.expect("sender");
        (sent_at.elapsed(), stats().msg_ring_received)
    });
    let sender = rt.spawn_on(0, move || async move {
        ringleader::time::sleep(Duration::from_millis(10)).await;
        tx.send(Instant::now()).expect("waiter");
    });
    futures::executor::block_on(sender).expect("sender");
    let (latency, received) = futures::executor::block_on(waiter).expect("waiter");
    println!(
        "cross-core wake core 0 -> core {last}: {latency:?} (core {last} has received {received} MSG_RING wake-ups)"
    );

    // Timers and cancellation: a timeout cancels a sleep that would never end in time.
    let (elapsed, cancels) = rt.block_on(|| async {
        let t = Instant::now();
        let r = ringleader::time::timeout(
            Duration::from_millis(5),
            ringleader::time::sleep(Duration::from_secs(60)),
        )
        .await;
        assert!(r.is_err());
        ringleader::yield_now().await;
        (t.elapsed(), stats().cancels)
    });
    println!(
        "timeout(5ms, sleep(60s)) returned after {elapsed:?}; ASYNC_CANCELs issued on core 0: {cancels}"
    );

    let start = Instant::now();
    rt.shutdown();
    println!(
        "graceful shutdown of {} cores: {:?}",
        args.cores,
        start.elapsed()
    );
}
