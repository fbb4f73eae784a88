//! A small blocking NBD client: the fixed newstyle handshake with `NBD_OPT_GO`, then simple
//! (not structured) replies, one request at a time, plus raw request sending for the clients
//! that misbehave on purpose.
//!
//! Wire format: doc/proto.md of the NetworkBlockDevice project; every integer big-endian.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

pub const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
pub const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
const OPT_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
const OPT_GO: u32 = 7;
const REP_ACK: u32 = 1;
const REP_INFO: u32 = 3;
const INFO_EXPORT: u16 = 0;
/// Client flags: fixed newstyle, no zeroes.
const CLIENT_FLAGS: u32 = 0b11;
const REQUEST_MAGIC: u32 = 0x2560_9513;
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;

pub const CMD_READ: u16 = 0;
pub const CMD_WRITE: u16 = 1;
pub const CMD_DISC: u16 = 2;

/// The bytes a client sends after the server's greeting to pick the default export with
/// `NBD_OPT_GO` (no info requests): client flags, then the option.
pub fn go_bytes() -> Vec<u8> {
    let mut b = Vec::with_capacity(26);
    b.extend_from_slice(&CLIENT_FLAGS.to_be_bytes());
    b.extend_from_slice(&IHAVEOPT.to_be_bytes());
    b.extend_from_slice(&OPT_GO.to_be_bytes());
    b.extend_from_slice(&6u32.to_be_bytes()); // data: name length (0) + info count (0)
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&0u16.to_be_bytes());
    b
}

/// Read the server's 18-byte greeting and check its magic numbers.
pub fn read_greeting(s: &mut TcpStream) -> io::Result<()> {
    let mut g = [0u8; 18];
    s.read_exact(&mut g)?;
    let magic = u64::from_be_bytes(g[0..8].try_into().unwrap());
    let opt = u64::from_be_bytes(g[8..16].try_into().unwrap());
    if magic != NBDMAGIC || opt != IHAVEOPT {
        return Err(io::Error::other(format!(
            "bad greeting {:02x?} (not fixed newstyle)",
            &g
        )));
    }
    Ok(())
}

/// An NBD connection in transmission phase.
#[derive(Debug)]
pub struct Nbd {
    stream: TcpStream,
    size: u64,
    cookie: u64,
}

impl Nbd {
    /// Connect and negotiate the default export; every socket call then times out after
    /// `timeout`.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Nbd> {
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        s.set_nodelay(true)?;
        read_greeting(&mut s)?;
        s.write_all(&go_bytes())?;
        let mut size = None;
        loop {
            let mut h = [0u8; 20];
            s.read_exact(&mut h)?;
            let magic = u64::from_be_bytes(h[0..8].try_into().unwrap());
            let ty = u32::from_be_bytes(h[12..16].try_into().unwrap());
            let len = u32::from_be_bytes(h[16..20].try_into().unwrap()) as usize;
            if magic != OPT_REPLY_MAGIC || len > 1 << 20 {
                return Err(io::Error::other(format!("bad option reply {h:02x?}")));
            }
            let mut data = vec![0u8; len];
            s.read_exact(&mut data)?;
            match ty {
                REP_ACK => break,
                REP_INFO if len >= 12 && data[0..2] == INFO_EXPORT.to_be_bytes() => {
                    size = Some(u64::from_be_bytes(data[2..10].try_into().unwrap()));
                }
                REP_INFO => {}
                t if t & (1 << 31) != 0 => {
                    return Err(io::Error::other(format!(
                        "NBD_OPT_GO refused: reply {t:#x}"
                    )));
                }
                t => return Err(io::Error::other(format!("unexpected option reply {t:#x}"))),
            }
        }
        let size = size.ok_or_else(|| io::Error::other("NBD_OPT_GO: no NBD_INFO_EXPORT"))?;
        Ok(Nbd {
            stream: s,
            size,
            cookie: 0,
        })
    }

    /// The export's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Send one request header (and `payload`, for writes) without waiting for the reply;
    /// returns its cookie.
    pub fn send(&mut self, cmd: u16, off: u64, len: u32, payload: &[u8]) -> io::Result<u64> {
        self.cookie += 1;
        let mut h = [0u8; 28];
        h[0..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
        h[6..8].copy_from_slice(&cmd.to_be_bytes());
        h[8..16].copy_from_slice(&self.cookie.to_be_bytes());
        h[16..24].copy_from_slice(&off.to_be_bytes());
        h[24..28].copy_from_slice(&len.to_be_bytes());
        self.stream.write_all(&h)?;
        self.stream.write_all(payload)?;
        Ok(self.cookie)
    }

    /// Read one simple reply to `cookie`, and `data.len()` bytes of data if it succeeded.
    fn reply(&mut self, cookie: u64, data: &mut [u8]) -> io::Result<()> {
        let mut h = [0u8; 16];
        self.stream.read_exact(&mut h)?;
        let magic = u32::from_be_bytes(h[0..4].try_into().unwrap());
        let error = u32::from_be_bytes(h[4..8].try_into().unwrap());
        let got = u64::from_be_bytes(h[8..16].try_into().unwrap());
        if magic != SIMPLE_REPLY_MAGIC || got != cookie {
            return Err(io::Error::other(format!(
                "bad reply header {h:02x?} (wanted cookie {cookie})"
            )));
        }
        if error != 0 {
            return Err(io::Error::other(format!("NBD error {error}")));
        }
        self.stream.read_exact(data)
    }

    /// `NBD_CMD_READ` of `buf.len()` bytes at `off`.
    pub fn read(&mut self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        let len = u32::try_from(buf.len()).map_err(io::Error::other)?;
        let cookie = self.send(CMD_READ, off, len, &[])?;
        self.reply(cookie, buf)
    }

    /// `NBD_CMD_WRITE` of `data` at `off`.
    pub fn write(&mut self, off: u64, data: &[u8]) -> io::Result<()> {
        let len = u32::try_from(data.len()).map_err(io::Error::other)?;
        let cookie = self.send(CMD_WRITE, off, len, data)?;
        self.reply(cookie, &mut [])
    }

    /// The socket, for the clients that misbehave.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// The socket, without the protocol.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    /// `NBD_CMD_DISC`, then close.
    pub fn disconnect(mut self) {
        let _ = self.send(CMD_DISC, 0, 0, &[]);
    }
}

/// Close `s` with a reset (`SO_LINGER` with a zero timeout): the kernel drops unsent data
/// and sends RST instead of FIN.
pub fn reset(s: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `s` owns a valid socket fd for the call; setsockopt reads `linger`, which lives
    // across the call, and exactly its size is passed.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(s);
}
