//! `write_floor`: what a 256 KiB write received from a loopback socket costs the receiving
//! CPU with no server around it: a blocking loop of `recv` (`MSG_WAITALL`) + `pwrite` into the
//! page cache of a file, or of `splice` socket → pipe → file. It bounds what any NBD server
//! can reach on `bench nbd`'s seq-write-256k (the same two copies or the same splices, with
//! no headers, replies, polling or wake-ups), so it tells how much of a server's CPU per
//! write is its own.
//!
//! Run from `bench/`: `cargo run --release --bin write_floor -- --help`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use ringleader_bench::pin::{allowed_cpus, pin_to_cpu};

const USAGE: &str = "\
usage: write_floor [--image PATH] [--size BYTES] [--count N] [--runs R] [--mode copy|splice|both]

Receives COUNT writes of SIZE bytes (default 256 KiB x 20000) from a sender thread over
loopback TCP and writes each into the page cache of IMAGE (default target/write-floor.img,
1 GiB, offsets wrap) from a blocking loop: `copy` = recv(MSG_WAITALL) + pwrite, `splice` =
splice socket -> pipe -> file. The receiver runs on the first allowed CPU, the sender on the
second. Prints the receiver thread's CPU time (utime + stime) per write, median of the runs:
the floor under any NBD server's CPU per write on `nbd --workloads seq-write-256k`.

  -h, --help   this text";

const IMAGE_SIZE: u64 = 1 << 30;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Copy,
    Splice,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("write_floor: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut image = PathBuf::from("target/write-floor.img");
    let (mut size, mut count, mut runs) = (256usize << 10, 20_000u64, 3usize);
    let mut modes = vec![Mode::Copy, Mode::Splice];
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or(format!("{flag} needs a value"))
        };
        let num = |v: String| v.parse::<u64>().map_err(|e| format!("{flag} {v:?}: {e}"));
        match flag.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            "--image" => image = value()?.into(),
            "--size" => size = num(value()?)? as usize,
            "--count" => count = num(value()?)?,
            "--runs" => runs = num(value()?)?.max(1) as usize,
            "--mode" => {
                modes = match value()?.as_str() {
                    "copy" => vec![Mode::Copy],
                    "splice" => vec![Mode::Splice],
                    "both" => vec![Mode::Copy, Mode::Splice],
                    m => return Err(format!("--mode {m:?}: expected copy, splice or both")),
                }
            }
            _ => return Err(format!("unknown argument {arg:?}\n{USAGE}")),
        }
    }
    if size == 0 || size as u64 > IMAGE_SIZE || !(size as u64).is_power_of_two() {
        return Err(format!("--size {size}: a power of two up to 1 GiB"));
    }
    let cpus = allowed_cpus().map_err(|e| format!("allowed CPUs: {e}"))?;
    let (rx_cpu, tx_cpu) = (cpus[0], *cpus.get(1).unwrap_or(&cpus[0]));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&image)
        .map_err(|e| format!("{}: {e}", image.display()))?;
    file.set_len(IMAGE_SIZE)
        .map_err(|e| format!("{}: {e}", image.display()))?;
    for mode in modes {
        let mut per_write = Vec::new();
        // One unmeasured pass first: the image's pages are allocated and cached by then.
        for run in 0..=runs {
            let us = one_run(&file, mode, size, count, rx_cpu, tx_cpu)
                .map_err(|e| format!("run {run}: {e}"))?;
            if run > 0 {
                per_write.push(us);
            }
        }
        per_write.sort_by(f64::total_cmp);
        let name = if mode == Mode::Copy {
            "recv + pwrite"
        } else {
            "splice socket -> pipe -> file"
        };
        println!(
            "{name:<30} {:>8.2} us CPU per {} KiB write (median of {runs}; runs {per_write:.2?})",
            per_write[per_write.len() / 2],
            size >> 10
        );
    }
    Ok(())
}

/// One run: µs of the receiving thread's CPU per write.
fn one_run(
    file: &File,
    mode: Mode,
    size: usize,
    count: u64,
    rx_cpu: usize,
    tx_cpu: usize,
) -> io::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let sender = std::thread::spawn(move || -> io::Result<()> {
        pin_to_cpu(tx_cpu)?;
        let mut s = TcpStream::connect(addr)?;
        let chunk = vec![0x5au8; size];
        for _ in 0..count {
            s.write_all(&chunk)?;
        }
        // Wait for the receiver's byte: it has taken everything.
        s.read_exact(&mut [0u8; 1])
    });
    pin_to_cpu(rx_cpu)?;
    let (mut sock, _) = listener.accept()?;
    let mut buf = vec![0u8; size];
    let pipe = if mode == Mode::Splice {
        Some(Pipe::new(size)?)
    } else {
        None
    };
    let cpu0 = thread_cpu_us();
    for i in 0..count {
        let off = (i * size as u64) % IMAGE_SIZE;
        match &pipe {
            None => {
                sock.read_exact(&mut buf)?;
                file.write_all_at(&buf, off)?;
            }
            Some(p) => p.socket_to_file(&sock, file, off, size)?,
        }
    }
    let cpu = thread_cpu_us() - cpu0;
    sock.write_all(&[1])?;
    sender.join().expect("sender panicked")?;
    Ok(cpu / count as f64)
}

/// The calling thread's utime + stime, µs.
fn thread_cpu_us() -> f64 {
    // SAFETY: zeroed is a valid `rusage` (plain integers).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid out-pointer for the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    assert_eq!(rc, 0, "getrusage(RUSAGE_THREAD)");
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

/// A pipe big enough for one write.
struct Pipe {
    rd: File,
    wr: File,
}

impl Pipe {
    fn new(size: usize) -> io::Result<Pipe> {
        let mut fds = [0; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded: both fds are open and owned by nobody else.
        let (rd, wr) = unsafe {
            use std::os::fd::FromRawFd;
            (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1]))
        };
        // SAFETY: F_SETPIPE_SZ on an open pipe fd; a failure is reported, not UB.
        if unsafe { libc::fcntl(wr.as_raw_fd(), libc::F_SETPIPE_SZ, size as libc::c_int) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Pipe { rd, wr })
    }

    /// Move `size` bytes from the socket into the pipe, then from the pipe to `file` at `off`.
    fn socket_to_file(
        &self,
        sock: &TcpStream,
        file: &File,
        off: u64,
        size: usize,
    ) -> io::Result<()> {
        let mut moved = 0;
        while moved < size {
            // SAFETY: plain fds owned by live objects; null offsets (socket, pipe).
            let n = unsafe {
                libc::splice(
                    sock.as_raw_fd(),
                    std::ptr::null_mut(),
                    self.wr.as_raw_fd(),
                    std::ptr::null_mut(),
                    size - moved,
                    libc::SPLICE_F_MOVE,
                )
            };
            moved += check(n, "splice from the socket")?;
        }
        let mut done = 0;
        while done < size {
            let mut at = (off + done as u64) as libc::loff_t;
            // SAFETY: plain fds owned by live objects; `at` outlives the call.
            let n = unsafe {
                libc::splice(
                    self.rd.as_raw_fd(),
                    std::ptr::null_mut(),
                    file.as_raw_fd(),
                    &mut at,
                    size - done,
                    libc::SPLICE_F_MOVE,
                )
            };
            done += check(n, "splice to the file")?;
        }
        Ok(())
    }
}

fn check(n: isize, what: &str) -> io::Result<usize> {
    match n {
        n if n > 0 => Ok(n as usize),
        0 => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{what}: end of stream"),
        )),
        _ => {
            let e = io::Error::last_os_error();
            Err(io::Error::new(e.kind(), format!("{what}: {e}")))
        }
    }
}
