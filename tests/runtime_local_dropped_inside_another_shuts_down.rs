//! A `LocalRuntime` dropped inside another runtime's `block_on` still shuts down as its own
//! core: its tasks' in-flight ops are cancelled by its own ring and their buffers released at
//! their final CQE, neither leaked for want of the ring nor freed under the kernel.

mod common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;

use common::{CountedBuf, counter, get, pipe};
use io_uring::{opcode, types};
use ringleader::ops::{Completable, Cqe, Op, Orphan};

/// A read's resources: a counted buffer and the fd it reads.
struct PipeRead {
    _buf: CountedBuf,
    _fd: Rc<OwnedFd>,
}

impl Orphan for PipeRead {}

impl Completable for PipeRead {
    type Output = i32;
    fn complete(self, cqe: Cqe) -> i32 {
        cqe.result
    }
}

fn read(fd: &Rc<OwnedFd>, mut buf: CountedBuf) -> Op<PipeRead> {
    let entry = opcode::Read::new(
        types::Fd(fd.as_raw_fd()),
        buf.bytes.as_mut_ptr(),
        buf.bytes.capacity() as u32,
    )
    .offset(u64::MAX)
    .build();
    // SAFETY: the SQE points into the Vec's heap memory, which the op data owns and which
    // does not move with it; the fd is kept open by the `Rc` in the data.
    unsafe {
        Op::submit(
            entry,
            PipeRead {
                _buf: buf,
                _fd: Rc::clone(fd),
            },
        )
    }
}

#[test]
fn local_runtime_dropped_inside_another_cancels_and_releases_its_ops() {
    let drops = counter();
    let (r, _w) = pipe();
    let inner = ringleader::Builder::new().build_local().unwrap();
    {
        let drops = drops.clone();
        inner.block_on(async move {
            let r = Rc::new(r);
            // A task whose read never completes (nothing is written).
            drop(ringleader::spawn(async move {
                read(&r, CountedBuf::new(4096, &drops)).await
            }));
            ringleader::yield_now().await;
            assert_eq!(ringleader::runtime::stats().ops_in_flight, 1);
        });
    }
    assert_eq!(get(&drops), 0, "the read is in flight");
    ringleader::block_on(async move {
        drop(inner);
    });
    assert_eq!(
        get(&drops),
        1,
        "the inner runtime's shutdown cancelled the read and released its buffer"
    );
}
