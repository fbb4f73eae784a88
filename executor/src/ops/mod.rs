//! The ops the executor itself needs; the rest live in `ringleader-io`.

mod nop;

pub use nop::{Nop, nop, nop_with_result};
