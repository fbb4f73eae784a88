//! `http`: HTTP/1.1 "hello" with hyper on ringleader against hyper on tokio's current-thread
//! runtime, loaded by `wrk`, in one run.
//!
//! Both servers run in this process, each on its own thread pinned to the same CPU, with the
//! same hyper code (`http1::Builder` with a timer, keep-alive, `TCP_NODELAY`, a
//! `service_fn` answering `hello`); only the runtime glue differs: `ringleader::compat::hyper`
//! (multishot accept, `HyperIo`, `HyperTimer`) vs hyper-util's `TokioIo`/`TokioTimer`
//! (`tokio::spawn` per connection). `wrk` runs pinned to another CPU (`taskset`). Runs
//! alternate between the servers; each is a warm-up `wrk` then a measured one. The table
//! shows req/s (median and [min .. max]), wrk's p99 latency, how busy each CPU was, the
//! requests per second of server-thread CPU time, and the ratio to tokio.
//!
//! Run: `cd bench && cargo run --release --bin http [-- --runs 5]` (needs `wrk` and
//! `taskset`: `apt-get install wrk util-linux`).
//!
//! Reading it: with two CPUs, one `wrk` thread is about as fast as one hyper server, so `wrk`
//! may saturate its CPU first. The servers' CPU columns say which side was the limit; the
//! `req per server-CPU-s` column (requests divided by the server thread's own CPU time, from
//! `/proc/self/task/TID/stat`) compares the servers' efficiency even then, and is also
//! robust to other processes taking CPU time (shown in `others %`).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::StreamExt;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use ringleader_bench::pin;
use ringleader_bench::table::{Table, ratio, si};

const USAGE: &str = "\
usage: http [--runs R] [--secs S] [--warmup S] [--conns N] [--pipeline D,D..]
            [--server-cpu N] [--load-cpu N] [--quiet-wait S] [--quick]

HTTP/1.1 `hello` through hyper on ringleader and on tokio (current_thread), both servers on
one CPU, `wrk` (apt-get install wrk) on another. Prints req/s, p99 latency, CPU use and the
ratio ringleader / tokio.

  --runs R        measured runs per server, alternating (default 3)
  --secs S        measured window per run, seconds (default 5)
  --warmup S      warm-up wrk run before each measured one, seconds (default 1)
  --conns N       wrk connections, keep-alive (default 100)
  --pipeline D,.. pipelining depths, one table each (default 1,16): at depth D every
                  connection sends D requests per write (a wrk Lua script, as TechEmpower's
                  plaintext test), which makes wrk cheap enough per request that the server,
                  not wrk, is the limit; depth 1 is one request in flight per connection
  --server-cpu N  CPU of both server threads (default: the first allowed CPU)
  --load-cpu N    CPU of wrk (default: the second allowed CPU)
  --quiet-wait S  before each run, wait up to S seconds for both CPUs to be idle (default
                  30; 0: do not wait); the `others %` column shows what other processes
                  took from the server's CPU anyway
  --quick         1 run of 2 s after 1 s of warm-up
  -h, --help      this text";

const HELLO: &[u8] = b"hello";

/// Where a server thread reports its address and thread id, or its set-up error.
type Ready = mpsc::Sender<io::Result<(SocketAddr, u32)>>;

/// The calling thread's id, from the `/proc/thread-self -> PID/task/TID` link.
fn thread_id() -> io::Result<u32> {
    let link = std::fs::read_link("/proc/thread-self")?;
    link.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| io::Error::other(format!("unexpected /proc/thread-self -> {link:?}")))
}

/// Report `listener_addr` (and this thread's id) on `ready`.
fn report(ready: &Ready, listener_addr: io::Result<SocketAddr>) {
    let _ = ready.send(listener_addr.and_then(|a| Ok((a, thread_id()?))));
}

#[derive(Debug)]
struct Args {
    runs: usize,
    secs: u64,
    warmup: u64,
    conns: usize,
    pipelines: Vec<usize>,
    server_cpu: Option<usize>,
    load_cpu: Option<usize>,
    quiet_wait: u64,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut a = Args {
        runs: 3,
        secs: 5,
        warmup: 1,
        conns: 100,
        pipelines: vec![1, 16],
        server_cpu: None,
        load_cpu: None,
        quiet_wait: 30,
    };
    fn number<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        v.parse()
            .map_err(|_| format!("{flag}: cannot parse {v:?} as a whole number"))
    }
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--runs" => a.runs = number("--runs", it.next())?,
            "--secs" => a.secs = number("--secs", it.next())?,
            "--warmup" => a.warmup = number("--warmup", it.next())?,
            "--conns" => a.conns = number("--conns", it.next())?,
            "--pipeline" => {
                let v = it.next().ok_or("--pipeline needs a value")?;
                a.pipelines = v
                    .split(',')
                    .map(|d| d.trim().parse().ok().filter(|&d: &usize| d > 0))
                    .collect::<Option<Vec<_>>>()
                    .filter(|d| !d.is_empty())
                    .ok_or_else(|| format!("--pipeline: cannot parse {v:?}"))?;
            }
            "--server-cpu" => a.server_cpu = Some(number("--server-cpu", it.next())?),
            "--load-cpu" => a.load_cpu = Some(number("--load-cpu", it.next())?),
            "--quiet-wait" => a.quiet_wait = number("--quiet-wait", it.next())?,
            "--quick" => (a.runs, a.secs, a.warmup) = (1, 2, 1),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if a.runs == 0 || a.secs == 0 || a.conns == 0 {
        return Err("--runs, --secs and --conns must be positive".to_owned());
    }
    Ok(Some(a))
}

async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(HELLO))))
}

/// A server thread pinned to `cpu`; sends its address (or the set-up error) on `ready`.
fn server_thread(name: &str, cpu: usize, ready: Ready, serve: impl FnOnce(Ready) + Send + 'static) {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            if let Err(e) = pin::pin_to_cpu(cpu) {
                let _ = ready.send(Err(e));
                return;
            }
            serve(ready);
        })
        .expect("spawning a server thread");
}

/// hyper on ringleader: a `LocalRuntime` on this thread, multishot accept, one task per
/// connection.
fn serve_ringleader(ready: Ready) {
    use ringleader::compat::hyper::{HyperIo, HyperTimer};
    let rt = match ringleader::Builder::new().build_local() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    rt.block_on(async move {
        let listener = match ringleader::net::TcpListener::bind("127.0.0.1:0") {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        report(&ready, listener.local_addr());
        let mut incoming = listener.incoming();
        while let Some(conn) = incoming.next().await {
            let Ok(stream) = conn else { continue };
            let _ = stream.set_nodelay(true);
            ringleader::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(HyperTimer)
                    .serve_connection(HyperIo::new(stream), service_fn(hello))
                    .await;
            })
            .detach();
        }
    });
}

/// hyper on tokio's current-thread runtime: accept loop, `tokio::spawn` per connection.
fn serve_tokio(ready: Ready) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        report(&ready, listener.local_addr());
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(stream), service_fn(hello))
                    .await;
            });
        }
    });
}

/// Busy and total clock ticks of one CPU (`/proc/stat`).
fn cpu_ticks(cpu: usize) -> io::Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let tag = format!("cpu{cpu} ");
    let line = stat
        .lines()
        .find(|l| l.starts_with(&tag))
        .ok_or_else(|| io::Error::other(format!("no {tag:?} line in /proc/stat")))?;
    // user nice system idle iowait irq softirq steal
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 8 {
        return Err(io::Error::other(format!("short /proc/stat line {line:?}")));
    }
    let busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    Ok((busy, v.iter().sum()))
}

/// utime + stime of thread `tid` of this process, in clock ticks.
fn thread_ticks(tid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))?;
    // The name may hold spaces: count fields after its closing parenthesis.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    // After the name: state(0) ppid(1) ... utime(11) stime(12).
    Ok(n(11) + n(12))
}

/// Wait up to `limit` for `cpus` to be under 10% busy (sampled over 250 ms); false if they
/// never were.
fn wait_quiet(cpus: [usize; 2], limit: Duration) -> io::Result<bool> {
    let start = Instant::now();
    loop {
        let a = [cpu_ticks(cpus[0])?, cpu_ticks(cpus[1])?];
        std::thread::sleep(Duration::from_millis(250));
        let b = [cpu_ticks(cpus[0])?, cpu_ticks(cpus[1])?];
        let quiet = (0..2).all(|i| {
            let busy = b[i].0 - a[i].0;
            let total = (b[i].1 - a[i].1).max(1);
            busy * 10 < total
        });
        if quiet {
            return Ok(true);
        }
        if start.elapsed() >= limit {
            return Ok(false);
        }
    }
}

/// One measured `wrk` run.
#[derive(Clone, Debug)]
struct Run {
    rate: f64,
    p99_us: f64,
    /// CPU time of the server thread, percent of the window.
    server_thread: f64,
    /// Busy share of the server's CPU not spent by the server thread (other processes,
    /// softirqs charged elsewhere), percent.
    others: f64,
    /// Busy share of wrk's CPU, percent.
    load_busy: f64,
}

impl Run {
    /// Requests per second of server-thread CPU time.
    fn per_cpu_second(&self) -> f64 {
        self.rate / (self.server_thread / 100.0).max(1e-9)
    }
}

/// `wrk` pinned to `load_cpu` against `addr` for `secs`; its output.
fn wrk(
    addr: SocketAddr,
    load_cpu: usize,
    conns: usize,
    secs: u64,
    script: Option<&Path>,
) -> Result<String, String> {
    let mut cmd = Command::new("taskset");
    cmd.arg("-c")
        .arg(load_cpu.to_string())
        .args(["wrk", "-t1", "--latency"])
        .arg(format!("-c{conns}"))
        .arg(format!("-d{secs}s"));
    if let Some(script) = script {
        cmd.arg("-s").arg(script);
    }
    let out = cmd
        .arg(format!("http://{addr}/"))
        .output()
        .map_err(|e| format!("running taskset/wrk: {e} (apt-get install wrk util-linux)"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "wrk failed ({}): {}{}",
            out.status,
            text,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(text)
}

/// A wrk Lua script that sends `depth` pipelined `GET /` per write, in a temporary file
/// removed on drop.
struct PipelineScript(PathBuf);

impl PipelineScript {
    fn new(depth: usize) -> io::Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "ringleader-http-bench-{}-{depth}.lua",
            std::process::id()
        ));
        let lua = format!(
            "init = function(args)\n  local r = {{}}\n  for i = 1, {depth} do r[i] = \
             wrk.format(nil, \"/\") end\n  req = table.concat(r)\nend\n\
             request = function() return req end\n"
        );
        std::fs::write(&path, lua)?;
        Ok(PipelineScript(path))
    }
}

impl Drop for PipelineScript {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `Requests/sec:` and the `99%` latency (in microseconds) from wrk's output.
fn parse_wrk(text: &str) -> Result<(f64, f64), String> {
    let rate = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no Requests/sec in wrk's output:\n{text}"))?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .and_then(|v| duration_us(v.trim()))
        .unwrap_or(f64::NAN);
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        return Err(format!("wrk saw errors:\n{text}"));
    }
    Ok((rate, p99))
}

/// wrk's `123.45us` / `1.23ms` / `1.00s` in microseconds.
fn duration_us(v: &str) -> Option<f64> {
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|n| n * scale)
}

/// A running server: its address and its thread's id.
#[derive(Clone, Copy, Debug)]
struct Server {
    addr: SocketAddr,
    tid: u32,
}

fn one_run(
    server: Server,
    args: &Args,
    cpus: (usize, usize),
    script: Option<&Path>,
) -> Result<Run, String> {
    if args.quiet_wait > 0
        && !wait_quiet([cpus.0, cpus.1], Duration::from_secs(args.quiet_wait)).unwrap_or(true)
    {
        eprintln!("http: the CPUs are busy with other work; running anyway");
    }
    wrk(server.addr, cpus.1, args.conns, args.warmup, script)?;
    let proc_err = |e: io::Error| format!("reading /proc: {e}");
    let sample = || -> Result<_, String> {
        Ok((
            cpu_ticks(cpus.0).map_err(proc_err)?,
            cpu_ticks(cpus.1).map_err(proc_err)?,
            thread_ticks(server.tid).map_err(proc_err)?,
        ))
    };
    let (s0, l0, t0) = sample()?;
    let text = wrk(server.addr, cpus.1, args.conns, args.secs, script)?;
    let (s1, l1, t1) = sample()?;
    let window = ((s1.1 - s0.1) as f64).max(1.0);
    let server_thread = 100.0 * (t1 - t0) as f64 / window;
    let server_busy = 100.0 * (s1.0 - s0.0) as f64 / window;
    let (rate, p99_us) = parse_wrk(&text)?;
    Ok(Run {
        rate,
        p99_us,
        server_thread,
        others: (server_busy - server_thread).max(0.0),
        load_busy: 100.0 * (l1.0 - l0.0) as f64 / ((l1.1 - l0.1) as f64).max(1.0),
    })
}
/// A p99 in microseconds, or `-` when wrk has none (it reports 0 with pipelining, whose
/// latencies it does not track per request).
fn p99_cell(us: f64) -> String {
    if us.is_finite() && us > 0.0 {
        format!("{us:.0}")
    } else {
        "-".to_owned()
    }
}

/// (median, min, max).
fn spread(v: impl Iterator<Item = f64>) -> (f64, f64, f64) {
    let mut v: Vec<f64> = v.collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (median, v[0], v[n - 1])
}

fn run(args: &Args) -> Result<(), String> {
    let allowed = pin::allowed_cpus().map_err(|e| format!("sched_getaffinity: {e}"))?;
    let server_cpu = args.server_cpu.or(allowed.first().copied()).unwrap_or(0);
    let load_cpu = args
        .load_cpu
        .or(allowed.iter().copied().find(|&c| c != server_cpu))
        .unwrap_or(server_cpu);
    if load_cpu == server_cpu {
        eprintln!("http: warning: the servers and wrk share CPU {server_cpu}");
    }
    let names = ["ringleader+hyper", "tokio-ct+hyper"];
    let mut servers = Vec::new();
    for (name, serve) in names
        .iter()
        .zip([serve_ringleader as fn(Ready), serve_tokio])
    {
        let (tx, rx) = mpsc::channel();
        server_thread(name, server_cpu, tx, serve);
        let (addr, tid) = rx
            .recv()
            .map_err(|_| format!("{name}: the server thread died"))?
            .map_err(|e| format!("{name}: {e}"))?;
        servers.push(Server { addr, tid });
    }
    let started = Instant::now();
    println!(
        "http: hyper 1.x HTTP/1.1 `hello`, keep-alive; both servers on CPU {server_cpu}, wrk \
         (1 thread, {} connections) on CPU {load_cpu}; {} s measured after {} s warm-up; {} \
         run(s) per server and depth, alternating",
        args.conns, args.secs, args.warmup, args.runs
    );
    let mut below = false;
    for &depth in &args.pipelines {
        let ratio = one_depth(args, &names, &servers, (server_cpu, load_cpu), depth)?;
        below |= ratio < 1.1;
    }
    println!(
        "\ngoal: ringleader / tokio >= 1.10x{}; took {:.0} s",
        if below {
            " -- not met at every depth"
        } else {
            " -- met"
        },
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The runs and table of one pipelining depth; the req/s ratio ringleader / tokio.
fn one_depth(
    args: &Args,
    names: &[&str; 2],
    servers: &[Server],
    cpus: (usize, usize),
    depth: usize,
) -> Result<f64, String> {
    let script = match depth {
        1 => None,
        d => Some(PipelineScript::new(d).map_err(|e| format!("writing the wrk script: {e}"))?),
    };
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); names.len()];
    for r in 0..args.runs {
        for (i, name) in names.iter().enumerate() {
            let run = one_run(
                servers[i],
                args,
                cpus,
                script.as_ref().map(|s| s.0.as_path()),
            )
            .map_err(|e| format!("{name}: {e}"))?;
            eprintln!(
                "http: depth {depth:>2} run {}/{} {name:<17} {:>9.0} req/s  p99 {:>7.0} us  \
                 server thread CPU {:>3.0}%  others {:>3.0}%  wrk CPU {:>3.0}%",
                r + 1,
                args.runs,
                run.rate,
                run.p99_us,
                run.server_thread,
                run.others,
                run.load_busy
            );
            runs[i].push(run);
        }
    }
    let base = spread(runs[1].iter().map(|r| r.rate)).0;
    let base_eff = spread(runs[1].iter().map(Run::per_cpu_second)).0;
    let mut t = Table::new([
        "server",
        "req/s median [min .. max]",
        "p99 us (median)",
        "server thread CPU %",
        "others % (max)",
        "wrk CPU %",
        "req per server-CPU-s",
        "req/s vs tokio",
        "per CPU-s vs tokio",
    ]);
    for (name, rs) in names.iter().zip(&runs) {
        let (m, lo, hi) = spread(rs.iter().map(|r| r.rate));
        let eff = spread(rs.iter().map(Run::per_cpu_second)).0;
        t.row([
            name.to_string(),
            format!("{} [{} .. {}]", si(m), si(lo), si(hi)),
            p99_cell(spread(rs.iter().map(|r| r.p99_us)).0),
            format!("{:.0}", spread(rs.iter().map(|r| r.server_thread)).0),
            format!("{:.0}", spread(rs.iter().map(|r| r.others)).2),
            format!("{:.0}", spread(rs.iter().map(|r| r.load_busy)).0),
            si(eff),
            ratio(m / base),
            ratio(eff / base_eff),
        ]);
    }
    let pipelined = if depth == 1 {
        "one request in flight per connection".to_owned()
    } else {
        format!("{depth} pipelined requests per write")
    };
    println!("\ndepth {depth} ({pipelined})\n{t}");
    let rl = spread(runs[0].iter().map(|r| r.rate)).0;
    if runs
        .iter()
        .flatten()
        .any(|r| r.load_busy > 95.0 && r.server_thread < 90.0)
    {
        println!(
            "note: wrk's CPU was saturated while a server's was not; the req/s ratio then \
             understates the difference, and the per-CPU-second column is the fairer one"
        );
    }
    Ok(rl / base)
}

fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)) {
        Ok(None) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Some(args)) => match run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("http: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("http: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_output() {
        let text = "Running 1s test @ http://127.0.0.1:1/\n  Latency Distribution\n     50%  \
                    1.00ms\n     99%  250.50us\n  1000 requests in 1.00s, 1.00MB read\n\
                    Requests/sec:  98765.43\nTransfer/sec:      9.00MB\n";
        let (rate, p99) = parse_wrk(text).unwrap();
        assert_eq!(rate, 98765.43);
        assert_eq!(p99, 250.5);
        assert_eq!(duration_us("2.00ms"), Some(2000.0));
        assert_eq!(duration_us("1.50s"), Some(1_500_000.0));
        assert!(parse_wrk("Socket errors: connect 1\nRequests/sec: 1\n").is_err());
    }
}
