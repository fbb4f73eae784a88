//! The fixed newstyle handshake and option haggling.
//!
//! The server offers `NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES`, then answers options
//! until the client picks the export (`NBD_OPT_EXPORT_NAME`, or `NBD_OPT_GO` answered with
//! `NBD_REP_ACK`) or leaves (`NBD_OPT_ABORT`, end of stream).
//!
//! | option | answer |
//! |---|---|
//! | `EXPORT_NAME` | size, flags (and 124 zeroes unless `NO_ZEROES`); an unknown name, or extended headers negotiated before, closes the connection, as the protocol requires |
//! | `INFO`, `GO` | `NBD_INFO_EXPORT`, `NBD_INFO_BLOCK_SIZE` and, when asked, `NBD_INFO_NAME` / `NBD_INFO_DESCRIPTION`, then `ACK`; an unknown name is `ERR_UNKNOWN`, malformed data `ERR_INVALID` |
//! | `LIST` | one `NBD_REP_SERVER` (the default export, named ""), then `ACK` |
//! | `STRUCTURED_REPLY` | `ACK`: READ replies become `OFFSET_DATA` chunks, errors `ERROR` chunks; after `EXTENDED_HEADERS`, `ERR_EXT_HEADER_REQD` (no downgrade) |
//! | `EXTENDED_HEADERS` | `ACK` (with data: `ERR_INVALID`), structured replies negotiated first or not: 32-byte requests with 64-bit lengths, every reply an extended chunk (see [`Framing::Extended`](crate::proto::Framing)) |
//! | `LIST_META_CONTEXT` | `NBD_REP_META_CONTEXT` `base:allocation` (context id 0, as the protocol asks) for no query, `base:` or `base:allocation`, then `ACK`; other queries find nothing |
//! | `SET_META_CONTEXT` | with structured replies or extended headers negotiated (else `ERR_INVALID`): `NBD_REP_META_CONTEXT` `base:allocation` with its id [`BASE_ALLOCATION_ID`](crate::status::BASE_ALLOCATION_ID) if a query names it, then `ACK`; replaces any earlier selection, even when it fails |
//! | `ABORT` | `ACK`, then close |
//! | anything else | `ERR_UNSUP`, its data read and dropped |
//!
//! For both metadata context options an export name other than "" is `ERR_UNKNOWN` and data
//! whose lengths do not add up is `ERR_INVALID`. Among the options answered `ERR_UNSUP` is
//! `STARTTLS`.
//!
//! # Limits
//!
//! Option data up to [`MAX_OPTION_DATA`](machine::MAX_OPTION_DATA) (256 KiB) is read and
//! answered, which covers every legal `INFO`/`GO` and metadata context queries of reasonable
//! size. Longer data is read off in chunks, never held, and the option is answered
//! `ERR_TOO_BIG`; negotiation then goes on. A handshake may consume at most
//! [`MAX_HANDSHAKE_BYTES`](machine::MAX_HANDSHAKE_BYTES) (16 MiB): the option that would go
//! past that is answered `ERR_TOO_BIG` and the connection is closed, since a client that
//! sends that much is not negotiating. A wrong option magic or unknown client flags close
//! the connection (the protocol says the server MUST).
//!
//! # Structure
//!
//! The protocol logic is [`machine::Handshake`], a state machine without I/O (so it can be
//! tested on arbitrary input, see `tests/nbd_proto_proptest.rs`); [`negotiate`] is the loop
//! that moves its bytes over the socket.

mod machine;

use ringleader::buf::IoBuf;
use ringleader::net::{OwnedIo, TcpStream};

use crate::conn::MAX_REQUEST;
use crate::export::Export;
use crate::proto::Framing;
use machine::{ExportInfo, Handshake, Status};

/// The most bytes asked of one receive.
const RECV_CHUNK: usize = 64 << 10;

/// How the handshake ended.
pub enum Outcome {
    /// Transmission starts, framed as negotiated; `block_status`:
    /// `NBD_OPT_SET_META_CONTEXT` selected `base:allocation` (context id
    /// [`BASE_ALLOCATION_ID`](crate::status::BASE_ALLOCATION_ID)).
    Transmit {
        framing: Framing,
        block_status: bool,
    },
    /// The client aborted or went away during the handshake.
    Left,
}

/// Run the handshake. `Err`: the client broke the protocol; close the connection.
///
/// Receives never ask for more than the handshake still needs, so no byte of the
/// transmission phase is taken here.
pub async fn negotiate(stream: &TcpStream, export: &Export) -> Result<Outcome, String> {
    let mut hs = Handshake::new(ExportInfo {
        size: export.size,
        readonly: export.readonly,
        min_block: export.align,
        max_block: MAX_REQUEST,
        description: export.description.clone(),
    });
    let mut chunk: Box<[u8]> = Box::new([]);
    loop {
        let status = hs.status();
        let out = hs.take_output();
        let sent = out.is_empty() || stream.write_all_owned(out).await.0.is_ok();
        let want = match status {
            Status::Failed(why) => return Err(why),
            _ if !sent => return Ok(Outcome::Left),
            Status::Receive(n) => n.min(RECV_CHUNK),
            Status::Transmit {
                framing,
                block_status,
            } => {
                return Ok(Outcome::Transmit {
                    framing,
                    block_status,
                });
            }
            Status::Left => return Ok(Outcome::Left),
        };
        if chunk.len() < want {
            chunk = vec![0; want.next_power_of_two().min(RECV_CHUNK)].into_boxed_slice();
        }
        let (res, buf) = stream.read_owned(chunk.slice(..want)).await;
        chunk = buf.into_inner();
        match res {
            Ok(0) | Err(_) => return Ok(Outcome::Left),
            Ok(n) => {
                let used = hs.feed(&chunk[..n]);
                debug_assert_eq!(used, n, "received no more than the handshake wanted");
                debug_assert!(hs.buffered() <= machine::MAX_OPTION_DATA);
                debug_assert!(hs.consumed() <= machine::MAX_HANDSHAKE_BYTES + 16);
            }
        }
    }
}
