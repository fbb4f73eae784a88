//! `IORING_OP_NOP`: a round trip through the ring with no side effect.

use std::io;

use io_uring::opcode;

use crate::lifecycle::Cqe;
use crate::op::{Completable, Op, Orphan};

/// Resources of a NOP: none.
#[derive(Debug)]
pub struct Nop(());

impl Orphan for Nop {}

impl Completable for Nop {
    type Output = io::Result<()>;
    fn complete(self, cqe: Cqe) -> io::Result<()> {
        cqe.into_result().map(drop)
    }
}

/// Submit a NOP and wait for its completion (Linux 5.1).
///
/// ```
/// ringleader::block_on(async {
///     ringleader::ops::nop().await.unwrap();
/// });
/// ```
pub fn nop() -> Op<Nop> {
    // SAFETY: a NOP carries no pointer.
    unsafe { Op::submit(opcode::Nop::new().build(), Nop(())) }
}

/// `IORING_OP_NOP` with `IORING_NOP_INJECT_RESULT` (Linux 6.10): completes with `result`,
/// e.g. `-libc::EIO`, to exercise error paths.
pub fn nop_with_result(result: i32) -> Op<Nop> {
    let mut entry = opcode::Nop::new().build();
    inject_result(&mut entry, result);
    // SAFETY: a NOP carries no pointer.
    unsafe { Op::submit(entry, Nop(())) }
}

/// Set `nop_flags = IORING_NOP_INJECT_RESULT` and `len = result` in a NOP SQE.
fn inject_result(entry: &mut io_uring::squeue::Entry, result: i32) {
    const IORING_NOP_INJECT_RESULT: u32 = 1 << 0;
    const _: () = assert!(std::mem::size_of::<io_uring::squeue::Entry>() == 64);
    // SAFETY: `Entry` is `#[repr(C)]` over the 64-byte `io_uring_sqe` (asserted above). In
    // that layout `len` is the u32 at byte 24 and `nop_flags` (a member of the op-flags union)
    // the u32 at byte 28; both are plain integers any bit pattern of which is valid.
    unsafe {
        let p = (entry as *mut io_uring::squeue::Entry).cast::<u8>();
        p.add(24).cast::<u32>().write_unaligned(result as u32);
        p.add(28)
            .cast::<u32>()
            .write_unaligned(IORING_NOP_INJECT_RESULT);
    }
}
