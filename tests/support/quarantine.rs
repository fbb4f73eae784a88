//! A quarantine allocator for test binaries: catches writes into freed memory, such as the
//! kernel finishing an op whose buffer was freed while its SQE was still in flight.
//!
//! # Model
//!
//! [`Quarantine`] wraps [`System`]. Allocation goes straight through. A freed block is not
//! returned to `System` at once: it is filled with [`POISON`], remembered together with a
//! few return addresses of the code that freed it, and held in a FIFO of the most recent
//! frees. A block leaves the FIFO (and only then goes back to `System`) when the FIFO holds
//! more than `RINGLEADER_QUARANTINE_FREES` blocks (default 8192, at most 32767; `0` turns the
//! quarantine off) or more than `RINGLEADER_QUARANTINE_MIB` MiB (default 64). Its poison is
//! verified when it leaves, at every [`check_all`], and at process exit (`atexit`). A changed
//! byte aborts the process after a report on stderr that names the block's size, the offset
//! and value of the first changed byte, and the return addresses of its free
//! (`RINGLEADER_QUARANTINE_FRAMES` of them, default 6, at most 16: unwinding at every free is
//! most of the quarantine's cost, so raise it to see deeper when chasing a report).
//!
//! # Invariants
//!
//! - **Nothing here allocates while it holds the lock or reports.** The report is formatted
//!   into a stack buffer and written with `libc::write`; the free-site frames are printed with
//!   `backtrace_symbols_fd`, which does not call `malloc`.
//! - **Re-entrancy goes to `System`.** A thread-local flag is set for the whole of a `dealloc`:
//!   anything that allocates or frees meanwhile (glibc's `backtrace` loads libgcc on first
//!   use) is served by `System` directly, so the lock is never taken twice by one thread.
//!   Every block came from `System`, so freeing it there is always right.
//! - **A block in the FIFO is fully poisoned and owned by the FIFO**: it is poisoned before it
//!   is pushed, and checked and returned to `System` by whoever pops it, after the pop.
//!
//! # Limits
//!
//! A block larger than 1 MiB is poisoned and checked only in its first and last 512 KiB. A
//! write that lands after the block left the FIFO (more frees than the FIFO holds in
//! between) is not seen. `realloc` is alloc + copy + free, so resized-away blocks are
//! quarantined too. Frames are raw return addresses (`binary(+0x...)` lines): symbolise them
//! with `addr2line -f -C -i -e <binary> 0x...`.
//!
//! Use it in a test binary with:
//!
//! ```ignore
//! #[path = "support/quarantine.rs"]
//! mod quarantine;
//! #[global_allocator]
//! static ALLOC: quarantine::Quarantine = quarantine::Quarantine;
//! ```
#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, UnsafeCell};
use std::ffi::{CStr, c_int, c_void};
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// The byte every freed block is filled with.
pub const POISON: u8 = 0xF5;

/// Slots of the FIFO (the env var is clamped below it).
const CAPACITY: usize = 1 << 15;
/// Default number of blocks held.
const DEFAULT_FREES: usize = 8192;
/// Default bytes held.
const DEFAULT_MIB: usize = 64;
/// Blocks up to this size are poisoned and checked in full; larger ones at both ends.
const FULL_CHECK: usize = 1 << 20;
/// Most return addresses kept per free (the env var is clamped to it).
const FRAMES: usize = 16;
/// Default return addresses kept per free.
const DEFAULT_FRAMES: usize = 6;

/// The global allocator: `System` with a quarantine of freed blocks (see the module doc).
#[derive(Debug, Clone, Copy, Default)]
pub struct Quarantine;

impl Quarantine {
    /// The allocator (for `static`s that prefer a constructor).
    pub const fn new() -> Self {
        Quarantine
    }
}

/// One freed block, poisoned and waiting.
#[derive(Clone, Copy)]
struct Block {
    ptr: *mut u8,
    size: usize,
    align: usize,
    /// Which free this was (1-based), to tell how long ago it happened.
    serial: u64,
    frames: [*mut c_void; FRAMES],
    nframes: usize,
}

/// All zeroes, so the FIFO's array lands in `.bss` and costs no file size.
const EMPTY: Block = Block {
    ptr: std::ptr::null_mut(),
    size: 0,
    align: 0,
    serial: 0,
    frames: [std::ptr::null_mut(); FRAMES],
    nframes: 0,
};

/// The FIFO, a ring over a fixed array (no allocation, ever).
struct Fifo {
    blocks: [Block; CAPACITY],
    head: usize,
    len: usize,
    bytes: usize,
    serial: u64,
}

struct Shared {
    locked: AtomicBool,
    fifo: UnsafeCell<Fifo>,
}

// SAFETY: `fifo` is only reached through `lock()`, which gives one thread at a time exclusive
// access (an acquire/release spin lock); the raw pointers it holds are plain addresses of
// blocks the FIFO owns.
unsafe impl Sync for Shared {}

static SHARED: Shared = Shared {
    locked: AtomicBool::new(false),
    fifo: UnsafeCell::new(Fifo {
        blocks: [EMPTY; CAPACITY],
        head: 0,
        len: 0,
        bytes: 0,
        serial: 0,
    }),
};

/// `usize::MAX`: not read from the environment yet.
static MAX_FREES: AtomicUsize = AtomicUsize::new(usize::MAX);
static MAX_BYTES: AtomicUsize = AtomicUsize::new(usize::MAX);
static DEPTH: AtomicUsize = AtomicUsize::new(usize::MAX);
static CHECKS: AtomicU64 = AtomicU64::new(0);
static AT_EXIT: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Set while this thread is inside the quarantine's own code.
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// Blocks whose poison has been verified so far (each check of each block counts once).
pub fn checks() -> u64 {
    CHECKS.load(Ordering::Relaxed)
}

/// Blocks held now.
pub fn held() -> usize {
    let fifo = lock();
    fifo.len
}

/// Whether freed blocks are quarantined at all (`RINGLEADER_QUARANTINE_FREES=0` turns it off).
pub fn enabled() -> bool {
    limits().0 > 0
}

/// Verify the poison of every block held now; abort with a report at the first changed byte.
pub fn check_all() {
    let _inside = Inside::enter();
    let fifo = lock();
    for i in 0..fifo.len {
        let block = &fifo.blocks[(fifo.head + i) % CAPACITY];
        // SAFETY: a block in the FIFO is owned by it (not returned to `System`) and was
        // poisoned over `checked_ranges` before it was pushed; we hold the lock, so nobody
        // pops and frees it meanwhile.
        unsafe { verify(block, fifo.serial) };
    }
}

/// Parse a decimal env var without allocating.
fn env_usize(name: &CStr, default: usize) -> usize {
    // SAFETY: `name` is NUL-terminated; `getenv` returns NULL or a NUL-terminated string
    // that stays valid while nobody calls `setenv` (tests set variables only on children).
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        return default;
    }
    // SAFETY: non-null, NUL-terminated (above).
    let s = unsafe { CStr::from_ptr(p) }.to_bytes();
    let mut n: usize = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return default;
        }
        n = n.saturating_mul(10).saturating_add(usize::from(c - b'0'));
    }
    if s.is_empty() { default } else { n }
}

/// Return addresses to keep per free.
fn depth() -> usize {
    let mut depth = DEPTH.load(Ordering::Relaxed);
    if depth == usize::MAX {
        depth = env_usize(c"RINGLEADER_QUARANTINE_FRAMES", DEFAULT_FRAMES).min(FRAMES);
        DEPTH.store(depth, Ordering::Relaxed);
    }
    depth
}

/// (blocks, bytes) the FIFO may hold.
fn limits() -> (usize, usize) {
    let mut frees = MAX_FREES.load(Ordering::Relaxed);
    if frees == usize::MAX {
        // One slot stays free: a block is pushed before the oldest is evicted.
        frees = env_usize(c"RINGLEADER_QUARANTINE_FREES", DEFAULT_FREES).min(CAPACITY - 1);
        MAX_FREES.store(frees, Ordering::Relaxed);
    }
    let mut bytes = MAX_BYTES.load(Ordering::Relaxed);
    if bytes == usize::MAX {
        bytes = env_usize(c"RINGLEADER_QUARANTINE_MIB", DEFAULT_MIB).saturating_mul(1 << 20);
        MAX_BYTES.store(bytes, Ordering::Relaxed);
    }
    (frees, bytes)
}

/// Exclusive access to the FIFO, released on drop.
struct Locked(&'static mut Fifo);

impl std::ops::Deref for Locked {
    type Target = Fifo;
    fn deref(&self) -> &Fifo {
        self.0
    }
}
impl std::ops::DerefMut for Locked {
    fn deref_mut(&mut self) -> &mut Fifo {
        self.0
    }
}
impl Drop for Locked {
    fn drop(&mut self) {
        SHARED.locked.store(false, Ordering::Release);
    }
}

fn lock() -> Locked {
    let mut spins = 0u32;
    while SHARED
        .locked
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        spins += 1;
        if spins % 64 == 0 {
            // SAFETY: `sched_yield` has no preconditions (and does not allocate).
            unsafe { libc::sched_yield() };
        } else {
            std::hint::spin_loop();
        }
    }
    // SAFETY: the compare-exchange above made this thread the lock's only holder until
    // `Locked` is dropped, so this is the only live reference to the FIFO.
    Locked(unsafe { &mut *SHARED.fifo.get() })
}

/// Marks this thread as inside the quarantine; `None` if it already was (re-entry).
struct Inside;

impl Inside {
    fn enter() -> Option<Inside> {
        let was = INSIDE.try_with(|f| f.replace(true)).unwrap_or(true);
        (!was).then_some(Inside)
    }
}
impl Drop for Inside {
    fn drop(&mut self) {
        let _ = INSIDE.try_with(|f| f.set(false));
    }
}

/// The byte ranges of a block that are poisoned and checked: all of it up to `FULL_CHECK`,
/// else its first and last `FULL_CHECK / 2` bytes.
fn checked_ranges(size: usize) -> [(usize, usize); 2] {
    if size <= FULL_CHECK {
        [(0, size), (size, size)]
    } else {
        let half = FULL_CHECK / 2;
        [(0, half), (size - half, size)]
    }
}

/// # Safety
/// `ptr` must be valid for writes of `size` bytes.
unsafe fn poison(ptr: *mut u8, size: usize) {
    for (start, end) in checked_ranges(size) {
        // SAFETY: `start..end` lies within the caller's `size` valid bytes.
        unsafe { std::ptr::write_bytes(ptr.add(start), POISON, end - start) };
    }
}

/// # Safety
/// `block.ptr` must be valid for reads of `block.size` bytes, poisoned by [`poison`].
unsafe fn verify(block: &Block, serial_now: u64) {
    CHECKS.fetch_add(1, Ordering::Relaxed);
    for (start, end) in checked_ranges(block.size) {
        // SAFETY: the range lies within the block, which the caller guarantees readable.
        let bytes = unsafe { std::slice::from_raw_parts(block.ptr.add(start), end - start) };
        for (c, chunk) in bytes.chunks(256).enumerate() {
            // Branch-free over the chunk (vectorises); locate the byte only on a mismatch.
            if chunk.iter().fold(0u8, |acc, &b| acc | (b ^ POISON)) != 0 {
                let at = chunk
                    .iter()
                    .position(|&b| b != POISON)
                    .expect("a changed byte");
                let changed = bytes.iter().filter(|&&b| b != POISON).count();
                report(block, start + c * 256 + at, chunk[at], changed, serial_now);
            }
        }
    }
}

/// A fixed buffer to format into without allocating.
struct StackBuf {
    buf: [u8; 1024],
    len: usize,
}

impl fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

fn write_stderr(bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        // SAFETY: `rest` is valid for `rest.len()` bytes for the duration of the call.
        let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            return;
        }
        rest = &rest[n as usize..];
    }
}

/// Report a changed byte and abort. Allocates nothing.
#[cold]
fn report(block: &Block, offset: usize, value: u8, changed: usize, serial_now: u64) -> ! {
    let mut out = StackBuf {
        buf: [0; 1024],
        len: 0,
    };
    let checked = checked_ranges(block.size);
    let _ = write!(
        out,
        "\n==quarantine== WRITE AFTER FREE: a freed block of size {size} (align {align}) at \
         {ptr:p} was modified while in quarantine\n\
         ==quarantine==   first changed byte: offset {offset} value {value:#04x} (poison \
         {POISON:#04x}); {changed} of the checked bytes changed (checked: {a0}..{a1}{more})\n\
         ==quarantine==   freed {ago} frees ago; freed at:\n",
        size = block.size,
        align = block.align,
        ptr = block.ptr,
        a0 = checked[0].0,
        a1 = checked[0].1,
        more = if checked[1].0 < checked[1].1 {
            " and the last 512 KiB"
        } else {
            ""
        },
        ago = serial_now.saturating_sub(block.serial),
    );
    write_stderr(&out.buf[..out.len]);
    // SAFETY: `frames[..nframes]` are the addresses `backtrace` stored; `backtrace_symbols_fd`
    // writes their descriptions to fd 2 without calling malloc.
    unsafe { libc::backtrace_symbols_fd(block.frames.as_ptr(), block.nframes as c_int, 2) };
    write_stderr(
        b"==quarantine==   (symbolise a frame with: addr2line -f -C -i -e <binary> <+offset>; \
          RINGLEADER_QUARANTINE_FRAMES=16 keeps more frames)\n\
          ==quarantine== aborting\n",
    );
    std::process::abort()
}

extern "C" fn check_at_exit() {
    check_all();
}

// SAFETY: `alloc`/`alloc_zeroed` are `System`'s; `dealloc` either hands the block to `System`
// at once or keeps it (never touching it except to poison and check it) until it hands it to
// `System` with its original layout, so every block is freed exactly once, by `System`,
// which allocated it.
unsafe impl GlobalAlloc for Quarantine {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded from our caller.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded from our caller.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let (max_frees, max_bytes) = limits();
        let inside = Inside::enter();
        if max_frees == 0 || inside.is_none() {
            // SAFETY: `ptr` was allocated by `System` with `layout` (our `alloc`).
            unsafe { System.dealloc(ptr, layout) };
            return;
        }
        if !AT_EXIT.swap(true, Ordering::Relaxed) {
            // SAFETY: registers a plain `extern "C"` function; any allocation `atexit` makes
            // goes to `System` (we are inside).
            unsafe { libc::atexit(check_at_exit) };
        }
        // One more frame than kept: the first is this function's own. Unwinding is most of
        // the quarantine's cost; `RINGLEADER_QUARANTINE_FRAMES` trades it for detail.
        let mut raw = [std::ptr::null_mut(); FRAMES + 1];
        let want = depth();
        let n = if want == 0 {
            1
        } else {
            // SAFETY: `raw` has room for `FRAMES + 1 >= want + 1` pointers; anything
            // `backtrace` allocates (libgcc is loaded on first use) goes to `System` because
            // we are inside.
            unsafe { libc::backtrace(raw.as_mut_ptr(), want as c_int + 1) }.max(1) as usize
        };
        let mut frames = [std::ptr::null_mut(); FRAMES];
        frames[..n - 1].copy_from_slice(&raw[1..n]);
        let nframes = n - 1;
        // SAFETY: the caller hands us `ptr`, valid for `layout.size()` bytes, to free.
        unsafe { poison(ptr, layout.size()) };
        let mut fifo = lock();
        fifo.serial += 1;
        let slot = (fifo.head + fifo.len) % CAPACITY;
        let serial = fifo.serial;
        fifo.blocks[slot] = Block {
            ptr,
            size: layout.size(),
            align: layout.align(),
            serial,
            frames,
            nframes,
        };
        fifo.len += 1;
        fifo.bytes += layout.size();
        // Evict the oldest blocks over the limits, one at a time, checking each outside the
        // lock (it is ours once popped).
        loop {
            if fifo.len <= max_frees && fifo.bytes <= max_bytes {
                break;
            }
            let old = fifo.blocks[fifo.head];
            fifo.head = (fifo.head + 1) % CAPACITY;
            fifo.len -= 1;
            fifo.bytes -= old.size;
            let serial_now = fifo.serial;
            drop(fifo);
            // SAFETY: `old` was poisoned before it was pushed and, popped, is owned by us
            // alone; it is still allocated (not yet returned to `System`).
            unsafe { verify(&old, serial_now) };
            // SAFETY: `old.ptr` came from `System` with this size and align (our `alloc`),
            // and is freed once: it left the FIFO above.
            unsafe {
                System.dealloc(
                    old.ptr,
                    Layout::from_size_align_unchecked(old.size, old.align),
                )
            };
            fifo = lock();
        }
    }
}
