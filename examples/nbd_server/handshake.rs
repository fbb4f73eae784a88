//! The fixed newstyle handshake and option haggling.
//!
//! The server offers `NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES`, then answers options
//! until the client picks the export (`NBD_OPT_EXPORT_NAME`, or `NBD_OPT_GO` answered with
//! `NBD_REP_ACK`) or leaves (`NBD_OPT_ABORT`, end of stream).
//!
//! | option | answer |
//! |---|---|
//! | `EXPORT_NAME` | size, flags (and 124 zeroes unless `NO_ZEROES`); an unknown name closes the connection, as the protocol requires |
//! | `INFO`, `GO` | `NBD_INFO_EXPORT`, `NBD_INFO_BLOCK_SIZE` and, when asked, `NBD_INFO_NAME` / `NBD_INFO_DESCRIPTION`, then `ACK`; an unknown name is `ERR_UNKNOWN`, malformed data `ERR_INVALID` |
//! | `LIST` | one `NBD_REP_SERVER` (the default export, named ""), then `ACK` |
//! | `STRUCTURED_REPLY` | `ACK`: READ replies become `OFFSET_DATA` chunks, errors `ERROR` chunks |
//! | `ABORT` | `ACK`, then close |
//! | anything else | `ERR_UNSUP`, its data read and dropped |
//!
//! Option data is limited to [`MAX_OPTION_DATA`] (an export name is at most 4096 bytes): a
//! longer option is answered `ERR_TOO_BIG` and the connection is closed, since reading
//! gigabytes to stay in step would be a denial of service. A wrong option magic or unknown
//! client flags close the connection (the protocol says the server MUST).

use ringleader::net::{OwnedIo, TcpStream};

use crate::conn::MAX_REQUEST;
use crate::export::Export;
use crate::proto::*;

/// The most option data the server reads.
pub const MAX_OPTION_DATA: u32 = 64 << 10;
/// The longest string (export name) the protocol allows.
const MAX_STRING: usize = 4096;

/// How the handshake ended.
pub enum Outcome {
    /// Transmission starts; `structured`: structured replies were negotiated;
    /// `block_status`: `NBD_OPT_SET_META_CONTEXT` selected `base:allocation` (context id
    /// [`BASE_ALLOCATION_ID`](crate::status::BASE_ALLOCATION_ID)).
    Transmit {
        structured: bool,
        block_status: bool,
    },
    /// The client aborted or went away during the handshake.
    Left,
}

/// Run the handshake. `Err`: the client broke the protocol; close the connection.
pub async fn negotiate(stream: &TcpStream, export: &Export) -> Result<Outcome, String> {
    let mut hello = Vec::with_capacity(18);
    hello.extend_from_slice(&NBDMAGIC.to_be_bytes());
    hello.extend_from_slice(&IHAVEOPT.to_be_bytes());
    hello.extend_from_slice(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes());
    if send(stream, hello).await.is_err() {
        return Ok(Outcome::Left);
    }
    let Some(flags) = recv(stream, 4).await else {
        return Ok(Outcome::Left);
    };
    let client_flags = be32(&flags);
    if client_flags & !(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES) != 0 {
        return Err(format!("unknown client flags {client_flags:#x}"));
    }
    let no_zeroes = client_flags & FLAG_C_NO_ZEROES != 0;
    let mut structured = false;
    loop {
        let Some(head) = recv(stream, 16).await else {
            return Ok(Outcome::Left);
        };
        if be64(&head[0..8]) != IHAVEOPT {
            return Err("wrong option magic".into());
        }
        let (option, len) = (be32(&head[8..12]), be32(&head[12..16]));
        if len > MAX_OPTION_DATA {
            let msg = b"option data too long";
            let _ = send(stream, option_reply(option, REP_ERR_TOO_BIG, msg)).await;
            return Err(format!("option {option} with {len} bytes of data"));
        }
        let Some(data) = recv(stream, len as usize).await else {
            return Ok(Outcome::Left);
        };
        let flags = transmission_flags(export, structured);
        let mut out = Vec::new();
        match option {
            OPT_EXPORT_NAME => {
                if !data.is_empty() {
                    return Err("NBD_OPT_EXPORT_NAME for an unknown export".into());
                }
                out.extend_from_slice(&export.size.to_be_bytes());
                out.extend_from_slice(&flags.to_be_bytes());
                if !no_zeroes {
                    out.extend_from_slice(&[0; 124]);
                }
                return match send(stream, out).await {
                    Ok(()) => Ok(Outcome::Transmit {
                        structured,
                        block_status: false,
                    }),
                    Err(()) => Ok(Outcome::Left),
                };
            }
            OPT_ABORT => {
                let _ = send(stream, option_reply(option, REP_ACK, b"")).await;
                return Ok(Outcome::Left);
            }
            OPT_LIST if !data.is_empty() => invalid(&mut out, option, "LIST takes no data"),
            OPT_LIST => {
                let mut server = 0u32.to_be_bytes().to_vec(); // the default export: ""
                server.extend_from_slice(export.description.as_bytes());
                out.extend(option_reply(option, REP_SERVER, &server));
                out.extend(option_reply(option, REP_ACK, b""));
            }
            OPT_STRUCTURED_REPLY if !data.is_empty() => {
                invalid(&mut out, option, "STRUCTURED_REPLY takes no data");
            }
            OPT_STRUCTURED_REPLY => {
                structured = true;
                out.extend(option_reply(option, REP_ACK, b""));
            }
            OPT_INFO | OPT_GO => match info(export, option, &data, flags, &mut out) {
                Ok(()) if option == OPT_GO => {
                    return match send(stream, out).await {
                        Ok(()) => Ok(Outcome::Transmit {
                            structured,
                            block_status: false,
                        }),
                        Err(()) => Ok(Outcome::Left),
                    };
                }
                Ok(()) => {}
                Err((kind, msg)) => {
                    out.clear();
                    out.extend(option_reply(option, kind, msg.as_bytes()));
                }
            },
            _ => out.extend(option_reply(option, REP_ERR_UNSUP, b"unsupported option")),
        }
        if send(stream, out).await.is_err() {
            return Ok(Outcome::Left);
        }
    }
}

/// The transmission flags of the export, as negotiated so far.
pub fn transmission_flags(export: &Export, structured: bool) -> u16 {
    let mut f = FLAG_HAS_FLAGS | FLAG_SEND_FLUSH | FLAG_SEND_FUA | FLAG_CAN_MULTI_CONN;
    if export.readonly {
        f |= FLAG_READ_ONLY;
    } else {
        f |= FLAG_SEND_TRIM | FLAG_SEND_WRITE_ZEROES;
    }
    if structured {
        // Every READ is answered with one content chunk, so "don't fragment" is always met.
        f |= FLAG_SEND_DF;
    }
    f
}

/// Answer `NBD_OPT_INFO`/`NBD_OPT_GO` into `out`, or give the error reply to send instead.
fn info(
    export: &Export,
    option: u32,
    data: &[u8],
    flags: u16,
    out: &mut Vec<u8>,
) -> Result<(), (u32, String)> {
    let bad = |why: &str| (REP_ERR_INVALID, why.to_owned());
    if data.len() < 6 {
        return Err(bad("option data shorter than 6 bytes"));
    }
    let name_len = be32(&data[0..4]) as usize;
    if name_len > data.len() - 6 || name_len > MAX_STRING {
        return Err(bad("export name length out of range"));
    }
    let name = &data[4..4 + name_len];
    let rest = &data[4 + name_len..];
    let count = usize::from(be16(&rest[0..2]));
    if rest.len() != 2 + 2 * count {
        return Err(bad(
            "information request count does not match the data length",
        ));
    }
    if !name.is_empty() {
        return Err((
            REP_ERR_UNKNOWN,
            "no such export (the export is named \"\")".into(),
        ));
    }
    let requests: Vec<u16> = rest[2..].chunks(2).map(be16).collect();
    let mut item = INFO_EXPORT.to_be_bytes().to_vec();
    item.extend_from_slice(&export.size.to_be_bytes());
    item.extend_from_slice(&flags.to_be_bytes());
    out.extend(option_reply(option, REP_INFO, &item));
    // Block sizes are sent whether asked for or not (the client ignores what it does not
    // understand): minimum 1, or the O_DIRECT alignment; preferred 4 KiB; maximum 32 MiB.
    let min = export.align;
    let mut item = INFO_BLOCK_SIZE.to_be_bytes().to_vec();
    item.extend_from_slice(&min.to_be_bytes());
    item.extend_from_slice(&min.max(4096).to_be_bytes());
    item.extend_from_slice(&MAX_REQUEST.to_be_bytes());
    out.extend(option_reply(option, REP_INFO, &item));
    if requests.contains(&INFO_NAME) {
        out.extend(option_reply(option, REP_INFO, &INFO_NAME.to_be_bytes()));
    }
    if requests.contains(&INFO_DESCRIPTION) {
        let mut item = INFO_DESCRIPTION.to_be_bytes().to_vec();
        item.extend_from_slice(export.description.as_bytes());
        out.extend(option_reply(option, REP_INFO, &item));
    }
    out.extend(option_reply(option, REP_ACK, b""));
    Ok(())
}

fn invalid(out: &mut Vec<u8>, option: u32, msg: &str) {
    out.extend(option_reply(option, REP_ERR_INVALID, msg.as_bytes()));
}

/// Receive exactly `n` bytes; `None` if the stream ends or fails first.
async fn recv(stream: &TcpStream, n: usize) -> Option<Box<[u8]>> {
    if n == 0 {
        return Some(Box::new([]));
    }
    let (res, buf) = stream.read_exact(vec![0u8; n].into_boxed_slice()).await;
    res.ok().map(|()| buf)
}

async fn send(stream: &TcpStream, bytes: Vec<u8>) -> Result<(), ()> {
    stream.write_all(bytes).await.0.map_err(drop)
}
