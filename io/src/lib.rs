//! ringleader's I/O operations (growing; see the io and groups issues).
//!
//! Every op here is an [`ringleader_executor::Op`]: it owns its buffer (and fd borrow) until
//! the kernel's final CQE, and gives the buffer back in a [`BufResult`] on success and on
//! error. Errors are `std::io::Error` carrying the kernel's errno.

pub mod cmd_slot;
pub mod fd;
pub mod fs;
pub mod group;
pub mod lease_ops;
pub mod net;
pub mod pipe;
pub mod signal;
pub mod time;
pub mod uring_cmd;

pub use ringleader_buf::BufResult;
