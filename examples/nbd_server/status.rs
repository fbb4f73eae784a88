//! Block status: the `base:allocation` metadata context and `NBD_CMD_BLOCK_STATUS`.
//!
//! A client that negotiated structured replies may select `base:allocation` with
//! `NBD_OPT_SET_META_CONTEXT` (see `handshake.rs`); it then asks which parts of a range are
//! holes with `NBD_CMD_BLOCK_STATUS`, and the server answers from the image's extents
//! (`SEEK_DATA`/`SEEK_HOLE`).

/// The one metadata context the server knows.
pub const BASE_ALLOCATION: &str = "base:allocation";
/// Its id on every connection (ids are the server's choice; 0 is avoided so a client bug
/// that sends zeroes stands out).
pub const BASE_ALLOCATION_ID: u32 = 1;
