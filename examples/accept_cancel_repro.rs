//! A raw reproducer of a Linux io_uring behaviour seen on 6.18 with `DEFER_TASKRUN`: an
//! accept armed in the same `io_uring_enter` as the `ASYNC_CANCEL` of an earlier accept on
//! the same listener misses the next connection (docs/kernel-notes.md). Uses the io-uring
//! crate only, no ringleader, so it can go with a report upstream.
//!
//! `cargo run --release --example accept_cancel_repro [-- --no-defer-taskrun] [--multishot]
//! [--separate-enter] [--runs N]`

#[path = "common/flags.rs"]
mod flags;

use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use io_uring::{IoUring, opcode, types};

const USAGE: &str = "usage: accept_cancel_repro [--no-defer-taskrun] [--multishot] \
[--separate-enter] [--runs N]

Arms an accept on a loopback listener, then pushes the ASYNC_CANCEL of that accept and a new
accept on the same listener, submits, connects a client and waits up to 2 s for the new
accept's CQE. Prints whether each run saw the client.

  --no-defer-taskrun   set the ring up without IORING_SETUP_DEFER_TASKRUN
  --multishot          use multishot accepts
  --separate-enter     submit the cancel in its own io_uring_enter (with GETEVENTS, so that
                       deferred task work runs) before the new accept
  --runs N             repeat N times (default 3)
  -h, --help           this text";

fn main() {
    let mut defer = true;
    let mut multishot = false;
    let mut separate = false;
    let mut runs = 3;
    let mut args = flags::expand(std::env::args().skip(1)).into_iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--no-defer-taskrun" => defer = false,
            "--multishot" => multishot = true,
            "--separate-enter" => separate = true,
            "--runs" => {
                let v = args.next().unwrap_or_default();
                runs = match v.parse::<u32>() {
                    Ok(n) if n > 0 => n,
                    _ => {
                        eprintln!(
                            "accept_cancel_repro: --runs {v:?}: expected a number above 0\n{USAGE}"
                        );
                        std::process::exit(2);
                    }
                };
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => {
                eprintln!("accept_cancel_repro: unknown argument {other:?}\n\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    let mut missed = 0;
    for run in 0..runs {
        let seen = once(defer, multishot, separate);
        println!(
            "run {run}: defer_taskrun={defer} multishot={multishot} separate_enter={separate}: {}",
            if seen {
                "client accepted"
            } else {
                "client MISSED"
            }
        );
        missed += usize::from(!seen);
    }
    println!("{missed} of {runs} runs missed the client");
}

fn accept_entry(fd: i32, multishot: bool, user_data: u64) -> io_uring::squeue::Entry {
    let e = if multishot {
        opcode::AcceptMulti::new(types::Fd(fd)).build()
    } else {
        opcode::Accept::new(types::Fd(fd), std::ptr::null_mut(), std::ptr::null_mut()).build()
    };
    e.user_data(user_data)
}

fn once(defer: bool, multishot: bool, separate: bool) -> bool {
    let mut b = IoUring::<io_uring::squeue::Entry, io_uring::cqueue::Entry>::builder();
    b.setup_single_issuer().setup_coop_taskrun();
    if defer {
        b.setup_defer_taskrun();
    }
    let mut ring = b.build(64).expect("io_uring setup");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let fd = l.as_raw_fd();
    // SAFETY: accept with null address pointers writes no memory of ours.
    unsafe { ring.submission().push(&accept_entry(fd, multishot, 1)) }.unwrap();
    ring.submit().unwrap();
    let cancel = opcode::AsyncCancel::new(1).build().user_data(3);
    // SAFETY: ASYNC_CANCEL carries no pointer.
    unsafe { ring.submission().push(&cancel) }.unwrap();
    if separate {
        // The cancel in its own enter, with GETEVENTS: under DEFER_TASKRUN the cancelled
        // accept's task work (which takes its poll entry off the listener) runs only then.
        // SAFETY: no argument pointer is passed.
        unsafe {
            ring.submitter()
                .enter::<libc::sigset_t>(1, 0, 1 /* IORING_ENTER_GETEVENTS */, None)
        }
        .unwrap();
    }
    // SAFETY: as above.
    unsafe { ring.submission().push(&accept_entry(fd, multishot, 2)) }.unwrap();
    ring.submit().unwrap();
    let _client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let ts = types::Timespec::new().nsec(50_000_000);
        let args = types::SubmitArgs::new().timespec(&ts);
        let _ = ring.submitter().submit_with_args(1, &args);
        for cqe in ring.completion() {
            if cqe.user_data() == 2 && cqe.result() >= 0 {
                return true;
            }
        }
    }
    false
}
