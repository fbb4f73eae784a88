//! The handshake as a state machine without I/O: fed the bytes the client sent, it yields
//! the bytes to send back and, in the end, how the handshake ended.
//!
//! [`Handshake::new`] queues the server's greeting. The driver then loops: send
//! [`take_output`](Handshake::take_output); if [`status`](Handshake::status) is
//! [`Status::Receive(n)`](Status::Receive), receive at most `n` bytes and
//! [`feed`](Handshake::feed) them; otherwise the handshake is over.
//!
//! # Invariants
//!
//! - `n` never reaches past the end of the current unit (client flags, an option header or
//!   an option's data), so a driver that receives at most `n` bytes never takes bytes that
//!   belong to the transmission phase.
//! - At most [`MAX_OPTION_DATA`] bytes are held ([`buffered`](Handshake::buffered)): a longer
//!   option's data is counted off as it arrives, without being kept, and answered
//!   `NBD_REP_ERR_TOO_BIG`, so the stream stays in step and the next option works.
//! - At most [`MAX_HANDSHAKE_BYTES`] are consumed: an option that would take the handshake
//!   past that is answered `NBD_REP_ERR_TOO_BIG` and the handshake fails (the connection is
//!   closed), which bounds what a client can make the server read before transmission.
//! - The outcome does not depend on how the input is split into [`feed`](Handshake::feed)
//!   calls: bytes are processed one unit at a time, in order.
//! - Every reply is an option reply (magic, the option echoed, a length equal to its
//!   payload), except the answer to `NBD_OPT_EXPORT_NAME`, which ends the handshake.

use crate::proto::*;
use crate::status::{BASE_ALLOCATION, BASE_ALLOCATION_ID};

/// The most option data held in memory: covers every legal `NBD_OPT_INFO`/`NBD_OPT_GO`
/// (a 4096-byte name and 65,535 information requests are 135,178 bytes) and metadata
/// context queries of reasonable size (about 60 queries of the longest legal string).
pub const MAX_OPTION_DATA: usize = 256 << 10;
/// The most bytes a handshake may consume, option data skipped or not; beyond that the
/// client is treated as hostile and the connection closed.
pub const MAX_HANDSHAKE_BYTES: u64 = 16 << 20;
/// The longest string (export name, query) the protocol allows.
const MAX_STRING: usize = 4096;

const _: () = assert!(MAX_OPTION_DATA >= 4 + MAX_STRING + 2 + 2 * 65_535);

/// What the handshake tells the client about the export.
#[derive(Clone, Debug)]
pub struct ExportInfo {
    /// Size in bytes.
    pub size: u64,
    pub readonly: bool,
    /// Minimum block size (the required alignment; 1 for none).
    pub min_block: u32,
    /// The largest READ or WRITE the server accepts.
    pub max_block: u32,
    /// Shown to clients that list exports or ask for a description.
    pub description: String,
}

/// Where the handshake stands.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Status {
    /// Still haggling: send the output, then receive at most this many bytes (never 0).
    Receive(usize),
    /// Transmission starts, framed as negotiated; `block_status`: the last
    /// `NBD_OPT_SET_META_CONTEXT` selected `base:allocation`.
    Transmit {
        framing: Framing,
        block_status: bool,
    },
    /// The client sent `NBD_OPT_ABORT` (acknowledged in the output).
    Left,
    /// The client broke the protocol or went over a limit: close the connection (after
    /// sending the output, which may hold an error reply).
    Failed(String),
}

/// One connection's handshake (see the module docs).
#[derive(Debug)]
pub struct Handshake {
    export: ExportInfo,
    state: State,
    /// The unit being received: client flags, an option header, or an option's data.
    buf: Vec<u8>,
    /// Bytes to send.
    out: Vec<u8>,
    /// Bytes consumed so far.
    consumed: u64,
    no_zeroes: bool,
    structured: bool,
    /// `NBD_OPT_EXTENDED_HEADERS` was acknowledged (it takes precedence over `structured`).
    extended: bool,
    /// `base:allocation` was selected by the last `NBD_OPT_SET_META_CONTEXT`.
    meta: bool,
}

#[derive(Debug)]
enum State {
    Flags,
    Header,
    Data {
        option: u32,
        len: usize,
    },
    /// An over-long option's data, counted off without being kept.
    Skip {
        option: u32,
        left: u64,
    },
    Done(Status),
}

impl Handshake {
    /// A handshake with the greeting (`NBDMAGIC`, `IHAVEOPT`, fixed newstyle, no zeroes)
    /// queued to send.
    pub fn new(export: ExportInfo) -> Handshake {
        let mut out = Vec::with_capacity(18);
        out.extend_from_slice(&NBDMAGIC.to_be_bytes());
        out.extend_from_slice(&IHAVEOPT.to_be_bytes());
        out.extend_from_slice(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes());
        Handshake {
            export,
            state: State::Flags,
            buf: Vec::new(),
            out,
            consumed: 0,
            no_zeroes: false,
            structured: false,
            extended: false,
            meta: false,
        }
    }

    pub fn status(&self) -> Status {
        match &self.state {
            State::Done(s) => s.clone(),
            _ => Status::Receive(self.want()),
        }
    }

    /// The bytes to send, leaving none queued.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Bytes of the current unit held (never more than [`MAX_OPTION_DATA`]).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes consumed so far: at most [`MAX_HANDSHAKE_BYTES`] plus the header of the option
    /// that would have crossed it.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Process received bytes in order until they run out or the handshake ends; returns
    /// how many were consumed (fewer than `input.len()` only if it ended).
    pub fn feed(&mut self, input: &[u8]) -> usize {
        let mut used = 0;
        while used < input.len() {
            let want = self.want();
            if want == 0 {
                break;
            }
            let take = want.min(input.len() - used);
            let chunk = &input[used..used + take];
            used += take;
            self.consumed += take as u64;
            match &mut self.state {
                State::Skip { left, .. } => *left -= take as u64,
                _ => self.buf.extend_from_slice(chunk),
            }
            if take == want {
                self.unit_done();
            }
        }
        used
    }

    /// Bytes still missing from the current unit; 0 once the handshake is over.
    fn want(&self) -> usize {
        match self.state {
            State::Flags => 4 - self.buf.len(),
            State::Header => 16 - self.buf.len(),
            State::Data { len, .. } => len - self.buf.len(),
            State::Skip { left, .. } => usize::try_from(left).unwrap_or(usize::MAX),
            State::Done(_) => 0,
        }
    }

    fn unit_done(&mut self) {
        let unit = std::mem::take(&mut self.buf);
        match self.state {
            State::Flags => {
                let flags = be32(&unit);
                if flags & !(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES) != 0 {
                    return self.fail(format!("unknown client flags {flags:#x}"));
                }
                self.no_zeroes = flags & FLAG_C_NO_ZEROES != 0;
                self.state = State::Header;
            }
            State::Header => self.header(&unit),
            State::Data { option, .. } => {
                self.state = State::Header;
                self.option(option, &unit);
            }
            State::Skip { option, .. } => {
                self.state = State::Header;
                let msg = format!("option data longer than {MAX_OPTION_DATA} bytes");
                self.reply(option, REP_ERR_TOO_BIG, msg.as_bytes());
            }
            State::Done(_) => unreachable!("no unit is received after the end"),
        }
    }

    fn header(&mut self, head: &[u8]) {
        if be64(&head[0..8]) != IHAVEOPT {
            return self.fail("wrong option magic".into());
        }
        let (option, len) = (be32(&head[8..12]), be32(&head[12..16]));
        if option == OPT_EXPORT_NAME && len as usize > MAX_STRING {
            // No export has such a name, and this option cannot be answered with an error.
            return self.fail(format!("NBD_OPT_EXPORT_NAME with a {len}-byte name"));
        }
        if self.consumed + u64::from(len) > MAX_HANDSHAKE_BYTES {
            let msg = format!("the handshake may not exceed {MAX_HANDSHAKE_BYTES} bytes");
            self.reply(option, REP_ERR_TOO_BIG, msg.as_bytes());
            return self.fail(format!(
                "option {option} with {len} bytes of data after {} bytes of handshake",
                self.consumed
            ));
        }
        let len = len as usize;
        if len > MAX_OPTION_DATA {
            self.state = State::Skip {
                option,
                left: len as u64,
            };
        } else if len == 0 {
            self.option(option, &[]);
        } else {
            self.buf.reserve_exact(len);
            self.state = State::Data { option, len };
        }
    }

    /// Answer one whole option (the state is `Header` unless the option ends the handshake).
    fn option(&mut self, option: u32, data: &[u8]) {
        match option {
            OPT_EXPORT_NAME => {
                if !data.is_empty() {
                    return self.fail("NBD_OPT_EXPORT_NAME for an unknown export".into());
                }
                if self.extended {
                    // The client MUST NOT, and this option cannot be answered with an error.
                    return self.fail("NBD_OPT_EXPORT_NAME after extended headers".into());
                }
                let flags = transmission_flags(&self.export, self.framing());
                self.out.extend_from_slice(&self.export.size.to_be_bytes());
                self.out.extend_from_slice(&flags.to_be_bytes());
                if !self.no_zeroes {
                    self.out.extend_from_slice(&[0; 124]);
                }
                self.transmit();
            }
            OPT_ABORT => {
                self.reply(option, REP_ACK, b"");
                self.state = State::Done(Status::Left);
            }
            OPT_LIST if !data.is_empty() => self.invalid(option, "LIST takes no data"),
            OPT_LIST => {
                let mut server = 0u32.to_be_bytes().to_vec(); // the default export: ""
                server.extend_from_slice(self.export.description.as_bytes());
                self.reply(option, REP_SERVER, &server);
                self.reply(option, REP_ACK, b"");
            }
            OPT_STRUCTURED_REPLY if !data.is_empty() => {
                self.invalid(option, "STRUCTURED_REPLY takes no data");
            }
            OPT_STRUCTURED_REPLY if self.extended => self.reply(
                option,
                REP_ERR_EXT_HEADER_REQD,
                b"extended headers are already negotiated",
            ),
            OPT_STRUCTURED_REPLY => {
                self.structured = true;
                self.reply(option, REP_ACK, b"");
            }
            OPT_EXTENDED_HEADERS if !data.is_empty() => {
                self.invalid(option, "EXTENDED_HEADERS takes no data");
            }
            // Structured replies negotiated first or not, and again: acknowledged.
            OPT_EXTENDED_HEADERS => {
                self.extended = true;
                self.reply(option, REP_ACK, b"");
            }
            OPT_INFO | OPT_GO => match self.info(option, data) {
                Ok(()) if option == OPT_GO => self.transmit(),
                Ok(()) => {}
                Err((kind, msg)) => self.reply(option, kind, msg.as_bytes()),
            },
            OPT_LIST_META_CONTEXT | OPT_SET_META_CONTEXT => {
                if let Err((kind, msg)) = self.meta_context(option, data) {
                    self.reply(option, kind, msg.as_bytes());
                }
            }
            // Among them NBD_OPT_STARTTLS.
            _ => self.reply(option, REP_ERR_UNSUP, b"unsupported option"),
        }
    }

    /// Answer `NBD_OPT_INFO`/`NBD_OPT_GO`, or give the error reply to send instead (nothing
    /// is queued then).
    fn info(&mut self, option: u32, data: &[u8]) -> Result<(), (u32, &'static str)> {
        let bad = |why| (REP_ERR_INVALID, why);
        if data.len() < 6 {
            return Err(bad("option data shorter than 6 bytes"));
        }
        let name_len = be32(&data[0..4]) as usize;
        if name_len > data.len() - 6 || name_len > MAX_STRING {
            return Err(bad("export name length out of range"));
        }
        let rest = &data[4 + name_len..];
        let count = usize::from(be16(&rest[0..2]));
        if rest.len() != 2 + 2 * count {
            return Err(bad(
                "information request count does not match the data length",
            ));
        }
        if name_len != 0 {
            return Err((REP_ERR_UNKNOWN, "no such export (the export is named \"\")"));
        }
        let asked = |what: u16| rest[2..].chunks(2).any(|r| be16(r) == what);
        let (name, description) = (asked(INFO_NAME), asked(INFO_DESCRIPTION));
        let e = &self.export;
        let mut export = INFO_EXPORT.to_be_bytes().to_vec();
        export.extend_from_slice(&e.size.to_be_bytes());
        export.extend_from_slice(&transmission_flags(e, self.framing()).to_be_bytes());
        // Block sizes are sent whether asked for or not (a client ignores what it does not
        // understand): minimum 1, or the O_DIRECT alignment; preferred at least 4 KiB.
        let mut sizes = INFO_BLOCK_SIZE.to_be_bytes().to_vec();
        sizes.extend_from_slice(&e.min_block.to_be_bytes());
        sizes.extend_from_slice(&e.min_block.max(4096).to_be_bytes());
        sizes.extend_from_slice(&e.max_block.to_be_bytes());
        let mut text = INFO_DESCRIPTION.to_be_bytes().to_vec();
        text.extend_from_slice(e.description.as_bytes());
        self.reply(option, REP_INFO, &export);
        self.reply(option, REP_INFO, &sizes);
        if name {
            self.reply(option, REP_INFO, &INFO_NAME.to_be_bytes());
        }
        if description {
            self.reply(option, REP_INFO, &text);
        }
        self.reply(option, REP_ACK, b"");
        Ok(())
    }

    /// Answer `NBD_OPT_LIST_META_CONTEXT`/`NBD_OPT_SET_META_CONTEXT`, or give the error reply
    /// to send instead. The one context is `base:allocation`: listed for no query, `base:`
    /// or `base:allocation`; selected by `base:allocation` only (the protocol says `base:`
    /// selects nothing). Other queries match nothing, which is not an error. A SET replaces
    /// the selection even when it fails.
    fn meta_context(&mut self, option: u32, data: &[u8]) -> Result<(), (u32, &'static str)> {
        let set = option == OPT_SET_META_CONTEXT;
        if set {
            self.meta = false;
            if !self.framing().chunks() {
                return Err((
                    REP_ERR_INVALID,
                    "SET_META_CONTEXT needs structured replies or extended headers first",
                ));
            }
        }
        let q = Queries::parse(data).map_err(|why| (REP_ERR_INVALID, why))?;
        if !q.default_export {
            return Err((REP_ERR_UNKNOWN, "no such export (the export is named \"\")"));
        }
        let found = if set {
            q.base_allocation
        } else {
            q.count == 0 || q.base_allocation || q.base_namespace
        };
        if found {
            // A LIST's context id is reserved and sent as 0.
            let id = if set { BASE_ALLOCATION_ID } else { 0 };
            let mut context = id.to_be_bytes().to_vec();
            context.extend_from_slice(BASE_ALLOCATION.as_bytes());
            self.reply(option, REP_META_CONTEXT, &context);
        }
        self.reply(option, REP_ACK, b"");
        if set {
            self.meta = found;
        }
        Ok(())
    }

    /// How transmission would be framed if it started now.
    fn framing(&self) -> Framing {
        if self.extended {
            Framing::Extended
        } else if self.structured {
            Framing::Structured
        } else {
            Framing::Simple
        }
    }

    fn transmit(&mut self) {
        let framing = self.framing();
        self.state = State::Done(Status::Transmit {
            framing,
            block_status: framing.chunks() && self.meta,
        });
    }

    fn fail(&mut self, why: String) {
        self.state = State::Done(Status::Failed(why));
    }

    fn invalid(&mut self, option: u32, msg: &str) {
        self.reply(option, REP_ERR_INVALID, msg.as_bytes());
    }

    fn reply(&mut self, option: u32, kind: u32, payload: &[u8]) {
        self.out.extend(option_reply(option, kind, payload));
    }
}

/// What the queries of a metadata context option ask for.
struct Queries {
    /// The export name is "" (the one export).
    default_export: bool,
    count: u32,
    /// A query is exactly `base:allocation`.
    base_allocation: bool,
    /// A query is exactly `base:` (the namespace's wildcard, for LIST).
    base_namespace: bool,
}

impl Queries {
    /// Decode the option's data: export name, query count, then each query as a length and
    /// a string; every length must stay inside the data and the data must end with the last
    /// query.
    fn parse(data: &[u8]) -> Result<Queries, &'static str> {
        let mut at = Cursor(data);
        let name_len = at.u32().ok_or("option data shorter than 4 bytes")? as usize;
        if name_len > MAX_STRING {
            return Err("export name longer than 4096 bytes");
        }
        at.bytes(name_len).ok_or("export name runs past the data")?;
        let count = at.u32().ok_or("no query count")?;
        let mut q = Queries {
            default_export: name_len == 0,
            count,
            base_allocation: false,
            base_namespace: false,
        };
        for _ in 0..count {
            let len = at.u32().ok_or("fewer queries than counted")? as usize;
            let query = at.bytes(len).ok_or("query runs past the data")?;
            q.base_allocation |= query == BASE_ALLOCATION.as_bytes();
            q.base_namespace |= query == b"base:";
        }
        if !at.0.is_empty() {
            return Err("data after the last query");
        }
        Ok(q)
    }
}

/// Reads big-endian fields off the front of a slice.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        self.bytes(4).map(be32)
    }
}

/// The transmission flags of the export, as negotiated so far.
pub fn transmission_flags(export: &ExportInfo, framing: Framing) -> u16 {
    let mut f = FLAG_HAS_FLAGS | FLAG_SEND_FLUSH | FLAG_SEND_FUA | FLAG_CAN_MULTI_CONN;
    if export.readonly {
        f |= FLAG_READ_ONLY;
    } else {
        f |= FLAG_SEND_TRIM | FLAG_SEND_WRITE_ZEROES;
    }
    if framing.chunks() {
        // Every READ is answered with one content chunk, so "don't fragment" is always met.
        f |= FLAG_SEND_DF;
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export() -> ExportInfo {
        ExportInfo {
            size: 1 << 20,
            readonly: false,
            min_block: 1,
            max_block: 32 << 20,
            description: "test".into(),
        }
    }

    fn option(code: u32, data: &[u8]) -> Vec<u8> {
        let mut v = IHAVEOPT.to_be_bytes().to_vec();
        v.extend_from_slice(&code.to_be_bytes());
        v.extend_from_slice(&(data.len() as u32).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    fn meta(name: &[u8], queries: &[&[u8]]) -> Vec<u8> {
        let mut v = (name.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(name);
        v.extend_from_slice(&(queries.len() as u32).to_be_bytes());
        for q in queries {
            v.extend_from_slice(&(q.len() as u32).to_be_bytes());
            v.extend_from_slice(q);
        }
        v
    }

    /// A handshake past the greeting and client flags.
    fn greeted() -> Handshake {
        let mut hs = Handshake::new(export());
        assert_eq!(hs.take_output().len(), 18);
        assert_eq!(hs.feed(&3u32.to_be_bytes()), 4);
        hs
    }

    /// The (option, reply type, payload) of each reply in `out`.
    fn replies(mut out: &[u8]) -> Vec<(u32, u32, Vec<u8>)> {
        let mut v = Vec::new();
        while !out.is_empty() {
            assert_eq!(be64(&out[0..8]), OPT_REPLY_MAGIC);
            let len = be32(&out[16..20]) as usize;
            v.push((
                be32(&out[8..12]),
                be32(&out[12..16]),
                out[20..20 + len].to_vec(),
            ));
            out = &out[20 + len..];
        }
        v
    }

    fn kinds(hs: &mut Handshake) -> Vec<u32> {
        replies(&hs.take_output()).iter().map(|r| r.1).collect()
    }

    #[test]
    fn list_meta_context_finds_base_allocation_for_no_query_or_base() {
        let mut hs = greeted();
        for queries in [
            &[][..],
            &[b"base:".as_slice()],
            &[b"base:allocation", b"x-y:z"],
        ] {
            hs.feed(&option(OPT_LIST_META_CONTEXT, &meta(b"", queries)));
            let r = replies(&hs.take_output());
            assert_eq!(r.len(), 2, "{queries:?}");
            assert_eq!(r[0].1, REP_META_CONTEXT);
            assert_eq!(be32(&r[0].2[0..4]), 0, "a LIST's id is 0");
            assert_eq!(&r[0].2[4..], BASE_ALLOCATION.as_bytes());
            assert_eq!(r[1].1, REP_ACK);
        }
        hs.feed(&option(OPT_LIST_META_CONTEXT, &meta(b"", &[b"qemu:dirty"])));
        assert_eq!(kinds(&mut hs), [REP_ACK]);
    }

    #[test]
    fn set_meta_context_needs_structured_and_the_last_one_counts() {
        let mut hs = greeted();
        let set = option(OPT_SET_META_CONTEXT, &meta(b"", &[b"base:allocation"]));
        hs.feed(&set);
        assert_eq!(kinds(&mut hs), [REP_ERR_INVALID]);
        hs.feed(&option(OPT_STRUCTURED_REPLY, &[]));
        hs.feed(&set);
        let r = replies(&hs.take_output());
        assert_eq!(r[1].1, REP_META_CONTEXT);
        assert_eq!(be32(&r[1].2[0..4]), BASE_ALLOCATION_ID);
        // `base:` selects nothing, and replaces the selection.
        hs.feed(&option(OPT_SET_META_CONTEXT, &meta(b"", &[b"base:"])));
        assert_eq!(kinds(&mut hs), [REP_ACK]);
        hs.feed(&option(OPT_GO, &[0; 6]));
        let want = Status::Transmit {
            framing: Framing::Structured,
            block_status: false,
        };
        assert_eq!(hs.status(), want);
    }

    #[test]
    fn set_meta_context_errors() {
        let mut hs = greeted();
        hs.feed(&option(OPT_STRUCTURED_REPLY, &[]));
        hs.take_output();
        let mut too_many = meta(b"", &[b"base:allocation"]);
        too_many[7] = 2; // two queries counted, one sent
        let mut trailing = meta(b"", &[b"base:allocation"]);
        trailing.push(0);
        for bad in [
            &[0u8, 0, 0][..],
            &too_many,
            &trailing,
            &[0, 0, 0x10, 1, 0, 0, 0, 0],
        ] {
            hs.feed(&option(OPT_SET_META_CONTEXT, bad));
            assert_eq!(kinds(&mut hs), [REP_ERR_INVALID], "{bad:?}");
        }
        hs.feed(&option(
            OPT_SET_META_CONTEXT,
            &meta(b"nope", &[b"base:allocation"]),
        ));
        assert_eq!(kinds(&mut hs), [REP_ERR_UNKNOWN]);
    }

    #[test]
    fn extended_headers_take_no_data_imply_chunks_and_exclude_export_name() {
        let mut hs = greeted();
        hs.feed(&option(OPT_EXTENDED_HEADERS, &[0]));
        assert_eq!(kinds(&mut hs), [REP_ERR_INVALID]);
        // Without structured replies first: block status can be selected all the same.
        hs.feed(&option(OPT_EXTENDED_HEADERS, &[]));
        assert_eq!(kinds(&mut hs), [REP_ACK]);
        hs.feed(&option(OPT_EXTENDED_HEADERS, &[]));
        assert_eq!(kinds(&mut hs), [REP_ACK], "asking again changes nothing");
        hs.feed(&option(OPT_STRUCTURED_REPLY, &[]));
        assert_eq!(kinds(&mut hs), [REP_ERR_EXT_HEADER_REQD], "no downgrade");
        let set = option(OPT_SET_META_CONTEXT, &meta(b"", &[b"base:allocation"]));
        hs.feed(&set);
        assert_eq!(kinds(&mut hs), [REP_META_CONTEXT, REP_ACK]);
        hs.feed(&option(OPT_GO, &[0; 6]));
        let r = replies(&hs.take_output());
        let flags = be16(&r[0].2[10..12]);
        assert_ne!(flags & FLAG_SEND_DF, 0, "DF with extended headers");
        let want = Status::Transmit {
            framing: Framing::Extended,
            block_status: true,
        };
        assert_eq!(hs.status(), want);

        let mut hs = greeted();
        hs.feed(&option(OPT_STRUCTURED_REPLY, &[]));
        hs.feed(&option(OPT_EXTENDED_HEADERS, &[]));
        assert_eq!(kinds(&mut hs), [REP_ACK, REP_ACK]);
        hs.feed(&option(OPT_EXPORT_NAME, &[]));
        assert!(hs.take_output().is_empty());
        assert!(matches!(hs.status(), Status::Failed(_)));
    }

    #[test]
    fn oversized_option_is_skipped_unbuffered_and_answered_too_big() {
        let mut hs = greeted();
        let big = option(0x4242, &vec![7; MAX_OPTION_DATA + 1]);
        for chunk in big.chunks(1000) {
            assert_eq!(hs.feed(chunk), chunk.len());
            assert!(hs.buffered() <= 16);
        }
        assert_eq!(kinds(&mut hs), [REP_ERR_TOO_BIG]);
        hs.feed(&option(OPT_LIST, &[]));
        assert_eq!(kinds(&mut hs), [REP_SERVER, REP_ACK]);
    }

    #[test]
    fn a_handshake_over_its_byte_budget_fails_after_too_big() {
        let mut hs = greeted();
        let mut head = option(OPT_INFO, &[]);
        head[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
        hs.feed(&head);
        assert_eq!(kinds(&mut hs), [REP_ERR_TOO_BIG]);
        assert!(matches!(hs.status(), Status::Failed(_)));
        assert_eq!(hs.feed(&[0; 10]), 0, "nothing is consumed after the end");
    }

    #[test]
    fn export_name_ends_with_size_and_flags() {
        let mut hs = Handshake::new(export());
        hs.feed(&1u32.to_be_bytes()); // fixed newstyle, with the 124 zeroes
        hs.take_output();
        hs.feed(&option(OPT_EXPORT_NAME, &[]));
        let out = hs.take_output();
        assert_eq!(out.len(), 8 + 2 + 124);
        assert_eq!(be64(&out[0..8]), 1 << 20);
        assert_eq!(
            be16(&out[8..10]),
            transmission_flags(&export(), Framing::Simple)
        );
        let want = Status::Transmit {
            framing: Framing::Simple,
            block_status: false,
        };
        assert_eq!(hs.status(), want);
    }
}
