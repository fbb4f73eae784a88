//! The transmission phase of one connection: read requests, run each as its own task, reply
//! through the connection's writer ([`reply`](crate::reply)).
//!
//! # Model
//!
//! The connection's task is the *reader*: it receives into a 64 KiB buffer and parses every
//! request header the buffer holds, so a burst of requests costs one receive. A `WRITE`'s
//! payload is taken from that buffer and, for large payloads, received straight into the
//! request's [`Block`]. Each valid request becomes a task (so requests run concurrently and
//! finish in any order); invalid ones are answered at once with the protocol's error
//! ([`check`] decides which).
//!
//! # Framing
//!
//! The handshake settles the [`Framing`]: compact 28-byte requests with simple replies, or
//! with structured replies (READ data and errors as chunks), or extended headers: 32-byte
//! requests whose lengths are 64 bits, and every reply an extended chunk (a success without
//! data is a `NONE` chunk). Replies are built by [`Head`] from the request's [`ReplyTo`], so
//! the code below is the same for all three. With extended headers TRIM, WRITE_ZEROES and
//! BLOCK_STATUS may cover more than 4 GiB; READ and WRITE stay within [`MAX_REQUEST`].
//!
//! # Staying in step
//!
//! Only input that breaks the framing ends a connection: a wrong request magic, end of
//! stream, or (extended headers) a payload announced longer than [`MAX_REQUEST`], which the
//! protocol says to answer with a hard disconnect rather than read; the request gets an
//! error reply first. Everything else gets an error reply and the stream stays in step: a
//! refused `WRITE`, or a payload on a command that takes none, is still read and thrown
//! away. A payload cut short by the client going away is never written, not even in part:
//! the write starts only once every byte has arrived. `NBD_CMD_DISC`, end of stream and
//! errors all let the requests already started finish (a completed write is applied whole)
//! before the socket closes.
//!
//! # Limits
//!
//! A [`Window`] bounds each connection to [`MAX_REQUESTS`] requests and [`MAX_BYTES`] bytes
//! of data in flight (one request is always allowed), and the core's [`Budget`] bounds the
//! data of all its connections together (`--max-memory`); a request's [`Permit`] holds
//! both and is released when its reply has been sent. While either is full the reader stops
//! reading. A watchdog task per connection closes it when it stalls, idles too long or the
//! server drains; once a connection is closing (its peer gone, its framing broken), queued
//! work is cancelled at once (see `limits.rs`).

mod check;
mod window;

use std::io;
use std::rc::Rc;

use ringleader::buf::{IoBuf, Lease};
use ringleader::group::{Group, Leader, Member};
use ringleader::net::{OwnedIo, TcpStream};
use ringleader::spawn;

use crate::block::Block;
use crate::export::Export;
use crate::limits::{Activity, Budget, CoreLimits, Signal, Verdict, unless, watch};
use crate::proto::*;
use crate::reply::{self, Data, Frame, Replies};
use crate::{splice, status};
use check::Rules;
pub use window::{Permit, Window};

/// The largest READ or WRITE (the protocol's recommended maximum, advertised in
/// `NBD_INFO_BLOCK_SIZE`).
pub const MAX_REQUEST: u32 = 32 << 20;
/// Requests in flight per connection.
pub const MAX_REQUESTS: usize = 256;
/// Data bytes in flight per connection.
pub const MAX_BYTES: u64 = 128 << 20;
/// The receive buffer.
const RECV_BUF: usize = 64 << 10;
/// Payloads up to this size are gathered in the receive buffer and copied out; larger ones
/// are received straight into their block.
const COPY_IN_MAX: usize = 16 << 10;

/// What the handshake settled.
#[derive(Clone, Copy, Debug)]
pub struct Session {
    pub framing: Framing,
    /// `base:allocation` was negotiated: `NBD_CMD_BLOCK_STATUS` is allowed.
    pub block_status: bool,
    pub zc_threshold: usize,
    pub read_path: ReadPath,
}

/// Which path a READ takes, by its length (`--read-path`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadPath {
    /// READs of at least this many bytes (that fit a pipe: [`splice::fits`]) are
    /// spliced from the page cache to the socket (`splice.rs`).
    pub splice_min: usize,
    /// Other READs of at least this many bytes are groups whose reply the ring sends (see
    /// [`read_as_group`]); smaller ones go through the batching writer.
    pub group_min: usize,
}

impl ReadPath {
    /// `auto`: the batching writer up to [`reply::COPY_MAX`] (one send for many small
    /// replies), above it splices where the image is in the page cache, else groups.
    pub const AUTO: ReadPath = ReadPath {
        splice_min: reply::COPY_MAX + 1,
        group_min: reply::COPY_MAX + 1,
    };

    pub fn parse(name: &str) -> Option<ReadPath> {
        let never = usize::MAX;
        Some(match name {
            "auto" => ReadPath::AUTO,
            "splice" => ReadPath {
                splice_min: 0,
                ..ReadPath::AUTO
            },
            "group" => ReadPath {
                splice_min: never,
                group_min: 0,
            },
            "batch" => ReadPath {
                splice_min: never,
                group_min: never,
            },
            _ => return None,
        })
    }
}

/// How the reader ended.
enum End {
    /// `NBD_CMD_DISC`, or the client closed between requests.
    Clean,
    /// Framing broken (wrong magic, an oversized payload) or the stream failed
    /// mid-request.
    Broken(String),
    /// The connection is closing (peer gone, or closed by the watchdog): stop at once.
    Closing,
}

/// Serve requests until the client disconnects; then let in-flight requests finish, send
/// their replies, and return (dropping the last `Rc` closes the socket).
pub async fn transmission(
    stream: Rc<TcpStream>,
    export: Rc<Export>,
    session: Session,
    core: Rc<CoreLimits>,
) {
    let replies = Rc::new(Replies::default());
    let writer = spawn(reply::run(
        Rc::clone(&stream),
        Rc::clone(&replies),
        session.zc_threshold,
    ));
    let window = Rc::new(Window::default());
    let done = Rc::new(Signal::default());
    let watchdog = spawn({
        let (stream, window, core) = (Rc::clone(&stream), Rc::clone(&window), Rc::clone(&core));
        let (replies, done) = (Rc::clone(&replies), Rc::clone(&done));
        async move {
            let closing = replies.closing();
            watch(
                &stream,
                &window.activity,
                &core.limits,
                &core.drain,
                closing,
                &done,
            )
            .await
        }
    });
    let rules = Rules {
        size: export.size,
        readonly: export.readonly,
        align: export.align,
        framing: session.framing,
        block_status: session.block_status,
    };
    let end = Reader {
        stream: &stream,
        export: &export,
        replies: &replies,
        window: &window,
        budget: &core.budget,
        drain: &core.drain,
        session,
        rules,
        buf: RecvBuf::new(),
    }
    .run()
    .await;
    if let End::Broken(_) = end {
        // Nobody will read the replies: cancel what is queued.
        replies.closing().set();
    }
    window.idle().await;
    replies.close();
    let _ = writer.await;
    done.set();
    if let Ok(Verdict::Closed(why)) = watchdog.await {
        if !core.drain.is_set() {
            eprintln!("nbd_server: closing a connection: {why}");
        }
    } else if let End::Broken(why) = end {
        eprintln!("nbd_server: closing a connection: {why}");
    }
}

struct Reader<'a> {
    stream: &'a Rc<TcpStream>,
    export: &'a Rc<Export>,
    replies: &'a Rc<Replies>,
    window: &'a Rc<Window>,
    budget: &'a Rc<Budget>,
    drain: &'a Signal,
    session: Session,
    rules: Rules,
    buf: RecvBuf,
}

impl Reader<'_> {
    async fn run(&mut self) -> End {
        let activity = &self.window.activity;
        let framing = self.session.framing;
        let head_len = framing.request_len();
        loop {
            activity.partial.set(self.buf.available() > 0);
            match self.buf.fill(self.stream, head_len, activity).await {
                _ if self.replies.closing().is_set() => return End::Closing,
                Ok(true) => {}
                Ok(false) if self.buf.available() == 0 => return End::Clean,
                Ok(false) => return End::Broken("end of stream inside a request header".into()),
                Err(e) => return End::Broken(format!("receive: {e}")),
            }
            let Some(req) = self.parse(framing) else {
                return End::Broken("wrong request magic".into());
            };
            activity.partial.set(true);
            let payload = req.payload(framing);
            let step = match req.kind {
                CMD_DISC => return End::Clean,
                _ if payload > u64::from(MAX_REQUEST) && framing == Framing::Extended => {
                    return self.refuse_oversized_payload(req);
                }
                _ if self.drain.is_set() => self.refuse_draining(req, payload).await,
                CMD_WRITE => self.write(req).await,
                _ => self.other(req, payload).await,
            };
            if let Err(e) = step {
                return e;
            }
        }
    }

    /// Take one request header (as many bytes as the framing's headers have are in the
    /// buffer); `None` if its magic is wrong.
    fn parse(&mut self, framing: Framing) -> Option<Request> {
        let bytes = self.buf.bytes();
        let req = if framing == Framing::Extended {
            parse_extended_request(bytes[..EXTENDED_REQUEST_LEN].try_into().expect("filled"))
        } else {
            parse_request(bytes[..REQUEST_LEN].try_into().expect("filled"))
        };
        self.buf.consume(framing.request_len());
        req
    }

    /// An extended request announcing a payload longer than [`MAX_REQUEST`]: the protocol
    /// asks for a hard disconnect rather than reading it. The client gets `EINVAL` first,
    /// so it can tell why.
    #[cold] // A client that ignores the advertised maximum.
    fn refuse_oversized_payload(&self, req: Request) -> End {
        let msg = b"payload larger than the 32 MiB maximum: disconnecting";
        self.reply_error(req, NbdError::Inval, msg);
        End::Broken(format!(
            "a {}-byte payload (command {}), above the {MAX_REQUEST}-byte maximum",
            req.len, req.kind
        ))
    }

    /// The server is stopping: `NBD_ESHUTDOWN` for every new request (a payload is read and
    /// dropped, to stay in step).
    async fn refuse_draining(&mut self, req: Request, payload: u64) -> Result<(), End> {
        self.discard(payload).await?;
        self.reply_error(req, NbdError::Shutdown, b"the server is stopping");
        Ok(())
    }

    /// Take the request's share of the connection's window and the core's budget, unless
    /// the connection closes first.
    async fn permit(&self, bytes: u64) -> Result<Permit, End> {
        let closing = self.replies.closing();
        let Some(mut permit) = unless(closing, self.window.acquire(bytes)).await else {
            return Err(End::Closing);
        };
        if bytes > 0 {
            let Some(charge) = unless(closing, self.budget.acquire(bytes)).await else {
                return Err(End::Closing);
            };
            permit.charge = Some(charge);
        }
        Ok(permit)
    }

    /// A `WRITE`: check it, take its payload (always, to stay in step), run it.
    async fn write(&mut self, req: Request) -> Result<(), End> {
        if let Err((err, msg)) = self.rules.check(&req) {
            self.discard(req.len).await?;
            self.reply_error(req, err, msg);
            return Ok(());
        }
        // Checked: at most MAX_REQUEST.
        let len = req.len as usize;
        let permit = self.permit(req.len).await?;
        let mut block = self.export.block(len);
        if len <= COPY_IN_MAX {
            self.need(len).await?;
            block.extend_from_slice(&self.buf.bytes()[..len]);
            self.buf.consume(len);
        } else {
            let have = self.buf.available().min(len);
            block.extend_from_slice(&self.buf.bytes()[..have]);
            self.buf.consume(have);
            let (res, b) = block.recv_rest(self.stream).await;
            self.window.activity.bump();
            block = b;
            if let Err(e) = res {
                // The block is dropped unwritten: nothing of a cut-short payload is applied.
                return Err(End::Broken(format!("payload of a {len}-byte write: {e}")));
            }
        }
        let (export, replies) = (Rc::clone(self.export), Rc::clone(self.replies));
        let to = req.reply_to(self.session.framing);
        spawn(async move {
            if replies.closing().is_set() {
                // Nobody will read the reply: drop the write unacknowledged, unstarted.
                return;
            }
            // Once started, a write runs to the end (the image and its mirrors agree).
            let fua = req.flags & CMD_FLAG_FUA != 0;
            let res = export.write(block, req.offset, fua).await;
            let frame = match res {
                Ok(()) => ok_frame(to),
                Err(e) => error_frame(to, e, b"write failed"),
            };
            replies.push(Frame {
                permit: Some(permit),
                ..frame
            });
        })
        .detach();
        Ok(())
    }

    /// Every request but `WRITE`. A payload (extended headers, `CMD_FLAG_PAYLOAD_LEN`) is
    /// read and dropped first; the check then refuses the flag.
    async fn other(&mut self, req: Request, payload: u64) -> Result<(), End> {
        self.discard(payload).await?;
        if let Err((err, msg)) = self.rules.check(&req) {
            self.reply_error(req, err, msg);
            return Ok(());
        }
        // Checked: a READ is at most MAX_REQUEST.
        let bytes = if req.kind == CMD_READ { req.len } else { 0 };
        let permit = self.permit(bytes).await?;
        let (export, replies) = (Rc::clone(self.export), Rc::clone(self.replies));
        let framing = self.session.framing;
        let to = req.reply_to(framing);
        let path = self.session.read_path;
        let read_len = if req.kind == CMD_READ {
            req.len as usize
        } else {
            0
        };
        let splice_read =
            req.kind == CMD_READ && read_len >= path.splice_min && self.export.splice_reads;
        let group_stream =
            (req.kind == CMD_READ && read_len >= path.group_min).then(|| Rc::clone(self.stream));
        let task = async move {
            let fua = req.flags & CMD_FLAG_FUA != 0;
            let (pos, len) = (req.offset, req.len);
            if splice_read {
                match splice::read(&export.image, pos, len as usize).await {
                    Ok(Some(data)) => {
                        return replies.push(Frame {
                            head: Head::read(to, len as u32),
                            tail: b"",
                            data: Some(Data::Pipe(data)),
                            permit: Some(permit),
                        });
                    }
                    // Not splicable now (see `splice::read`): another path.
                    Ok(None) => {}
                    Err(e) => {
                        return replies.push(Frame {
                            permit: Some(permit),
                            ..error_frame(to, e, b"read failed")
                        });
                    }
                }
            }
            if let Some(stream) = group_stream {
                if let Block::Lease(lease) = export.block(len as usize) {
                    let head = Head::read(to, len as u32);
                    let res = read_as_group(&export, &stream, &replies, lease, pos, head).await;
                    if let Err(e) = res {
                        replies.push(Frame {
                            permit: Some(permit),
                            ..error_frame(to, e, b"read failed")
                        });
                    }
                    return;
                }
                // No registered buffer free now: the writer's path, from a heap block.
            }
            let (res, what): (_, &'static [u8]) = match req.kind {
                CMD_READ => match export.read(len as usize, pos).await {
                    Ok(data) => {
                        return replies.push(Frame {
                            head: Head::read(to, len as u32),
                            tail: b"",
                            data: Some(data.into()),
                            permit: Some(permit),
                        });
                    }
                    Err(e) => (Err(e), b"read failed"),
                },
                CMD_BLOCK_STATUS => {
                    let max = if req.flags & CMD_FLAG_REQ_ONE != 0 {
                        1
                    } else {
                        status::MAX_DESCRIPTORS
                    };
                    match status::allocation(&*export.image, pos, len, max) {
                        Ok(extents) => {
                            let id = status::BASE_ALLOCATION_ID;
                            let descriptors = status::encode(&extents, framing);
                            return replies.push(Frame {
                                head: Head::block_status(to, id, extents.len()),
                                tail: b"",
                                data: Some(Block::Heap(descriptors).into()),
                                permit: Some(permit),
                            });
                        }
                        Err(e) => (Err(NbdError::from_io(&e)), b"block status failed"),
                    }
                }
                CMD_TRIM => (export.trim(pos, len, fua).await, b"trim failed"),
                CMD_WRITE_ZEROES => {
                    let no_hole = req.flags & CMD_FLAG_NO_HOLE != 0;
                    let r = export.write_zeroes(pos, len, no_hole, fua).await;
                    (r, b"write zeroes failed")
                }
                _ => (export.flush().await, b"flush failed"),
            };
            let frame = match res {
                Ok(()) => ok_frame(to),
                Err(e) => error_frame(to, e, what),
            };
            replies.push(Frame {
                permit: Some(permit),
                ..frame
            });
        };
        let replies = Rc::clone(self.replies);
        // Dropped (its ops cancelled) if the connection closes first: nobody would read
        // the reply. Trims and write-zeroes are whole `fallocate` calls either way.
        spawn(async move { unless(replies.closing(), task).await }).detach();
        Ok(())
    }

    fn reply_error(&self, req: Request, err: NbdError, msg: &'static [u8]) {
        let to = req.reply_to(self.session.framing);
        self.replies.push(error_frame(to, err, msg));
    }

    /// Make `n <= RECV_BUF` bytes available in the receive buffer.
    async fn need(&mut self, n: usize) -> Result<(), End> {
        match self.buf.fill(self.stream, n, &self.window.activity).await {
            _ if self.replies.closing().is_set() => Err(End::Closing),
            Ok(true) => Ok(()),
            Ok(false) => Err(End::Broken("end of stream inside a payload".into())),
            Err(e) => Err(End::Broken(format!("receive: {e}"))),
        }
    }

    /// Read and drop `n` payload bytes.
    async fn discard(&mut self, mut n: u64) -> Result<(), End> {
        while n > 0 {
            let step = n.min(RECV_BUF as u64) as usize;
            self.need(step).await?;
            self.buf.consume(step);
            n -= step as u64;
        }
        Ok(())
    }
}

/// A READ as one group on a registered lease: the leader `READ_FIXED`s the image into it;
/// one member sends the reply head and the data in one `SENDMSG` (two iovecs, no copy) in
/// the connection's send lane, so the driver pushes it as soon as the read's CQE is reaped,
/// without waking this task, and it never interleaves with the writer's sends.
///
/// A read error fails the leader and the member never runs: the caller sends an error reply
/// instead. A short read (the image shrank under the server; its size is checked at
/// start-up) cannot change the length the head announces: zero-fill mode sends zeros for
/// the missing tail, as a hole would read. A failed send fails the lane, and with it the
/// writer's next send, which shuts the connection down.
async fn read_as_group(
    export: &Export,
    stream: &TcpStream,
    replies: &Replies,
    mut lease: Lease,
    pos: u64,
    head: Head,
) -> Result<(), NbdError> {
    let out = Group::new(&mut lease)
        .leader(Leader::read_fixed(&*export.image, pos))
        .member(Member::send_prefixed(stream, head.as_bytes()).in_lane(replies.lane()))
        .zero_fill()
        .await;
    match out.leader {
        Err(e) => Err(NbdError::from_io(&e)),
        Ok(_) => Ok(()),
    }
}

/// Success without data: a simple reply, or with extended headers a `NONE` chunk.
fn ok_frame(to: ReplyTo) -> Frame {
    Frame {
        head: Head::done(to),
        tail: b"",
        data: None,
        permit: None,
    }
}

/// An error reply: an `ERROR` chunk with a message when replies are chunks (structured or
/// extended: required for READ, preferred for the rest), else a simple reply.
fn error_frame(to: ReplyTo, err: NbdError, msg: &'static [u8]) -> Frame {
    let tail = if to.framing.chunks() { msg } else { b"" };
    Frame {
        head: Head::error(to, err, tail.len() as u16),
        tail,
        data: None,
        permit: None,
    }
}

/// The reader's receive buffer: bytes `start..vec.len()` are received and not yet used.
struct RecvBuf {
    vec: Option<Vec<u8>>,
    start: usize,
}

impl RecvBuf {
    fn new() -> RecvBuf {
        RecvBuf {
            vec: Some(Vec::with_capacity(RECV_BUF)),
            start: 0,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.vec.as_ref().expect("buffer is home")[self.start..]
    }

    fn available(&self) -> usize {
        self.bytes().len()
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.vec.as_ref().map_or(0, Vec::len));
    }

    /// Receive until `n <= RECV_BUF` bytes are available. `Ok(false)`: end of stream first.
    async fn fill(
        &mut self,
        stream: &TcpStream,
        n: usize,
        activity: &Activity,
    ) -> io::Result<bool> {
        while self.available() < n {
            let mut vec = self.vec.take().expect("buffer is home");
            if self.start > 0 {
                // Move the unused tail to the front so the receive has room.
                vec.drain(..self.start);
                self.start = 0;
            }
            let len = vec.len();
            let (res, slice) = stream.read_owned(vec.slice(len..)).await;
            activity.bump();
            self.vec = Some(slice.into_inner());
            if res? == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
