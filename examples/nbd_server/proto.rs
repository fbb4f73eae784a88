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
/// 32-byte request and reply headers with 64-bit lengths (see [`Framing::Extended`]).
pub const OPT_EXTENDED_HEADERS: u32 = 11;

pub const REP_ACK: u32 = 1;
pub const REP_SERVER: u32 = 2;
pub const REP_INFO: u32 = 3;
pub const REP_META_CONTEXT: u32 = 4;
pub const REP_ERR_UNSUP: u32 = (1 << 31) + 1;
pub const REP_ERR_INVALID: u32 = (1 << 31) + 3;
pub const REP_ERR_UNKNOWN: u32 = (1 << 31) + 6;
pub const REP_ERR_TOO_BIG: u32 = (1 << 31) + 9;
/// `NBD_REP_ERR_EXT_HEADER_REQD`: here, the answer to `NBD_OPT_STRUCTURED_REPLY` once extended
/// headers were negotiated (they take precedence; there is no downgrade).
pub const REP_ERR_EXT_HEADER_REQD: u32 = (1 << 31) + 10;

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
pub const EXTENDED_REQUEST_MAGIC: u32 = 0x21e4_1c71;
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
pub const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;
pub const EXTENDED_REPLY_MAGIC: u32 = 0x6e8a_278c;

/// Size of a compact request header on the wire.
pub const REQUEST_LEN: usize = 28;
/// Size of an extended request header (64-bit length).
pub const EXTENDED_REQUEST_LEN: usize = 32;
/// The largest header a reply frame carries: an extended `OFFSET_DATA` or
/// `BLOCK_STATUS_EXT` chunk header (32) plus its first payload field(s) (8).
pub const MAX_HEAD: usize = 40;

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
/// Extended headers only: *length* is the length of a payload that follows the header (set
/// on every `WRITE`), not the command's effect length.
pub const CMD_FLAG_PAYLOAD_LEN: u16 = 1 << 5;

pub const REPLY_FLAG_DONE: u16 = 1 << 0;
/// A final chunk without payload: success, in extended mode (where there is no simple reply).
pub const REPLY_TYPE_NONE: u16 = 0;
pub const REPLY_TYPE_OFFSET_DATA: u16 = 1;
pub const REPLY_TYPE_BLOCK_STATUS: u16 = 5;
/// Block status with 64-bit extent lengths (extended headers only).
pub const REPLY_TYPE_BLOCK_STATUS_EXT: u16 = 6;
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
    /// `NBD_EOVERFLOW`: a READ with "don't fragment" longer than one chunk may carry.
    Overflow = 75,
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

/// How the transmission phase frames requests and replies, as the handshake settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Nothing negotiated: compact (28-byte) requests, simple replies only.
    Simple,
    /// `NBD_OPT_STRUCTURED_REPLY`: compact requests; READ data and errors in structured
    /// chunks (20-byte headers), other successes as simple replies.
    Structured,
    /// `NBD_OPT_EXTENDED_HEADERS`: 32-byte requests with 64-bit lengths, and every reply
    /// one or more 32-byte extended chunks (success without data is a `NONE` chunk); no
    /// simple replies.
    Extended,
}

impl Framing {
    /// The size of a request header.
    pub fn request_len(self) -> usize {
        match self {
            Framing::Extended => EXTENDED_REQUEST_LEN,
            _ => REQUEST_LEN,
        }
    }

    /// Replies may be chunks (structured or extended): READ's "don't fragment" flag and
    /// block status are available, errors carry a message.
    pub fn chunks(self) -> bool {
        self != Framing::Simple
    }
}

/// A decoded request header (either form).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub flags: u16,
    pub kind: u16,
    pub handle: u64,
    pub offset: u64,
    /// The effect length or, for a `WRITE` (and in extended mode any request with
    /// [`CMD_FLAG_PAYLOAD_LEN`]), the length of the payload that follows. At most
    /// `u32::MAX` in a compact request.
    pub len: u64,
}

impl Request {
    /// Payload bytes that follow the header, which the reader must consume to stay in
    /// step. In extended mode that is *length* when `CMD_FLAG_PAYLOAD_LEN` is set, and for
    /// every `WRITE`: the flag is required there, and a client that leaves it out still
    /// sends the data (qemu's server is as lenient).
    pub fn payload(&self, framing: Framing) -> u64 {
        let flagged = framing == Framing::Extended && self.flags & CMD_FLAG_PAYLOAD_LEN != 0;
        if self.kind == CMD_WRITE || flagged {
            self.len
        } else {
            0
        }
    }

    /// What every reply to this request carries.
    pub fn reply_to(&self, framing: Framing) -> ReplyTo {
        ReplyTo {
            framing,
            handle: self.handle,
            offset: self.offset,
        }
    }
}

/// Decode a compact request header; `None` if the magic is wrong (the stream is out of step
/// and the connection cannot continue).
pub fn parse_request(b: &[u8; REQUEST_LEN]) -> Option<Request> {
    if be32(&b[0..4]) != REQUEST_MAGIC {
        return None;
    }
    Some(Request {
        flags: be16(&b[4..6]),
        kind: be16(&b[6..8]),
        handle: be64(&b[8..16]),
        offset: be64(&b[16..24]),
        len: u64::from(be32(&b[24..28])),
    })
}

/// Decode an extended request header (`NBD_EXTENDED_REQUEST_MAGIC`, 64-bit length); `None`
/// if the magic is wrong.
pub fn parse_extended_request(b: &[u8; EXTENDED_REQUEST_LEN]) -> Option<Request> {
    if be32(&b[0..4]) != EXTENDED_REQUEST_MAGIC {
        return None;
    }
    Some(Request {
        flags: be16(&b[4..6]),
        kind: be16(&b[6..8]),
        handle: be64(&b[8..16]),
        offset: be64(&b[16..24]),
        len: be64(&b[24..32]),
    })
}

/// What every reply to one request repeats: its handle and, in extended mode, its offset;
/// and the framing that decides the reply's form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyTo {
    pub framing: Framing,
    pub handle: u64,
    pub offset: u64,
}

/// The fixed-size head of one reply frame (its payload, if any, follows separately).
#[derive(Clone, Copy)]
pub struct Head {
    bytes: [u8; MAX_HEAD],
    len: u8,
}

impl Head {
    /// Success without data: a simple reply or, extended, a final `NONE` chunk.
    pub fn done(to: ReplyTo) -> Head {
        match to.framing {
            Framing::Extended => {
                let mut h = Head::empty();
                h.chunk_header(to, REPLY_TYPE_NONE, 0);
                h
            }
            _ => Head::simple(to.handle, 0),
        }
    }

    /// The head of a successful READ's reply, `data_len` bytes of data to follow: a simple
    /// reply, or one final `OFFSET_DATA` chunk (the data's offset is the request's).
    pub fn read(to: ReplyTo, data_len: u32) -> Head {
        if to.framing == Framing::Simple {
            return Head::simple(to.handle, 0);
        }
        let mut h = Head::empty();
        h.chunk_header(to, REPLY_TYPE_OFFSET_DATA, 8 + u64::from(data_len));
        h.put(&to.offset.to_be_bytes());
        h
    }

    /// An error: a simple reply carrying it, or a final `ERROR` chunk followed by a message
    /// of `msg_len` bytes (the frame's tail; none with simple replies).
    pub fn error(to: ReplyTo, error: NbdError, msg_len: u16) -> Head {
        if to.framing == Framing::Simple {
            return Head::simple(to.handle, error as u32);
        }
        let mut h = Head::empty();
        h.chunk_header(to, REPLY_TYPE_ERROR, 6 + u64::from(msg_len));
        h.put(&(error as u32).to_be_bytes());
        h.put(&msg_len.to_be_bytes());
        h
    }

    /// A final block status chunk for `context`, followed by `extents` descriptors (the
    /// frame's data, see `status::encode`): `BLOCK_STATUS` with 8-byte descriptors or,
    /// extended, `BLOCK_STATUS_EXT` with its descriptor count and 16-byte descriptors.
    pub fn block_status(to: ReplyTo, context: u32, extents: usize) -> Head {
        let mut h = Head::empty();
        let n = extents as u64;
        if to.framing == Framing::Extended {
            h.chunk_header(to, REPLY_TYPE_BLOCK_STATUS_EXT, 8 + 16 * n);
            h.put(&context.to_be_bytes());
            h.put(&(extents as u32).to_be_bytes());
        } else {
            h.chunk_header(to, REPLY_TYPE_BLOCK_STATUS, 4 + 8 * n);
            h.put(&context.to_be_bytes());
        }
        h
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    fn simple(handle: u64, error: u32) -> Head {
        let mut h = Head::empty();
        h.put(&SIMPLE_REPLY_MAGIC.to_be_bytes());
        h.put(&error.to_be_bytes());
        h.put(&handle.to_be_bytes());
        h
    }

    fn empty() -> Head {
        Head {
            bytes: [0; MAX_HEAD],
            len: 0,
        }
    }

    /// The header of a final chunk with `len` bytes of payload: structured (20 bytes,
    /// 32-bit length) or extended (32 bytes: the request's offset and a 64-bit length).
    fn chunk_header(&mut self, to: ReplyTo, kind: u16, len: u64) {
        let extended = to.framing == Framing::Extended;
        let magic = if extended {
            EXTENDED_REPLY_MAGIC
        } else {
            STRUCTURED_REPLY_MAGIC
        };
        self.put(&magic.to_be_bytes());
        self.put(&REPLY_FLAG_DONE.to_be_bytes());
        self.put(&kind.to_be_bytes());
        self.put(&to.handle.to_be_bytes());
        if extended {
            self.put(&to.offset.to_be_bytes());
            self.put(&len.to_be_bytes());
        } else {
            let len = u32::try_from(len).expect("a structured chunk's payload fits 32 bits");
            self.put(&len.to_be_bytes());
        }
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

    fn to(framing: Framing) -> ReplyTo {
        ReplyTo {
            framing,
            handle: 9,
            offset: 512,
        }
    }

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
    fn extended_request_has_a_64_bit_length_and_its_own_magic() {
        let mut b = [0u8; EXTENDED_REQUEST_LEN];
        b[0..4].copy_from_slice(&EXTENDED_REQUEST_MAGIC.to_be_bytes());
        b[6..8].copy_from_slice(&CMD_TRIM.to_be_bytes());
        b[8..16].copy_from_slice(&7u64.to_be_bytes());
        b[24..32].copy_from_slice(&(5u64 << 32).to_be_bytes());
        let r = parse_extended_request(&b).unwrap();
        assert_eq!((r.kind, r.handle, r.len), (CMD_TRIM, 7, 5 << 32));
        assert_eq!(r.payload(Framing::Extended), 0, "an effect length");
        let w = Request {
            kind: CMD_WRITE,
            ..r
        };
        assert_eq!(w.payload(Framing::Extended), 5 << 32);
        let flagged = Request {
            flags: CMD_FLAG_PAYLOAD_LEN,
            ..r
        };
        assert_eq!(flagged.payload(Framing::Extended), 5 << 32);
        assert_eq!(flagged.payload(Framing::Structured), 0);
        b[0..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
        assert!(parse_extended_request(&b).is_none());
    }

    #[test]
    fn reply_heads_have_the_wire_sizes() {
        let (simple, structured, extended) = (
            to(Framing::Simple),
            to(Framing::Structured),
            to(Framing::Extended),
        );
        assert_eq!(Head::done(simple).as_bytes().len(), 16);
        assert_eq!(Head::done(structured).as_bytes().len(), 16);
        assert_eq!(Head::done(extended).as_bytes().len(), 32);
        assert_eq!(Head::read(simple, 4096).as_bytes().len(), 16);
        assert_eq!(Head::read(structured, 4096).as_bytes().len(), 28);
        assert_eq!(Head::read(extended, 4096).as_bytes().len(), 40);
        assert_eq!(Head::error(simple, NbdError::Inval, 5).as_bytes().len(), 16);
        assert_eq!(
            Head::error(structured, NbdError::Inval, 5).as_bytes().len(),
            26
        );
        assert_eq!(
            Head::error(extended, NbdError::Inval, 5).as_bytes().len(),
            38
        );
        assert_eq!(Head::block_status(structured, 1, 3).as_bytes().len(), 24);
        assert_eq!(Head::block_status(extended, 1, 3).as_bytes().len(), 40);
        let h = Head::read(structured, 4096);
        assert_eq!(be32(&h.as_bytes()[16..20]), 8 + 4096);
        assert_eq!(be64(&h.as_bytes()[20..28]), 512);
    }

    #[test]
    fn extended_chunks_repeat_the_offset_and_have_64_bit_lengths() {
        let h = Head::read(to(Framing::Extended), 4096);
        let b = h.as_bytes();
        assert_eq!(be32(&b[0..4]), EXTENDED_REPLY_MAGIC);
        assert_eq!(be16(&b[4..6]), REPLY_FLAG_DONE);
        assert_eq!(be16(&b[6..8]), REPLY_TYPE_OFFSET_DATA);
        assert_eq!(be64(&b[8..16]), 9);
        assert_eq!(be64(&b[16..24]), 512, "the request's offset");
        assert_eq!(be64(&b[24..32]), 8 + 4096);
        assert_eq!(be64(&b[32..40]), 512, "the data's offset");
        let b = Head::done(to(Framing::Extended));
        assert_eq!(be16(&b.as_bytes()[6..8]), REPLY_TYPE_NONE);
        assert_eq!(be64(&b.as_bytes()[24..32]), 0);
        let h = Head::block_status(to(Framing::Extended), 1, 3);
        let b = h.as_bytes();
        assert_eq!(be16(&b[6..8]), REPLY_TYPE_BLOCK_STATUS_EXT);
        assert_eq!(be64(&b[24..32]), 8 + 3 * 16);
        assert_eq!((be32(&b[32..36]), be32(&b[36..40])), (1, 3));
    }
}
