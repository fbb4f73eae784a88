//! The load generator: `conns` TCP connections driven from one thread by one raw io_uring,
//! each doing request/response round trips of `size` bytes.
//!
//! Each connection has one multishot `RECV` into a provided-buffer ring ([`pbuf`]) armed for
//! the whole run, so a round trip costs one `SEND` SQE; the echo is checked byte for byte
//! against the request as it arrives (each request carries its sequence number, so a stale
//! or misrouted reply fails the run) and the buffer goes straight back to the ring. Short
//! sends are resumed. Everything pushed in one loop turn goes to the kernel in one
//! `io_uring_enter`: the client spends as little of its CPU per request as a client can, and
//! the same for every server.
//!
//! Timing: one clock read per loop turn, after the enter returns. A request's latency is
//! from the turn that pushed its send to the turn that reaped the last byte of its echo. A
//! request counts if it was started after the warm-up and finished before the end.
//!
//! The caller learns when the measured window opens and closes (a callback, run on this
//! thread between two loop turns): the window opens at the first turn whose clock reads the
//! end of the warm-up, before that turn starts any request, and closes at the first turn whose
//! clock reads its end, before anything else. What the server does for the requests in
//! flight at either edge (at most one per connection) is the only work inside the window
//! that no counted request caused, or outside it that one did.
//!
//! [`pbuf`]: super::pbuf

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use io_uring::types::{CancelBuilder, Fd};
use io_uring::{IoUring, cqueue, opcode, squeue};

use super::histogram::Histogram;
use super::pbuf::PbufRing;

/// What one run does.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// Concurrent connections, each with one request in flight.
    pub conns: usize,
    /// Bytes per request (and per response).
    pub size: usize,
    /// Untimed round trips before the measurement.
    pub warmup: Duration,
    /// The measured window.
    pub measure: Duration,
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Round trips started and finished inside the measured window.
    pub requests: u64,
    /// The measured window's length.
    pub window: Duration,
    /// Their latencies.
    pub latency: Histogram,
}

impl Outcome {
    /// Round trips per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.window.as_secs_f64()
    }
}

/// `user_data` of the final cancel-everything SQE.
const CANCEL: u64 = u64::MAX;
/// `user_data` low bit: 0 send, 1 receive; the rest is the connection index.
const RECV_BIT: u64 = 1;

struct Conn {
    fd: OwnedFd,
    /// Request bytes sent / echo bytes received and checked, of the current round trip.
    sent: usize,
    got: usize,
    seq: u64,
    started: Instant,
}

/// Connect `load.conns` clients to `addr` and measure; every op is reaped before return.
/// `edge` is called when the measured window opens and again when it closes (see the module
/// doc), twice in all unless the run fails.
pub fn run(addr: SocketAddr, load: &Load, edge: &mut dyn FnMut()) -> io::Result<Outcome> {
    let conns = (0..load.conns)
        .map(|i| {
            let s = TcpStream::connect(addr)
                .map_err(|e| io::Error::new(e.kind(), format!("connect #{i} to {addr}: {e}")))?;
            s.set_nodelay(true)?;
            Ok(OwnedFd::from(s))
        })
        .collect::<io::Result<Vec<_>>>()?;
    let n = load.conns.next_power_of_two().max(64);
    let ring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_coop_taskrun()
        .setup_cqsize(8 * n as u32)
        .build(2 * n as u32)?;
    // Room for every connection's echo in flight twice over: buffers go back as soon as
    // their CQE is checked.
    let buf_size = load.size.next_power_of_two().clamp(64, 64 * 1024);
    let entries = (2 * load.conns * load.size.div_ceil(buf_size))
        .next_power_of_two()
        .clamp(64, 1 << 15) as u16;
    let pbuf = PbufRing::new(&ring, entries, buf_size, 0)?;
    let mut driver = Generator {
        ring,
        pbuf,
        size: load.size,
        requests: vec![0u8; load.size * conns.len()],
        conns: conns
            .into_iter()
            .map(|fd| Conn {
                fd,
                sent: 0,
                got: 0,
                seq: 0,
                started: Instant::now(),
            })
            .collect(),
        in_flight: 0,
    };
    for (i, b) in driver.requests.iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    let result = driver.drive(load, edge);
    // Whatever happened, the kernel must be done with the buffers before they are freed.
    driver.drain()?;
    result
}

/// Field order matters: the ring (and with it the buffer group) goes before the buffers.
struct Generator {
    ring: IoUring,
    pbuf: PbufRing,
    size: usize,
    /// Connection `c`'s current request at `c * size`.
    requests: Vec<u8>,
    conns: Vec<Conn>,
    /// Ops pushed whose final CQE has not been reaped.
    in_flight: usize,
}

impl Generator {
    fn request(&self, c: usize) -> &[u8] {
        &self.requests[c * self.size..(c + 1) * self.size]
    }

    fn push(&mut self, e: squeue::Entry) -> io::Result<()> {
        // SAFETY: every send points into `self.requests`, which is neither resized nor freed
        // until `drain` has reaped every CQE; receives write only into the registered
        // buffer ring, which outlives the ring (field order). The fds stay open as long.
        while unsafe { self.ring.submission().push(&e) }.is_err() {
            self.ring.submit()?;
        }
        self.in_flight += 1;
        Ok(())
    }

    fn push_send(&mut self, c: usize) -> io::Result<()> {
        let (sent, fd) = (self.conns[c].sent, self.conns[c].fd.as_raw_fd());
        let ptr = self.requests[c * self.size + sent..].as_ptr();
        let e = opcode::Send::new(Fd(fd), ptr, (self.size - sent) as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data((c as u64) << 1);
        self.push(e)
    }

    fn arm_recv(&mut self, c: usize) -> io::Result<()> {
        let fd = self.conns[c].fd.as_raw_fd();
        let e = opcode::RecvMulti::new(Fd(fd), self.pbuf.bgid())
            .build()
            .user_data((c as u64) << 1 | RECV_BIT);
        self.push(e)
    }

    /// Start round trip `seq + 1` on connection `c` at `now`.
    fn start(&mut self, c: usize, now: Instant) -> io::Result<()> {
        let conn = &mut self.conns[c];
        conn.seq += 1;
        conn.sent = 0;
        conn.got = 0;
        conn.started = now;
        let seq = conn.seq.to_le_bytes();
        let n = self.size.min(8);
        self.requests[c * self.size..][..n].copy_from_slice(&seq[..n]);
        self.push_send(c)
    }

    fn fail(&self, c: usize, what: &str, e: io::Error) -> io::Error {
        io::Error::new(
            e.kind(),
            format!(
                "connection #{c}: {what} (round trip {}): {e}",
                self.conns[c].seq
            ),
        )
    }

    /// Check `len` echoed bytes in buffer `bid` against connection `c`'s request.
    fn check(&mut self, c: usize, bid: u16, len: usize) -> io::Result<()> {
        let got = self.conns[c].got;
        let ok = got + len <= self.size && {
            let echo = self.pbuf.data(bid, len);
            self.request(c)[got..got + len] == *echo
        };
        self.pbuf.recycle(bid);
        if !ok {
            let e = io::Error::new(io::ErrorKind::InvalidData, "the echo differs");
            return Err(self.fail(c, "recv", e));
        }
        self.conns[c].got += len;
        Ok(())
    }

    fn drive(&mut self, load: &Load, edge: &mut dyn FnMut()) -> io::Result<Outcome> {
        let begin = Instant::now();
        let measure_from = begin + load.warmup;
        let end = measure_from + load.measure;
        // Without a warm-up the first requests are counted: the window opens before them.
        let mut open = load.warmup.is_zero();
        if open {
            edge();
        }
        for c in 0..self.conns.len() {
            self.arm_recv(c)?;
            self.start(c, begin)?;
        }
        let mut latency = Histogram::default();
        let mut requests = 0;
        let mut done = Vec::with_capacity(4 * self.conns.len());
        loop {
            self.ring.submit_and_wait(1)?;
            let mut now = Instant::now();
            if !open && now >= measure_from {
                open = true;
                edge();
                // What `edge` took is not the latency of the requests this turn starts.
                now = Instant::now();
            }
            if now >= end {
                edge();
                break;
            }
            done.clear();
            done.extend(
                self.ring
                    .completion()
                    .map(|cqe| (cqe.user_data(), cqe.result(), cqe.flags())),
            );
            for &(ud, res, flags) in &done {
                let c = (ud >> 1) as usize;
                if ud & RECV_BIT != 0 {
                    if !cqueue::more(flags) {
                        self.in_flight -= 1;
                    }
                    match (res, cqueue::buffer_select(flags)) {
                        (n, Some(bid)) if n > 0 => self.check(c, bid, n as usize)?,
                        (0, _) => {
                            let e = io::ErrorKind::UnexpectedEof.into();
                            return Err(self.fail(c, "recv", e));
                        }
                        // The ring ran dry (a burst): nothing was consumed; re-armed below.
                        (e, _) if e == -libc::ENOBUFS => {}
                        (e, _) => {
                            return Err(self.fail(c, "recv", io::Error::from_raw_os_error(-e)));
                        }
                    }
                    if !cqueue::more(flags) {
                        self.arm_recv(c)?;
                    }
                } else {
                    self.in_flight -= 1;
                    if res <= 0 {
                        let e = match res {
                            0 => io::ErrorKind::WriteZero.into(),
                            e => io::Error::from_raw_os_error(-e),
                        };
                        return Err(self.fail(c, "send", e));
                    }
                    self.conns[c].sent += res as usize;
                    if self.conns[c].sent < self.size {
                        self.push_send(c)?;
                        continue;
                    }
                }
                let conn = &self.conns[c];
                if conn.sent < self.size || conn.got < self.size {
                    continue; // the rest of the echo, or the send's CQE, is still to come
                }
                if conn.started >= measure_from {
                    requests += 1;
                    latency.record(now - conn.started);
                }
                self.start(c, now)?;
            }
        }
        Ok(Outcome {
            requests,
            window: load.measure,
            latency,
        })
    }

    /// Cancel everything in flight and reap until the kernel has posted every final CQE.
    fn drain(&mut self) -> io::Result<()> {
        let cancel = opcode::AsyncCancel2::new(CancelBuilder::any())
            .build()
            .user_data(CANCEL);
        // SAFETY: ASYNC_CANCEL carries no pointer.
        while unsafe { self.ring.submission().push(&cancel) }.is_err() {
            self.ring.submit()?;
        }
        let mut cancel_done = false;
        loop {
            for cqe in self.ring.completion() {
                if cqe.user_data() == CANCEL {
                    cancel_done = true;
                } else if cqe.user_data() & RECV_BIT == 0 || !cqueue::more(cqe.flags()) {
                    self.in_flight -= 1;
                }
            }
            if cancel_done && self.in_flight == 0 {
                return Ok(());
            }
            self.ring.submit_and_wait(1)?;
        }
    }
}
