//! ringleader's buffers (skeleton; see issue "buf"): owned buffers with a stable address.
//!
//! Ops take buffers by value and give them back in a [`BufResult`], on success and on error,
//! because the kernel may write into a buffer until the op's final CQE: the op must own it.

mod owned;

pub use owned::{BufResult, IoBuf, IoBufMut};
