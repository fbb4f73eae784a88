//! Raw io_uring syscalls and constants the `io-uring` crate does not expose.
//!
//! Kept tiny: the two syscalls that take a registered ring index or no ring at all. Every
//! constant is the kernel's uapi value (`include/uapi/linux/io_uring.h`).

use std::io;

/// `IORING_ENTER_GETEVENTS`: wait for / run completions.
pub(crate) const ENTER_GETEVENTS: u32 = 1 << 0;
/// `IORING_ENTER_SQ_WAKEUP`: wake the SQPOLL thread.
pub(crate) const ENTER_SQ_WAKEUP: u32 = 1 << 1;
/// `IORING_ENTER_REGISTERED_RING`: `fd` is an index into the registered ring table.
pub(crate) const ENTER_REGISTERED_RING: u32 = 1 << 4;

/// `IORING_REGISTER_RING_FDS` (Linux 5.18).
const REGISTER_RING_FDS: u32 = 20;
/// `IORING_REGISTER_SEND_MSG_RING` (Linux 6.13): a "blind" register op, `fd == -1`.
const REGISTER_SEND_MSG_RING: u32 = 31;

/// `IORING_SQ_NEED_WAKEUP`.
pub(crate) const SQ_NEED_WAKEUP: u32 = 1 << 0;
/// `IORING_SQ_CQ_OVERFLOW`.
pub(crate) const SQ_CQ_OVERFLOW: u32 = 1 << 1;
/// `IORING_SQ_TASKRUN`.
pub(crate) const SQ_TASKRUN: u32 = 1 << 2;

/// `IORING_CQE_F_MORE`: more CQEs follow for this `user_data`.
pub const CQE_F_MORE: u32 = 1 << 1;
/// `IORING_CQE_F_NOTIF`: a zero-copy send notification.
pub const CQE_F_NOTIF: u32 = 1 << 3;

/// `io_uring_rsrc_update` for ring fd registration.
#[repr(C)]
struct RsrcUpdate {
    offset: u32,
    resv: u32,
    data: u64,
}

/// `io_uring_enter(2)` on a raw or registered ring fd.
///
/// Returns the number of SQEs consumed.
pub(crate) fn enter(fd: i32, to_submit: u32, min_complete: u32, flags: u32) -> io::Result<u32> {
    // SAFETY: io_uring_enter with a null `arg` and size 0 reads no user memory besides the
    // rings, which the kernel owns; the arguments are plain integers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_io_uring_enter,
            fd,
            to_submit,
            min_complete,
            flags,
            std::ptr::null::<libc::c_void>(),
            0usize,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as u32)
    }
}

/// Register `ring_fd` in the calling task's registered-ring table; returns its index.
pub(crate) fn register_ring_fd(ring_fd: i32) -> io::Result<i32> {
    let mut up = RsrcUpdate {
        offset: u32::MAX,
        resv: 0,
        data: ring_fd as u64,
    };
    // SAFETY: `up` is a valid, live `io_uring_rsrc_update` for the duration of the call and
    // the kernel writes only its `offset` field.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            ring_fd,
            REGISTER_RING_FDS,
            &mut up as *mut RsrcUpdate,
            1u32,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(up.offset as i32)
    }
}

/// Post a CQE carrying `user_data` into the ring `target_fd` from a thread that may own no
/// ring at all (`IORING_REGISTER_SEND_MSG_RING`, Linux 6.13+).
pub(crate) fn send_msg_ring_sync(target_fd: i32, user_data: u64) -> io::Result<()> {
    let sqe =
        io_uring::opcode::MsgRingData::new(io_uring::types::Fd(target_fd), 0, user_data, None)
            .build();
    // SAFETY: `Entry` is `#[repr(C)]` around `io_uring_sqe`, so a pointer to it is a pointer to
    // one valid SQE, which the kernel copies during the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            -1i32,
            REGISTER_SEND_MSG_RING,
            &sqe as *const io_uring::squeue::Entry,
            1u32,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

const _: () = assert!(std::mem::size_of::<io_uring::squeue::Entry>() == 64);

/// Byte offset of `len` in `struct io_uring_sqe`.
const SQE_LEN_OFFSET: usize = 24;

/// Overwrite the `len` field of an SQE (a group member's length follows its leader's result).
pub(crate) fn sqe_set_len(entry: &mut io_uring::squeue::Entry, len: u32) {
    // SAFETY: `Entry` is `#[repr(C)]` around the 64-byte `io_uring_sqe` (asserted above), in
    // which `len` is the `u32` at byte 24; any bit pattern is a valid `u32`.
    unsafe {
        (entry as *mut io_uring::squeue::Entry)
            .cast::<u8>()
            .add(SQE_LEN_OFFSET)
            .cast::<u32>()
            .write_unaligned(len);
    }
}

/// The `len` field of an SQE.
pub(crate) fn sqe_len(entry: &io_uring::squeue::Entry) -> u32 {
    // SAFETY: `Entry` is `#[repr(C)]` around the 64-byte `io_uring_sqe` (asserted above), in
    // which `len` is the `u32` at byte 24; any bit pattern is a valid `u32`.
    unsafe {
        (entry as *const io_uring::squeue::Entry)
            .cast::<u8>()
            .add(SQE_LEN_OFFSET)
            .cast::<u32>()
            .read_unaligned()
    }
}

/// Byte offset of `msg_flags` (the op-flags union) in `struct io_uring_sqe`.
const SQE_OP_FLAGS_OFFSET: usize = 28;

/// OR `flags` into the `msg_flags` of a send-type SQE (`SEND`, `SENDMSG`, `SEND_ZC`).
pub(crate) fn sqe_or_msg_flags(entry: &mut io_uring::squeue::Entry, flags: u32) {
    // SAFETY: `Entry` is `#[repr(C)]` around the 64-byte `io_uring_sqe` (asserted above), in
    // which the op-flags union (`msg_flags` for sends) is the `u32` at byte 28; any bit
    // pattern is a valid `u32`.
    unsafe {
        let p = (entry as *mut io_uring::squeue::Entry)
            .cast::<u8>()
            .add(SQE_OP_FLAGS_OFFSET)
            .cast::<u32>();
        p.write_unaligned(p.read_unaligned() | flags);
    }
}

/// The `fd` field (byte 4) of an SQE.
pub(crate) fn sqe_fd(entry: &io_uring::squeue::Entry) -> i32 {
    // SAFETY: `Entry` is `#[repr(C)]` around the 64-byte `io_uring_sqe` (asserted above), in
    // which `fd` is the `i32` at byte 4; any bit pattern is a valid `i32`.
    unsafe {
        (entry as *const io_uring::squeue::Entry)
            .cast::<u8>()
            .add(4)
            .cast::<i32>()
            .read_unaligned()
    }
}

/// The `addr` field (byte 16) of an SQE: the buffer, or for `SENDMSG` the `msghdr`.
pub(crate) fn sqe_addr(entry: &io_uring::squeue::Entry) -> u64 {
    // SAFETY: `Entry` is `#[repr(C)]` around the 64-byte `io_uring_sqe` (asserted above), in
    // which `addr` is the `u64` at byte 16; any bit pattern is a valid `u64`.
    unsafe {
        (entry as *const io_uring::squeue::Entry)
            .cast::<u8>()
            .add(16)
            .cast::<u64>()
            .read_unaligned()
    }
}
