//! The workloads: fio on one file of the mount, and a metadata workload (untar a
//! 10,000-file git repository, then `git status` in it).
//!
//! fio runs `psync` (one request in flight per job) with `direct=1` on every server: the
//! client's `O_DIRECT` keeps the FUSE mount's own page cache out of the way, so every read
//! and write is a request to the server (buffered reads would be served from the mount's
//! page cache after the first touch, measuring the kernel and not the server). The servers
//! open the backing file without `O_DIRECT` (ringleader's and fuser_passthrough strip it;
//! the backing file is on tmpfs, where `O_DIRECT` is accepted and served from memory), so
//! for every server, `nofuse` included, the data comes from and goes to memory.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::sampler::Sampler;
use ringleader_bench::procfs::{proc_ticks, ticks_per_sec};

/// The size of the file fio works on.
pub const FILE_SIZE: &str = "512M";
/// Files in the metadata tree (plus its `.git`): `DIRS` directories of `FILES_PER_DIR`.
pub const DIRS: usize = 100;
pub const FILES_PER_DIR: usize = 100;

/// A workload the bench can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// fio: block size, write, random, jobs.
    Fio {
        name: &'static str,
        bs: &'static str,
        write: bool,
        random: bool,
        jobs: u32,
    },
    /// Untar the tree, then `git status` twice; three rows.
    Metadata,
}

impl Workload {
    pub const ALL: [Workload; 7] = [
        Workload::fio("rand-read-4k-j1", "4k", false, true, 1),
        Workload::fio("rand-read-4k-j2", "4k", false, true, 2),
        Workload::fio("rand-write-4k-j1", "4k", true, true, 1),
        Workload::fio("rand-write-4k-j2", "4k", true, true, 2),
        Workload::fio("seq-read-1m", "1m", false, false, 1),
        Workload::fio("seq-write-1m", "1m", true, false, 1),
        Workload::Metadata,
    ];

    const fn fio(
        name: &'static str,
        bs: &'static str,
        write: bool,
        random: bool,
        jobs: u32,
    ) -> Self {
        Workload::Fio {
            name,
            bs,
            write,
            random,
            jobs,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Workload::Fio { name, .. } => name,
            Workload::Metadata => "metadata",
        }
    }

    pub fn from_name(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == name)
    }
}

/// One measured row of one run.
#[derive(Clone, Debug)]
pub struct Measure {
    /// The row: the workload's name, or `untar`, `git-status-1st`, `git-status`.
    pub row: &'static str,
    /// Operations done: fio's I/Os, or the tree's files for the metadata rows.
    pub ops: f64,
    /// Seconds the operations took.
    pub secs: f64,
    /// CPU seconds of the server over those seconds.
    pub server_cpu: f64,
}

/// The fio workload `w` in `dir` (on `file`, `FILE_SIZE` long), fio on `cpu`, the server's
/// CPU read from `server_pid` (0: none).
pub fn run_fio(
    w: Workload,
    dir: &Path,
    runtime: Duration,
    ramp: Duration,
    cpu: Option<usize>,
    server_pid: u32,
    cpus: &[usize],
) -> Result<Measure, String> {
    let Workload::Fio {
        name,
        bs,
        write,
        random,
        jobs,
    } = w
    else {
        return Err("not a fio workload".into());
    };
    let rw = match (random, write) {
        (true, false) => "randread",
        (true, true) => "randwrite",
        (false, false) => "read",
        (false, true) => "write",
    };
    let mut cmd = Command::new("fio");
    cmd.args([
        "--name=fuse".to_owned(),
        format!("--directory={}", dir.display()),
        "--filename=data".to_owned(),
        format!("--size={FILE_SIZE}"),
        format!("--rw={rw}"),
        format!("--bs={bs}"),
        "--ioengine=psync".to_owned(),
        "--direct=1".to_owned(),
        format!("--numjobs={jobs}"),
        "--group_reporting".to_owned(),
        "--time_based".to_owned(),
        format!("--runtime={}ms", runtime.as_millis()),
        format!("--ramp_time={}ms", ramp.as_millis()),
        "--fallocate=none".to_owned(),
        "--invalidate=0".to_owned(),
        "--thread".to_owned(),
        "--output-format=json".to_owned(),
    ]);
    if random {
        cmd.args(["--norandommap", "--randrepeat=0"]);
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(cpu) = cpu {
        ringleader_bench::pin::pin_child(&mut cmd, cpu).map_err(|e| format!("pinning: {e}"))?;
    }
    let child = cmd.spawn().map_err(|e| format!("starting fio: {e}"))?;
    let sampler = Sampler::start(server_pid, child.id(), cpus);
    let out = child.wait_with_output();
    let samples = sampler.stop();
    let out = out.map_err(|e| format!("waiting for fio: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "fio failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let (ios, secs, end_ms) = parse(&stdout, write)?;
    let d = samples
        .between(end_ms - secs * 1e3, end_ms)
        .ok_or("no CPU samples")?;
    Ok(Measure {
        row: name,
        ops: ios,
        secs,
        server_cpu: d.server / ticks_per_sec(),
    })
}

/// `(ios, seconds, end in ms since the epoch)` of fio's JSON report (jobs grouped).
fn parse(stdout: &str, write: bool) -> Result<(f64, f64, f64), String> {
    let start = stdout.find('{').ok_or("no JSON report from fio")?;
    let v: Value =
        serde_json::from_str(&stdout[start..]).map_err(|e| format!("fio's JSON report: {e}"))?;
    let job = v
        .get("jobs")
        .and_then(|j| j.get(0))
        .ok_or("fio's report has no job")?;
    let error = job.get("error").and_then(Value::as_i64).unwrap_or(0);
    if error != 0 {
        return Err(format!("fio's job failed with errno {error}"));
    }
    let dir = job
        .get(if write { "write" } else { "read" })
        .ok_or("fio's report has no read/write section")?;
    let num = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("fio's report has no {key:?}"))
    };
    let ios = num(dir, "total_ios")?;
    let runtime_ms = num(dir, "runtime")?;
    if ios <= 0.0 || runtime_ms <= 0.0 {
        return Err("fio did no I/O in its window".into());
    }
    Ok((ios, runtime_ms / 1e3, num(&v, "timestamp_ms")?))
}

/// Write the file fio works on, `FILE_SIZE` of pseudo-random bytes, in `dir`.
pub fn make_data(dir: &Path) -> Result<(), String> {
    let status = Command::new("fio")
        .args([
            "--name=layout".to_owned(),
            format!("--directory={}", dir.display()),
            "--filename=data".to_owned(),
            format!("--size={FILE_SIZE}"),
            "--rw=write".to_owned(),
            "--bs=1m".to_owned(),
            "--refill_buffers".to_owned(),
        ])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("fio: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("laying out the data file: fio {status}"))
    }
}

fn sh(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Build `tar` (a tarball of a git repository of `DIRS * FILES_PER_DIR` small text files,
/// committed and packed) using `scratch` as the work directory.
pub fn make_tree(scratch: &Path, tar: &Path) -> Result<(), String> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for d in 0..DIRS {
        let dir = scratch.join(format!("d{d:03}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for f in 0..FILES_PER_DIR {
            // xorshift: sizes 256 B .. 4 KiB of printable text.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = 256 + (seed % 3840) as usize;
            let text: Vec<u8> = (0..len)
                .map(|i| b'a' + ((seed >> (i % 56)) as u8 ^ i as u8) % 26)
                .collect();
            let path = dir.join(format!("f{f:03}.txt"));
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let git = || {
        let mut c = Command::new("git");
        c.arg("-C").arg(scratch).args([
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@localhost",
            // No detached auto-gc or maintenance still writing to .git while tar reads it.
            "-c",
            "gc.auto=0",
            "-c",
            "maintenance.auto=false",
        ]);
        c
    };
    sh(git().args(["init", "-q"]))?;
    sh(git().args(["add", "-A"]))?;
    sh(git().args(["commit", "-q", "-m", "tree"]))?;
    // Packed, as a clone is: 10,000 loose objects would double the inodes the tree brings
    // (ringleader's server holds an fd per inode the kernel knows; see bench/README.md).
    sh(git().args(["repack", "-a", "-d", "-q"]))?;
    sh(git().args(["prune-packed"]))?;
    sh(Command::new("tar")
        .arg("cf")
        .arg(tar)
        .arg("-C")
        .arg(scratch)
        .arg("."))
}

/// Untar `tar` into `dir/tree`, then `git status` there twice (the first re-reads every
/// file: the inode numbers in git's index are the build's); each timed, with the server's
/// CPU time (`server_pid`, 0: none) over it. The commands run on `cpu`.
pub fn run_metadata(
    tar: &Path,
    dir: &Path,
    cpu: Option<usize>,
    server_pid: u32,
) -> Result<Vec<Measure>, String> {
    let tree = dir.join("tree");
    std::fs::create_dir(&tree).map_err(|e| format!("{}: {e}", tree.display()))?;
    let files = (DIRS * FILES_PER_DIR) as f64;
    let timed = |row: &'static str, cmd: &mut Command| -> Result<Measure, String> {
        if let Some(cpu) = cpu {
            ringleader_bench::pin::pin_child(cmd, cpu).map_err(|e| format!("pinning: {e}"))?;
        }
        let t0 = proc_ticks(server_pid).unwrap_or(0);
        let start = Instant::now();
        sh(cmd)?;
        let secs = start.elapsed().as_secs_f64();
        let t1 = proc_ticks(server_pid).unwrap_or(0);
        Ok(Measure {
            row,
            ops: files,
            secs,
            server_cpu: t1.saturating_sub(t0) as f64 / ticks_per_sec(),
        })
    };
    let untar = timed(
        "untar",
        Command::new("tar").arg("xf").arg(tar).arg("-C").arg(&tree),
    )?;
    let status = || {
        let mut c = Command::new("git");
        c.arg("-C").arg(&tree).args(["status", "--porcelain"]);
        c
    };
    let first = timed("git-status-1st", &mut status())?;
    let second = timed("git-status", &mut status())?;
    Ok(vec![untar, first, second])
}
