//! Property tests of the NBD server's pure protocol code (issue 13): the request parsers
//! (compact and extended), the reply heads of every framing, and the handshake state machine
//! (`examples/nbd_server/handshake/machine.rs`), included here by path, fed arbitrary bytes
//! split at arbitrary points.
//!
//! What holds for any input: nothing panics; at most `MAX_OPTION_DATA` bytes are held and at
//! most `MAX_HANDSHAKE_BYTES` (plus one header) consumed; the output is the greeting followed
//! by well-formed option replies (magic, the option echoed in order, a length equal to the
//! payload, every option answered with one final reply), save the answer to
//! `NBD_OPT_EXPORT_NAME`; and how the input is split changes nothing. What holds for
//! generated option sequences: a valid one ends in transmission with the framing (simple,
//! structured, extended headers) and block-status state a model of the protocol predicts,
//! reply by reply, or, for `NBD_OPT_EXPORT_NAME` after extended headers, in a closed
//! connection; a malformed option never starts transmission; an oversized one is answered
//! `ERR_TOO_BIG` and the next option works. Every reply head, in every framing, announces
//! exactly the payload that follows it and repeats the request's handle (and, extended, its
//! offset).

#[allow(dead_code, reason = "the test uses part of the wire format")]
#[path = "../examples/nbd_server/proto.rs"]
mod proto;

/// The metadata context names of `examples/nbd_server/status.rs`, which does I/O and is not
/// included; `stub_matches_status_rs` checks they agree.
mod status {
    pub const BASE_ALLOCATION: &str = "base:allocation";
    pub const BASE_ALLOCATION_ID: u32 = 1;
}

#[path = "../examples/nbd_server/handshake/machine.rs"]
mod machine;

use machine::{ExportInfo, Handshake, MAX_HANDSHAKE_BYTES, MAX_OPTION_DATA, Status};
use proptest::prelude::*;
use proto::*;

const SIZE: u64 = 64 << 20;

fn export() -> ExportInfo {
    ExportInfo {
        size: SIZE,
        readonly: false,
        min_block: 1,
        max_block: 32 << 20,
        description: "proptest export".into(),
    }
}

/// `cases` cases, failures reported but not saved to files.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// What one run of the state machine gave.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    out: Vec<u8>,
    status: Status,
    consumed: usize,
}

/// Feed `input` in pieces of the sizes in `chunks` (cycled; empty: all at once), checking the
/// limits after every feed.
fn run(input: &[u8], chunks: &[usize]) -> Run {
    let mut hs = Handshake::new(export());
    let mut out = hs.take_output();
    let mut at = 0;
    let mut sizes = chunks.iter().copied().cycle();
    while at < input.len() {
        let Status::Receive(want) = hs.status() else {
            break;
        };
        assert!(want > 0, "Receive(0) would stall the driver");
        let n = sizes
            .next()
            .unwrap_or(input.len())
            .clamp(1, input.len() - at);
        let used = hs.feed(&input[at..at + n]);
        assert!(used <= n);
        if used < n {
            assert!(
                !matches!(hs.status(), Status::Receive(_)),
                "input left over only at the end"
            );
        }
        at += used;
        out.extend(hs.take_output());
        assert!(hs.buffered() <= MAX_OPTION_DATA, "{} held", hs.buffered());
        assert!(hs.consumed() <= MAX_HANDSHAKE_BYTES + 16);
        assert_eq!(hs.consumed(), at as u64);
        if used < n {
            break;
        }
    }
    Run {
        out,
        status: hs.status(),
        consumed: at,
    }
}

/// The option codes whose headers the client sent, in order, from the consumed input (the
/// option the handshake ended in included).
fn sent_options(input: &[u8]) -> Vec<u32> {
    let mut v = Vec::new();
    let mut at = 4;
    while at + 16 <= input.len() && be64(&input[at..]) == IHAVEOPT {
        v.push(be32(&input[at + 8..]));
        at += 16 + be32(&input[at + 12..]) as usize;
    }
    v
}

fn is_final(kind: u32) -> bool {
    kind == REP_ACK || kind & (1 << 31) != 0
}

/// One option reply off the front of `out`: (option, reply type, payload).
fn next_reply<'a>(out: &mut &'a [u8]) -> (u32, u32, &'a [u8]) {
    assert!(out.len() >= 20, "a truncated reply header: {out:?}");
    assert_eq!(be64(&out[0..8]), OPT_REPLY_MAGIC, "reply magic");
    let len = be32(&out[16..20]) as usize;
    assert!(
        out.len() >= 20 + len,
        "the length field runs past the reply"
    );
    let r = (be32(&out[8..12]), be32(&out[12..16]), &out[20..20 + len]);
    *out = &out[20 + len..];
    r
}

/// The replies of `run` per option, checked for form: the greeting, then for each option
/// sent (in order) its replies, each echoing it and the last one final; the raw answer to
/// `EXPORT_NAME` only when transmission started with it. Returns the reply types per option.
fn check_form(input: &[u8], r: &Run) -> Vec<Vec<u32>> {
    let mut out = &r.out[..];
    assert_eq!(be64(&out[0..8]), NBDMAGIC);
    assert_eq!(be64(&out[8..16]), IHAVEOPT);
    assert_eq!(be16(&out[16..18]), FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
    out = &out[18..];
    let options = sent_options(&input[..r.consumed]);
    let mut kinds = Vec::new();
    for (i, &option) in options.iter().enumerate() {
        if out.is_empty() {
            // Only the last option may go unanswered: its data is still coming, or it
            // ended the handshake without a reply (a wrong magic is not an option here).
            assert_eq!(i + 1, options.len(), "option {i} ({option}) unanswered");
            break;
        }
        let last = i + 1 == options.len();
        if option == OPT_EXPORT_NAME && last && matches!(r.status, Status::Transmit { .. }) {
            let flags_c = be32(&input[0..4]);
            let want = if flags_c & FLAG_C_NO_ZEROES != 0 {
                10
            } else {
                134
            };
            assert_eq!(out.len(), want);
            assert_eq!(be64(out), SIZE);
            assert!(out[10..].iter().all(|&b| b == 0));
            out = &[];
            kinds.push(vec![]);
            break;
        }
        let mut these = Vec::new();
        loop {
            let (echo, kind, payload) = next_reply(&mut out);
            assert_eq!(echo, option, "reply {these:?} of option {i}");
            these.push(kind);
            match kind {
                REP_SERVER => assert!(be32(payload) as usize <= payload.len() - 4),
                REP_INFO => assert!(payload.len() >= 2),
                REP_META_CONTEXT => assert_eq!(&payload[4..], b"base:allocation"),
                _ => {}
            }
            if is_final(kind) {
                break;
            }
        }
        kinds.push(these);
    }
    assert!(out.is_empty(), "{} bytes after the last reply", out.len());
    kinds
}

fn option(code: u32, data: &[u8]) -> Vec<u8> {
    let mut v = IHAVEOPT.to_be_bytes().to_vec();
    v.extend_from_slice(&code.to_be_bytes());
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(data);
    v
}

fn info_data(name: &[u8], requests: &[u16]) -> Vec<u8> {
    let mut v = (name.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(name);
    v.extend_from_slice(&(requests.len() as u16).to_be_bytes());
    for r in requests {
        v.extend_from_slice(&r.to_be_bytes());
    }
    v
}

fn meta_data(name: &[u8], queries: &[Vec<u8>]) -> Vec<u8> {
    let mut v = (name.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(name);
    v.extend_from_slice(&(queries.len() as u32).to_be_bytes());
    for q in queries {
        v.extend_from_slice(&(q.len() as u32).to_be_bytes());
        v.extend_from_slice(q);
    }
    v
}

/// A well-formed option that does not end the handshake.
#[derive(Clone, Debug)]
enum Opt {
    Structured,
    Extended,
    List,
    Info(Vec<u16>),
    ListMeta(Vec<Vec<u8>>),
    SetMeta(Vec<Vec<u8>>),
    Unknown(u32, Vec<u8>),
}

/// The option that should end it.
#[derive(Clone, Debug)]
enum Last {
    Go(Vec<u16>),
    ExportName,
}

fn query() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"base:allocation".to_vec()),
        Just(b"base:".to_vec()),
        Just(b"base:other".to_vec()),
        Just(b"qemu:dirty-bitmap:a".to_vec()),
        Just(b"base:allocation2".to_vec()),
        prop::collection::vec(any::<u8>(), 0..24),
    ]
}

fn opt() -> impl Strategy<Value = Opt> {
    let requests = prop::collection::vec(0u16..6, 0..6);
    let queries = || prop::collection::vec(query(), 0..4);
    // Codes the server does not know: PEEK_EXPORT, STARTTLS and beyond EXTENDED_HEADERS.
    let unknown = prop_oneof![Just(4u32), Just(5), 12u32..1000, any::<u32>()]
        .prop_filter("an unknown code", |c| {
            !(1..=11).contains(c) || [4, 5].contains(c)
        });
    prop_oneof![
        Just(Opt::Structured),
        Just(Opt::Extended),
        Just(Opt::List),
        requests.prop_map(Opt::Info),
        queries().prop_map(Opt::ListMeta),
        queries().prop_map(Opt::SetMeta),
        (unknown, prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(c, d)| Opt::Unknown(c, d)),
    ]
}

fn last() -> impl Strategy<Value = Last> {
    prop_oneof![
        prop::collection::vec(0u16..6, 0..6).prop_map(Last::Go),
        Just(Last::ExportName),
    ]
}

/// The protocol as the model sees it: the reply types each option gets, and the state.
#[derive(Default)]
struct Model {
    structured: bool,
    extended: bool,
    meta: bool,
}

impl Model {
    fn info_replies(requests: &[u16]) -> Vec<u32> {
        let mut v = vec![REP_INFO, REP_INFO]; // NBD_INFO_EXPORT, NBD_INFO_BLOCK_SIZE
        for asked in [INFO_NAME, INFO_DESCRIPTION] {
            if requests.contains(&asked) {
                v.push(REP_INFO);
            }
        }
        v.push(REP_ACK);
        v
    }

    fn replies(&mut self, o: &Opt) -> Vec<u32> {
        let is = |q: &Vec<u8>, s: &[u8]| q.as_slice() == s;
        match o {
            Opt::Structured if self.extended => vec![REP_ERR_EXT_HEADER_REQD],
            Opt::Structured => {
                self.structured = true;
                vec![REP_ACK]
            }
            Opt::Extended => {
                self.extended = true;
                vec![REP_ACK]
            }
            Opt::List => vec![REP_SERVER, REP_ACK],
            Opt::Info(r) => Model::info_replies(r),
            Opt::ListMeta(qs) => {
                let found = qs.is_empty()
                    || qs
                        .iter()
                        .any(|q| is(q, b"base:allocation") || is(q, b"base:"));
                if found {
                    vec![REP_META_CONTEXT, REP_ACK]
                } else {
                    vec![REP_ACK]
                }
            }
            Opt::SetMeta(_) if !self.structured && !self.extended => {
                self.meta = false;
                vec![REP_ERR_INVALID]
            }
            Opt::SetMeta(qs) => {
                self.meta = qs.iter().any(|q| is(q, b"base:allocation"));
                if self.meta {
                    vec![REP_META_CONTEXT, REP_ACK]
                } else {
                    vec![REP_ACK]
                }
            }
            Opt::Unknown(..) => vec![REP_ERR_UNSUP],
        }
    }

    fn framing(&self) -> Framing {
        match (self.extended, self.structured) {
            (true, _) => Framing::Extended,
            (false, true) => Framing::Structured,
            (false, false) => Framing::Simple,
        }
    }
}

fn encode(o: &Opt) -> Vec<u8> {
    match o {
        Opt::Structured => option(OPT_STRUCTURED_REPLY, &[]),
        Opt::Extended => option(OPT_EXTENDED_HEADERS, &[]),
        Opt::List => option(OPT_LIST, &[]),
        Opt::Info(r) => option(OPT_INFO, &info_data(b"", r)),
        Opt::ListMeta(qs) => option(OPT_LIST_META_CONTEXT, &meta_data(b"", qs)),
        Opt::SetMeta(qs) => option(OPT_SET_META_CONTEXT, &meta_data(b"", qs)),
        Opt::Unknown(c, d) => option(*c, d),
    }
}

fn client_flags() -> impl Strategy<Value = u32> {
    0u32..4
}

fn chunking() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..48, 0..12)
}

/// Input that is mostly well-framed options with arbitrary codes and data, now and then a
/// byte flipped: deeper into the state machine than uniformly random bytes get.
fn framed_garbage() -> impl Strategy<Value = Vec<u8>> {
    let code = prop_oneof![1u32..=12, any::<u32>()];
    let data = prop::collection::vec(any::<u8>(), 0..48);
    let opts = prop::collection::vec((code, data), 0..8);
    let flips = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3);
    (client_flags(), opts, flips).prop_map(|(flags, opts, flips)| {
        let mut v = flags.to_be_bytes().to_vec();
        for (c, d) in opts {
            v.extend(option(c, &d));
        }
        for (i, b) in flips {
            let at = i.index(v.len());
            v[at] ^= b;
        }
        v
    })
}

/// The valid GO data: empty name, `count` requests, lengths that agree.
fn go_is_valid(d: &[u8]) -> bool {
    d.len() >= 6 && be32(d) == 0 && d.len() == 6 + 2 * usize::from(be16(&d[4..]))
}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn parse_request_round_trips_any_header(b in any::<[u8; REQUEST_LEN]>()) {
        match parse_request(&b) {
            None => prop_assert_ne!(be32(&b), REQUEST_MAGIC),
            Some(r) => {
                let mut again = REQUEST_MAGIC.to_be_bytes().to_vec();
                again.extend_from_slice(&r.flags.to_be_bytes());
                again.extend_from_slice(&r.kind.to_be_bytes());
                again.extend_from_slice(&r.handle.to_be_bytes());
                again.extend_from_slice(&r.offset.to_be_bytes());
                again.extend_from_slice(&r.len.to_be_bytes());
                prop_assert_eq!(&again[..], &b[..]);
            }
        }
    }

    #[test]
    fn parse_extended_request_round_trips_any_header(b in any::<[u8; EXTENDED_REQUEST_LEN]>()) {
        match parse_extended_request(&b) {
            None => prop_assert_ne!(be32(&b), EXTENDED_REQUEST_MAGIC),
            Some(r) => {
                let mut again = EXTENDED_REQUEST_MAGIC.to_be_bytes().to_vec();
                again.extend_from_slice(&r.flags.to_be_bytes());
                again.extend_from_slice(&r.kind.to_be_bytes());
                again.extend_from_slice(&r.handle.to_be_bytes());
                again.extend_from_slice(&r.offset.to_be_bytes());
                again.extend_from_slice(&r.len.to_be_bytes());
                prop_assert_eq!(&again[..], &b[..]);
                // Each form has its own magic: never both.
                let compact: [u8; REQUEST_LEN] = b[..REQUEST_LEN].try_into().unwrap();
                prop_assert!(parse_request(&compact).is_none());
            }
        }
    }

    #[test]
    fn a_payload_follows_writes_and_extended_payload_len_only(
        flags in any::<u16>(),
        kind in prop_oneof![0u16..8, any::<u16>()],
        len in any::<u64>(),
    ) {
        let r = Request { flags, kind, handle: 1, offset: 0, len };
        let write = kind == CMD_WRITE;
        for framing in [Framing::Simple, Framing::Structured] {
            prop_assert_eq!(r.payload(framing), if write { len } else { 0 });
        }
        let flagged = flags & CMD_FLAG_PAYLOAD_LEN != 0;
        prop_assert_eq!(r.payload(Framing::Extended), if write || flagged { len } else { 0 });
    }

    #[test]
    fn reply_heads_frame_their_payload_in_every_framing(
        handle in any::<u64>(),
        offset in any::<u64>(),
        data_len in 1u32..=(32 << 20),
        msg_len in 0u16..=4096,
        extents in 1usize..=1024,
        error in prop_oneof![Just(NbdError::Inval), Just(NbdError::Io), Just(NbdError::Overflow)],
    ) {
        for framing in [Framing::Simple, Framing::Structured, Framing::Extended] {
            let to = ReplyTo { framing, handle, offset };
            let ext = framing == Framing::Extended;
            let status_len = if ext { 16 } else { 8 } * extents as u64;
            let heads = [
                (Head::done(to), 0, REPLY_TYPE_NONE),
                (Head::read(to, data_len), u64::from(data_len), REPLY_TYPE_OFFSET_DATA),
                (Head::error(to, error, msg_len), u64::from(msg_len), REPLY_TYPE_ERROR),
                (Head::block_status(to, 1, extents), status_len, REPLY_TYPE_BLOCK_STATUS_EXT),
            ];
            for (head, follows, kind) in heads {
                if framing == Framing::Simple && kind == REPLY_TYPE_BLOCK_STATUS_EXT {
                    continue; // Block status needs chunks: refused before it runs.
                }
                let b = head.as_bytes();
                let magic = be32(b);
                if framing == Framing::Simple || (framing == Framing::Structured && kind == REPLY_TYPE_NONE) {
                    prop_assert_eq!(magic, SIMPLE_REPLY_MAGIC);
                    prop_assert_eq!(b.len(), 16);
                    prop_assert_eq!(be64(&b[8..16]), handle);
                    let err = if kind == REPLY_TYPE_ERROR { error as u32 } else { 0 };
                    prop_assert_eq!(be32(&b[4..8]), err);
                    continue;
                }
                // A chunk: DONE, the handle, and a length covering the rest of the head
                // plus what follows it in the frame.
                prop_assert_eq!(be16(&b[4..6]), REPLY_FLAG_DONE);
                prop_assert_eq!(be64(&b[8..16]), handle);
                let (header, len) = if ext {
                    prop_assert_eq!(magic, EXTENDED_REPLY_MAGIC);
                    prop_assert_eq!(be64(&b[16..24]), offset, "the request's offset");
                    (32, be64(&b[24..32]))
                } else {
                    prop_assert_eq!(magic, STRUCTURED_REPLY_MAGIC);
                    (20, u64::from(be32(&b[16..20])))
                };
                prop_assert_eq!(len, (b.len() - header) as u64 + follows);
                let want_kind = match kind {
                    REPLY_TYPE_BLOCK_STATUS_EXT if !ext => REPLY_TYPE_BLOCK_STATUS,
                    k => k,
                };
                prop_assert_eq!(be16(&b[6..8]), want_kind);
                if kind == REPLY_TYPE_OFFSET_DATA {
                    prop_assert_eq!(be64(&b[header..]), offset, "the data's offset");
                }
            }
        }
    }

    #[test]
    fn arbitrary_bytes_give_well_formed_replies_however_split(
        flags in client_flags(),
        body in prop::collection::vec(any::<u8>(), 0..256),
        chunks in chunking(),
    ) {
        let mut input = flags.to_be_bytes().to_vec();
        input.extend(body);
        let whole = run(&input, &[]);
        check_form(&input, &whole);
        prop_assert_eq!(run(&input, &chunks), whole);
    }

    #[test]
    fn framed_garbage_gives_well_formed_replies_however_split(
        input in framed_garbage(),
        chunks in chunking(),
    ) {
        let whole = run(&input, &[]);
        check_form(&input, &whole);
        prop_assert_eq!(run(&input, &chunks), whole);
    }

    #[test]
    fn valid_option_sequences_transmit_as_negotiated(
        flags in client_flags(),
        opts in prop::collection::vec(opt(), 0..10),
        end in last(),
        chunks in chunking(),
    ) {
        let mut input = flags.to_be_bytes().to_vec();
        let mut model = Model::default();
        let mut want = Vec::new();
        for o in &opts {
            input.extend(encode(o));
            want.push(model.replies(o));
        }
        match &end {
            Last::Go(r) => {
                input.extend(option(OPT_GO, &info_data(b"", r)));
                want.push(Model::info_replies(r));
            }
            // The client MUST NOT after extended headers: the server closes, unanswered.
            Last::ExportName if model.extended => input.extend(option(OPT_EXPORT_NAME, &[])),
            Last::ExportName => {
                input.extend(option(OPT_EXPORT_NAME, &[]));
                want.push(vec![]);
            }
        }
        let r = run(&input, &chunks);
        prop_assert_eq!(r.consumed, input.len());
        if matches!(end, Last::ExportName) && model.extended {
            prop_assert!(matches!(r.status, Status::Failed(_)), "{:?}", r.status);
        } else {
            prop_assert_eq!(&r.status, &Status::Transmit {
                framing: model.framing(),
                block_status: model.meta,
            });
        }
        prop_assert_eq!(check_form(&input, &r), want);
    }

    #[test]
    fn a_malformed_option_never_transmits(
        flags in client_flags(),
        opts in prop::collection::vec(opt(), 0..4),
        bad in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..24)
                .prop_filter("malformed", |d| !go_is_valid(d))
                .prop_map(|d| (OPT_GO, d)),
            // INFO/GO data that is well-framed but names another export or miscounts.
            (1u32..8, 0u16..4, any::<bool>()).prop_map(|(name, n, miscount)| {
                let mut d = info_data(&vec![b'x'; name as usize], &vec![1; n.into()]);
                if miscount {
                    d.truncate(d.len() - 1);
                }
                (OPT_GO, d)
            }),
            prop::collection::vec(any::<u8>(), 1..24).prop_map(|d| (OPT_EXPORT_NAME, d)),
            prop::collection::vec(any::<u8>(), 0..24)
                .prop_map(|d| (OPT_SET_META_CONTEXT, d)),
            prop::collection::vec(any::<u8>(), 1..24).prop_map(|d| (OPT_EXTENDED_HEADERS, d)),
        ],
        chunks in chunking(),
    ) {
        let mut input = flags.to_be_bytes().to_vec();
        for o in &opts {
            input.extend(encode(o));
        }
        let (code, data) = bad;
        input.extend(option(code, &data));
        let r = run(&input, &chunks);
        prop_assert!(!matches!(r.status, Status::Transmit { .. }), "{:?}", r.status);
        let kinds = check_form(&input, &r);
        if code == OPT_EXPORT_NAME {
            prop_assert!(matches!(r.status, Status::Failed(_)));
        } else if code == OPT_GO {
            let last = kinds.last().and_then(|k| k.last()).copied();
            prop_assert!(matches!(last, Some(REP_ERR_INVALID | REP_ERR_UNKNOWN)), "{last:?}");
        } else if code == OPT_EXTENDED_HEADERS {
            prop_assert_eq!(kinds.last(), Some(&vec![REP_ERR_INVALID]));
        }
    }
}

proptest! {
    #![proptest_config(config(16))]

    #[test]
    fn an_oversized_option_gets_too_big_and_the_next_one_works(
        extra in 1usize..MAX_OPTION_DATA,
        code in prop_oneof![Just(OPT_GO), Just(OPT_LIST), Just(OPT_SET_META_CONTEXT), Just(0x4242)],
        chunk in 1000usize..70_000,
    ) {
        let mut input = 3u32.to_be_bytes().to_vec();
        input.extend(option(code, &vec![0x5a; MAX_OPTION_DATA + extra]));
        input.extend(option(OPT_LIST, &[]));
        let r = run(&input, &[chunk]);
        prop_assert_eq!(r.consumed, input.len());
        prop_assert_eq!(&r.status, &Status::Receive(16));
        let kinds = check_form(&input, &r);
        prop_assert_eq!(kinds, vec![vec![REP_ERR_TOO_BIG], vec![REP_SERVER, REP_ACK]]);
    }
}

#[test]
fn the_largest_legal_go_is_answered() {
    let requests: Vec<u16> = (0..65_535).map(|i| i % 7).collect();
    let mut input = 3u32.to_be_bytes().to_vec();
    input.extend(option(OPT_GO, &info_data(&[b'n'; 4096][..0], &requests)));
    let r = run(&input, &[4096]);
    assert_eq!(r.consumed, input.len());
    let go = Model::info_replies(&requests);
    assert_eq!(check_form(&input, &r), vec![go]);
    // A 4096-byte name: the largest data, answered (ERR_UNKNOWN: the export is "").
    let mut input = 3u32.to_be_bytes().to_vec();
    input.extend(option(OPT_INFO, &info_data(&[b'n'; 4096], &requests)));
    assert_eq!(input.len() - 4 - 16, 4 + 4096 + 2 + 2 * 65_535);
    let r = run(&input, &[]);
    assert_eq!(check_form(&input, &r), vec![vec![REP_ERR_UNKNOWN]]);
}

#[test]
fn a_handshake_past_its_byte_budget_is_closed_after_too_big() {
    let one = option(0x4242, &vec![0; 1 << 20]);
    let mut input = 3u32.to_be_bytes().to_vec();
    while input.len() as u64 <= MAX_HANDSHAKE_BYTES + (2 << 20) {
        input.extend(&one);
    }
    let r = run(&input, &[1 << 16]);
    let Status::Failed(why) = &r.status else {
        panic!(
            "still negotiating after {} bytes: {:?}",
            r.consumed, r.status
        );
    };
    assert!(r.consumed as u64 <= MAX_HANDSHAKE_BYTES + 16, "{why}");
    let kinds = check_form(&input, &r);
    assert!(kinds.iter().all(|k| k == &[REP_ERR_TOO_BIG]));
    assert_eq!(kinds.len() as u64, MAX_HANDSHAKE_BYTES / (1 << 20));
}

#[test]
fn stub_matches_status_rs() {
    let src = include_str!("../examples/nbd_server/status.rs");
    let name = format!(
        "pub const BASE_ALLOCATION: &str = {:?};",
        status::BASE_ALLOCATION
    );
    let id = format!(
        "pub const BASE_ALLOCATION_ID: u32 = {};",
        status::BASE_ALLOCATION_ID
    );
    assert!(
        src.contains(&name) && src.contains(&id),
        "status.rs changed: update the stub"
    );
}
