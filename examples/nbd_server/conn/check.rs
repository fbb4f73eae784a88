//! Which requests are refused, and with which error: the checks of the transmission phase,
//! in the protocol's order of precedence, as a pure function of the request, the framing
//! and the export's shape (so they are tested without a socket).
//!
//! A refused request is answered with the error and the stream stays in step: the reader
//! consumes any payload before it checks (see `conn.rs`). Lengths are 64 bits: a compact
//! request carries at most `u32::MAX`, an extended one anything. Only READ and WRITE carry
//! data, so only they are held to the advertised maximum ([`MAX_REQUEST`]); TRIM,
//! WRITE_ZEROES and BLOCK_STATUS may cover more than 4 GiB at once with extended headers.

use super::MAX_REQUEST;
use crate::proto::*;

/// An error reply: the error and the message of its error chunk.
pub type Refusal = (NbdError, &'static [u8]);

/// What the checks need to know of the export and the session.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    pub size: u64,
    pub readonly: bool,
    /// Required alignment of READ/WRITE offsets and lengths (`--direct`; 1 for none).
    pub align: u32,
    pub framing: Framing,
    /// `base:allocation` was selected: `NBD_CMD_BLOCK_STATUS` is allowed.
    pub block_status: bool,
}

impl Rules {
    /// `Ok` if the request may run; else the error to reply with.
    pub fn check(&self, req: &Request) -> Result<(), Refusal> {
        let df = if self.framing.chunks() {
            CMD_FLAG_DF
        } else {
            0
        };
        // Extended headers: WRITE must say its length is a payload's. Other commands
        // take no payload here, so the flag is refused on them (after the reader dropped
        // the payload it announced).
        let payload = if self.framing == Framing::Extended {
            CMD_FLAG_PAYLOAD_LEN
        } else {
            0
        };
        use NbdError::{Inval, NoSpc};
        match req.kind {
            CMD_READ => self.data(req, CMD_FLAG_FUA | df, false, Inval),
            CMD_WRITE => self.data(req, CMD_FLAG_FUA | payload, true, NoSpc),
            CMD_TRIM => self.data(req, CMD_FLAG_FUA, true, Inval),
            CMD_WRITE_ZEROES => self.data(req, CMD_FLAG_FUA | CMD_FLAG_NO_HOLE, true, NoSpc),
            CMD_FLUSH if req.flags & !CMD_FLAG_FUA != 0 => {
                Err((Inval, &b"unknown command flags"[..]))
            }
            CMD_FLUSH if req.offset != 0 || req.len != 0 => {
                Err((Inval, b"flush with a nonzero offset or length"))
            }
            CMD_FLUSH => Ok(()),
            CMD_BLOCK_STATUS if !self.block_status => Err((
                Inval,
                b"block status without the base:allocation context (NBD_OPT_SET_META_CONTEXT)",
            )),
            CMD_BLOCK_STATUS => self.data(req, CMD_FLAG_REQ_ONE, false, Inval),
            _ => Err((Inval, b"unknown command")),
        }
    }

    /// The checks every command with a range shares, in the protocol's order of
    /// precedence: flags, read-only, zero length, size limit (READ/WRITE only), range
    /// (`past_end` is the error for a range beyond the export), alignment (READ/WRITE).
    fn data(
        &self,
        req: &Request,
        allowed_flags: u16,
        writes: bool,
        past_end: NbdError,
    ) -> Result<(), Refusal> {
        if req.flags & !allowed_flags != 0 {
            return Err((NbdError::Inval, b"unknown or inapplicable command flags"));
        }
        if writes && self.readonly {
            return Err((NbdError::Perm, b"the export is read-only"));
        }
        if req.len == 0 {
            return Err((NbdError::Inval, b"zero-length request"));
        }
        let sized = matches!(req.kind, CMD_READ | CMD_WRITE);
        if sized && req.len > u64::from(MAX_REQUEST) {
            // "Don't fragment" cannot be met by a READ no chunk may carry: the protocol's
            // EOVERFLOW. Otherwise the usual EINVAL.
            let err = if req.flags & CMD_FLAG_DF != 0 {
                NbdError::Overflow
            } else {
                NbdError::Inval
            };
            return Err((err, b"request larger than the 32 MiB maximum"));
        }
        if req
            .offset
            .checked_add(req.len)
            .is_none_or(|end| end > self.size)
        {
            return Err((past_end, b"request beyond the end of the export"));
        }
        let align = u64::from(self.align);
        if sized && (req.offset % align != 0 || req.len % align != 0) {
            return Err((
                NbdError::Inval,
                b"request not aligned to the minimum block size",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: u64 = 16 << 30;

    fn rules(framing: Framing) -> Rules {
        Rules {
            size: SIZE,
            readonly: false,
            align: 1,
            framing,
            block_status: true,
        }
    }

    fn req(kind: u16, flags: u16, offset: u64, len: u64) -> Request {
        Request {
            flags,
            kind,
            handle: 1,
            offset,
            len,
        }
    }

    fn error(r: &Rules, q: Request) -> Option<NbdError> {
        r.check(&q).err().map(|(e, _)| e)
    }

    #[test]
    fn effect_lengths_past_4_gib_are_fine_data_lengths_are_capped() {
        let ext = rules(Framing::Extended);
        let big = 5 << 30;
        for kind in [CMD_TRIM, CMD_WRITE_ZEROES, CMD_BLOCK_STATUS] {
            assert_eq!(error(&ext, req(kind, 0, 1 << 30, big)), None, "{kind}");
        }
        let max = u64::from(MAX_REQUEST);
        assert_eq!(error(&ext, req(CMD_READ, 0, 0, max)), None);
        use NbdError::*;
        assert_eq!(error(&ext, req(CMD_READ, 0, 0, max + 1)), Some(Inval));
        let df = req(CMD_READ, CMD_FLAG_DF, 0, big);
        assert_eq!(error(&ext, df), Some(Overflow));
        let write = req(CMD_WRITE, CMD_FLAG_PAYLOAD_LEN, 0, max + 1);
        assert_eq!(error(&ext, write), Some(Inval));
        // Past the end: ENOSPC for the writes that would grow it, EINVAL for the rest.
        assert_eq!(error(&ext, req(CMD_WRITE_ZEROES, 0, 1, SIZE)), Some(NoSpc));
        assert_eq!(error(&ext, req(CMD_TRIM, 0, 1, SIZE)), Some(Inval));
        assert_eq!(error(&ext, req(CMD_TRIM, 0, 1, u64::MAX)), Some(Inval));
    }

    #[test]
    fn payload_len_is_a_write_flag_and_only_with_extended_headers() {
        let (ext, compact) = (rules(Framing::Extended), rules(Framing::Structured));
        let write = req(CMD_WRITE, CMD_FLAG_PAYLOAD_LEN | CMD_FLAG_FUA, 0, 512);
        assert_eq!(error(&ext, write), None);
        assert_eq!(error(&compact, write), Some(NbdError::Inval));
        for kind in [CMD_READ, CMD_TRIM, CMD_FLUSH, CMD_BLOCK_STATUS] {
            let q = req(kind, CMD_FLAG_PAYLOAD_LEN, 0, 512);
            assert_eq!(error(&ext, q), Some(NbdError::Inval), "{kind}");
        }
    }

    #[test]
    fn df_and_block_status_need_chunks() {
        let simple = Rules {
            block_status: false,
            ..rules(Framing::Simple)
        };
        let df = req(CMD_READ, CMD_FLAG_DF, 0, 512);
        assert_eq!(error(&simple, df), Some(NbdError::Inval));
        assert_eq!(error(&rules(Framing::Structured), df), None);
        let status = req(CMD_BLOCK_STATUS, 0, 0, 512);
        assert_eq!(error(&simple, status), Some(NbdError::Inval));
    }
}
