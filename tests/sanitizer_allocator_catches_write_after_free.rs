//! The quarantine allocator (tests/support/quarantine.rs) catches a write into freed memory
//! and names the block, the changed byte and where it was freed; a clean run passes.
//!
//! The writes into freed blocks are made the way the bug it hunts makes them: by the kernel,
//! a `read(2)` from a pipe into the dangling address. Each such case runs in a child process
//! (this binary, re-executed for one test), which must abort with the report on stderr.

#[path = "support/quarantine.rs"]
mod quarantine;
#[path = "support/reexec.rs"]
mod reexec;

#[global_allocator]
static ALLOC: quarantine::Quarantine = quarantine::Quarantine;

use std::hint::black_box;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Free a block of `size` bytes and return its address.
fn freed_block(size: usize) -> usize {
    let v: Vec<u8> = black_box(Vec::with_capacity(size));
    assert_eq!(v.capacity(), size);
    let addr = v.as_ptr() as usize;
    drop(v);
    addr
}

/// Let the kernel write `value` at `addr` (which may be freed): a pipe read into it.
fn kernel_writes(addr: usize, value: u8) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two fds pipe2 returns.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 returned two fresh fds that nothing else owns.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: writes one byte from a live local.
    let n = unsafe { libc::write(w.as_raw_fd(), (&value as *const u8).cast(), 1) };
    assert_eq!(n, 1, "write: {}", std::io::Error::last_os_error());
    // SAFETY: Rust code never touches the freed block; the kernel writes it, as in the bug
    // being simulated. The quarantine holds the block (still mapped, owned by the allocator,
    // handed to nobody), so the copy neither faults nor lands in live data.
    let n = unsafe { libc::read(r.as_raw_fd(), black_box(addr) as *mut libc::c_void, 1) };
    assert_eq!(n, 1, "read: {}", std::io::Error::last_os_error());
}

fn assert_report(child: &reexec::Child, size: usize, offset: usize, value: u8) {
    child.assert_aborted();
    let err = child.stderr();
    for want in [
        "==quarantine== WRITE AFTER FREE".to_owned(),
        format!("freed block of size {size} "),
        format!("first changed byte: offset {offset} value {value:#04x}"),
        "freed at:".to_owned(),
    ] {
        assert!(err.contains(&want), "report lacks {want:?}:\n{err}");
    }
    // At least one return address of the free site.
    let frames = err
        .lines()
        .skip_while(|l| !l.contains("freed at:"))
        .filter(|l| l.contains("[0x"))
        .count();
    assert!(frames >= 3, "free-site frames printed:\n{err}");
}

#[test]
fn kernel_write_into_freed_block_is_reported_at_check_all() {
    if reexec::case().is_some() {
        let addr = freed_block(100);
        kernel_writes(addr + 37, 0x42);
        quarantine::check_all();
        unreachable!("check_all returned after a write into a freed block");
    }
    let child = reexec::run(
        "kernel_write_into_freed_block_is_reported_at_check_all",
        "check_all",
        // Deep enough to reach the test's frames in a debug build too.
        &[("RINGLEADER_QUARANTINE_FRAMES", "16")],
    );
    assert_report(&child, 100, 37, 0x42);
    // With binutils installed, the frames resolve to the function that freed the block.
    if std::process::Command::new("addr2line")
        .arg("--version")
        .output()
        .is_ok()
    {
        let named = child.stderr_symbolized();
        assert!(
            named.contains("sanitizer_allocator_catches_write_after_free::freed_block"),
            "frames name the free site:\n{named}"
        );
    }
}

#[test]
fn write_is_reported_when_the_block_leaves_the_quarantine() {
    if reexec::case().is_some() {
        let addr = freed_block(200);
        kernel_writes(addr + 199, 0x07);
        // More frees than the quarantine holds push the block out; it is checked then.
        for i in 0..64 {
            drop(black_box(vec![i as u8; 24]));
        }
        unreachable!("the written block left the quarantine unchecked");
    }
    let child = reexec::run(
        "write_is_reported_when_the_block_leaves_the_quarantine",
        "evict",
        &[("RINGLEADER_QUARANTINE_FREES", "16")],
    );
    assert_report(&child, 200, 199, 0x07);
}

#[test]
fn large_block_is_checked_at_its_end() {
    const SIZE: usize = 3 << 20;
    if reexec::case().is_some() {
        let addr = freed_block(SIZE);
        kernel_writes(addr + SIZE - 1, 0x99);
        quarantine::check_all();
        unreachable!("check_all missed the last byte of a large block");
    }
    let child = reexec::run("large_block_is_checked_at_its_end", "large", &[]);
    assert_report(&child, SIZE, SIZE - 1, 0x99);
}

#[test]
fn write_is_reported_at_exit() {
    if reexec::case().is_some() {
        let addr = freed_block(64);
        kernel_writes(addr, 0x01);
        // The test returns and passes; the process's exit check must catch the write.
        return;
    }
    let child = reexec::run("write_is_reported_at_exit", "exit", &[]);
    assert!(
        child.stdout().contains("1 passed"),
        "the child's test itself passed:\n{}",
        child.stdout()
    );
    assert_report(&child, 64, 0, 0x01);
}

#[test]
fn clean_run_passes() {
    let before = quarantine::checks();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let mut keep = Vec::new();
                for i in 0..20_000usize {
                    let size = 1 + (i * 7919 + t) % 4096;
                    let mut v = vec![t as u8; size];
                    v.push(1); // a realloc: the old block is freed into the quarantine
                    if i % 3 == 0 {
                        keep.push(v);
                    }
                    if keep.len() > 100 {
                        keep.clear();
                    }
                }
                drop(black_box(vec![0u8; 3 << 20])); // a large block, checked at both ends
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    quarantine::check_all();
    assert!(quarantine::enabled(), "the quarantine is on by default");
    assert!(quarantine::held() > 0, "freed blocks are held");
    assert!(
        quarantine::checks() > before + 1000,
        "blocks were checked: {} -> {}",
        before,
        quarantine::checks()
    );
}
