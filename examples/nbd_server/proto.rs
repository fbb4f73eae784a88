//! The NBD wire format: magic numbers, flags, option and command codes, error values, and
//! the encoders and decoders of the fixed-size messages.
//!
//! Everything here is pure (no I/O): it turns bytes into typed requests and typed replies
//! into bytes, so the handshake and the transmission code read like the protocol document
//! (doc/proto.md of the NetworkBlockDevice project). Every integer on the wire is big-endian.

use std::io;

// --- Handshake ------------------------------------------------------------------------------

/// `NBDMAGIC`, the first 8 bytes the server sends.
pub const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
/// `IHAVEOPT`: the newstyle magic, also the start of every client option.
pub const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
/// Magic of every option reply (fixed newstyle).
pub const OPT_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;

/// Handshake flag: fixed newstyle negotiation.
pub const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
/// Handshake flag: the client may ask to skip the 124 zero bytes after `NBD_OPT_EXPORT_NAME`.
pub const FLAG_NO_ZEROES: u16 = 1 << 1;
/// Client flag: the client speaks fixed newstyle.
pub const FLAG_C_FIXED_NEWSTYLE: u32 = 1 << 0;
/// Client flag: no 124 zero bytes after `NBD_OPT_EXPORT_NAME`.
pub const FLAG_C_NO_ZEROES: u32 = 1 << 1;

pub const OPT_EXPORT_NAME: u32 = 1;
pub const OPT_ABORT: u32 = 2;
pub const OPT_LIST: u32 = 3;
pub const OPT_INFO: u32 = 6;
pub const OPT_GO: u32 = 7;
pub const OPT_STRUCTURED_REPLY: u32 = 8;
pub const OPT_LIST_META_CONTEXT: u32 = 9;
pub const OPT_SET_META_CONTEXT: u32 = 10;
/// Not negotiated: answered `ERR_UNSUP`, and clients fall back to compact headers.
pub const OPT_EXTENDED_HEADERS: u32 = 11;

pub const REP_ACK: u32 = 1;
pub const REP_SERVER: u32 = 2;
pub const REP_INFO: u32 = 3;
pub const REP_META_CONTEXT: u32 = 4;
pub const REP_ERR_UNSUP: u32 = (1 << 31) + 1;
pub const REP_ERR_INVALID: u32 = (1 << 31) + 3;
pub const REP_ERR_UNKNOWN: u32 = (1 << 31) + 6;
pub const REP_ERR_TOO_BIG: u32 = (1 << 31) + 9;

pub const INFO_EXPORT: u16 = 0;
pub const INFO_NAME: u16 = 1;
pub const INFO_DESCRIPTION: u16 = 2;
pub const INFO_BLOCK_SIZE: u16 = 3;

/// Transmission flags (16 bits, sent with the export's size).
pub const FLAG_HAS_FLAGS: u16 = 1 << 0;
pub const FLAG_READ_ONLY: u16 = 1 << 1;
pub const FLAG_SEND_FLUSH: u16 = 1 << 2;
pub const FLAG_SEND_FUA: u16 = 1 << 3;
pub const FLAG_SEND_TRIM: u16 = 1 << 5;
pub const FLAG_SEND_WRITE_ZEROES: u16 = 1 << 6;
pub const FLAG_SEND_DF: u16 = 1 << 7;
pub const FLAG_CAN_MULTI_CONN: u16 = 1 << 8;

// --- Transmission ---------------------------------------------------------------------------

pub const REQUEST_MAGIC: u32 = 0x2560_9513;
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
pub const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;

/// Size of a request header on the wire.
pub const REQUEST_LEN: usize = 28;
/// The largest header a reply frame carries: a structured `OFFSET_DATA` chunk header (20)
/// plus its offset (8).
pub const MAX_HEAD: usize = 28;

pub const CMD_READ: u16 = 0;
pub const CMD_WRITE: u16 = 1;
pub const CMD_DISC: u16 = 2;
pub const CMD_FLUSH: u16 = 3;
pub const CMD_TRIM: u16 = 4;
pub const CMD_WRITE_ZEROES: u16 = 6;
pub const CMD_BLOCK_STATUS: u16 = 7;

pub const CMD_FLAG_FUA: u16 = 1 << 0;
pub const CMD_FLAG_NO_HOLE: u16 = 1 << 1;
pub const CMD_FLAG_DF: u16 = 1 << 2;
/// `NBD_CMD_BLOCK_STATUS`: one descriptor per context is enough.
pub const CMD_FLAG_REQ_ONE: u16 = 1 << 3;

pub const REPLY_FLAG_DONE: u16 = 1 << 0;
pub const REPLY_TYPE_OFFSET_DATA: u16 = 1;
pub const REPLY_TYPE_BLOCK_STATUS: u16 = 5;
pub const REPLY_TYPE_ERROR: u16 = (1 << 15) + 1;

/// `base:allocation` extent flag: the range has no storage allocated.
pub const STATE_HOLE: u32 = 1;
/// `base:allocation` extent flag: the range reads as zeroes.
pub const STATE_ZERO: u32 = 2;

/// NBD error values (the protocol's own numbering, which matches Linux errno).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum NbdError {
    Perm = 1,
    Io = 5,
    NoMem = 12,
    Inval = 22,
    NoSpc = 28,
    /// `NBD_ESHUTDOWN`: the server is stopping; the client should disconnect.
    Shutdown = 108,
}

impl NbdError {
    /// The protocol's error for a failed file operation: quota and size limits are `ENOSPC`
    /// (as the spec asks), permission problems `EPERM`, everything unexpected `EIO`.
    pub fn from_io(e: &io::Error) -> NbdError {
        match e.raw_os_error() {
            Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG) => NbdError::NoSpc,
            Some(libc::EPERM | libc::EACCES | libc::EROFS) => NbdError::Perm,
            Some(libc::EINVAL) => NbdError::Inval,
            Some(libc::ENOMEM) => NbdError::NoMem,
            _ => NbdError::Io,
        }
    }
}

/// A decoded request header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub flags: u16,
    pub kind: u16,
    pub handle: u64,
    pub offset: u64,
    pub len: u32,
}

/// Decode a request header; `None` if the magic is wrong (the stream is out of step and the
/// connection cannot continue).
pub fn parse_request(b: &[u8; REQUEST_LEN]) -> Option<Request> {
    if be32(&b[0..4]) != REQUEST_MAGIC {
        return None;
    }
    Some(Request {
        flags: be16(&b[4..6]),
        kind: be16(&b[6..8]),
        handle: be64(&b[8..16]),
        offset: be64(&b[16..24]),
        len: be32(&b[24..28]),
    })
}

/// The fixed-size head of one reply frame (its payload, if any, follows separately).
#[derive(Clone, Copy)]
pub struct Head {
    bytes: [u8; MAX_HEAD],
    len: u8,
}

impl Head {
    /// A simple reply: `error` 0 for success.
    pub fn simple(handle: u64, error: u32) -> Head {
        let mut h = Head::empty();
        h.put(&SIMPLE_REPLY_MAGIC.to_be_bytes());
        h.put(&error.to_be_bytes());
        h.put(&handle.to_be_bytes());
        h
    }

    /// A structured `OFFSET_DATA` chunk, final, announcing `data_len` bytes from `offset`.
    pub fn offset_data(handle: u64, offset: u64, data_len: u32) -> Head {
        let mut h = Head::empty();
        h.chunk_header(
            REPLY_FLAG_DONE,
            REPLY_TYPE_OFFSET_DATA,
            handle,
            8 + data_len,
        );
        h.put(&offset.to_be_bytes());
        h
    }

    /// A structured `ERROR` chunk header, final, followed by a payload of `msg_len` bytes of
    /// message (the frame's data).
    pub fn error_chunk(handle: u64, error: NbdError, msg_len: u16) -> Head {
        let mut h = Head::empty();
        h.chunk_header(
            REPLY_FLAG_DONE,
            REPLY_TYPE_ERROR,
            handle,
            6 + u32::from(msg_len),
        );
        h.put(&(error as u32).to_be_bytes());
        h.put(&msg_len.to_be_bytes());
        h
    }

    /// A structured `BLOCK_STATUS` chunk header, final, with the context id: `extents`
    /// descriptors (8 bytes each) follow as the frame's data.
    pub fn block_status(handle: u64, context: u32, extents: usize) -> Head {
        let mut h = Head::empty();
        let len = 4 + 8 * extents as u32;
        h.chunk_header(REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, handle, len);
        h.put(&context.to_be_bytes());
        h
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    fn empty() -> Head {
        Head {
            bytes: [0; MAX_HEAD],
            len: 0,
        }
    }

    fn chunk_header(&mut self, flags: u16, kind: u16, handle: u64, len: u32) {
        self.put(&STRUCTURED_REPLY_MAGIC.to_be_bytes());
        self.put(&flags.to_be_bytes());
        self.put(&kind.to_be_bytes());
        self.put(&handle.to_be_bytes());
        self.put(&len.to_be_bytes());
    }

    fn put(&mut self, b: &[u8]) {
        let at = usize::from(self.len);
        self.bytes[at..at + b.len()].copy_from_slice(b);
        self.len += b.len() as u8;
    }
}

/// One option reply (fixed newstyle): header and payload in one buffer.
pub fn option_reply(option: u32, kind: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(20 + payload.len());
    v.extend_from_slice(&OPT_REPLY_MAGIC.to_be_bytes());
    v.extend_from_slice(&option.to_be_bytes());
    v.extend_from_slice(&kind.to_be_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

pub fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

pub fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().expect("4 bytes"))
}

pub fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip_and_bad_magic() {
        let mut b = [0u8; REQUEST_LEN];
        b[0..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
        b[4..6].copy_from_slice(&CMD_FLAG_FUA.to_be_bytes());
        b[6..8].copy_from_slice(&CMD_WRITE.to_be_bytes());
        b[8..16].copy_from_slice(&7u64.to_be_bytes());
        b[16..24].copy_from_slice(&4096u64.to_be_bytes());
        b[24..28].copy_from_slice(&512u32.to_be_bytes());
        let r = parse_request(&b).unwrap();
        assert_eq!(
            (r.flags, r.kind, r.handle, r.offset, r.len),
            (1, 1, 7, 4096, 512)
        );
        b[0] ^= 1;
        assert!(parse_request(&b).is_none());
    }

    #[test]
    fn reply_heads_have_the_wire_sizes() {
        assert_eq!(Head::simple(1, 0).as_bytes().len(), 16);
        assert_eq!(Head::offset_data(1, 0, 4096).as_bytes().len(), 28);
        assert_eq!(
            Head::error_chunk(1, NbdError::Inval, 5).as_bytes().len(),
            26
        );
        let h = Head::offset_data(9, 512, 4096);
        assert_eq!(be32(&h.as_bytes()[16..20]), 8 + 4096);
        assert_eq!(be64(&h.as_bytes()[20..28]), 512);
    }
}
