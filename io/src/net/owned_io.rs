//! [`OwnedIo`]: reads and writes with owned buffers on a connected stream socket.
//!
//! Why the `_owned` names: `TcpStream` and `UnixStream` also implement the futures-io traits,
//! whose extension traits (`AsyncReadExt`, `AsyncWriteExt`, and tokio's of the same names)
//! have `read`, `write`, `read_exact` and `write_all` taking borrowed slices. Methods of
//! those names here would win method resolution whenever both traits are in scope (they take
//! `&self`, so they are found before the futures forms' `&mut self`), and
//! `stream.read(&mut buf)` would fail with "`&mut [u8; 16]: IoBufMut` is not satisfied".
//! So the owned-buffer forms are `read_owned`, `write_owned`, `read_exact_owned` and
//! `write_all_owned`: no io trait uses those names, both forms work side by side
//! (`tests/net_owned_io_and_futures_io_together.rs`), and the suffix says what differs —
//! the buffer is moved in and handed back with the result.

use std::future::Future;
use std::rc::Rc;

use ringleader_buf::{BufResult, IoBuf, IoBufMut};
use ringleader_executor::{Lane, Op};

use super::ops::{self, Recv, Send};
use super::socket::Socket;

pub(crate) mod sealed {
    /// Gives the trait's default methods the socket; not implementable outside this crate.
    pub trait HasSocket {
        fn socket(&self) -> &std::rc::Rc<super::Socket>;
    }
}

/// Owned-buffer I/O on a connected stream ([`TcpStream`](super::TcpStream),
/// [`UnixStream`](super::UnixStream)).
///
/// Each op owns its buffer until its final CQE and gives it back with the result; dropping
/// the future cancels the op and frees the buffer only after the kernel is done with it.
///
/// The methods end in `_owned` so that they never collide with the borrowed-slice `read`,
/// `write`, `read_exact` and `write_all` of `futures::AsyncReadExt`/`AsyncWriteExt` (or
/// tokio's): import both and each form is called by its own name.
///
/// ```
/// use ringleader::net::{OwnedIo, UnixStream};
///
/// ringleader::block_on(async {
///     let (a, b) = UnixStream::pair().unwrap();
///     let (res, _) = a.write_all_owned(b"owned".to_vec()).await;
///     res.unwrap();
///     let (res, buf) = b.read_exact_owned(vec![0u8; 5]).await;
///     res.unwrap();
///     assert_eq!(buf, b"owned");
/// });
/// ```
pub trait OwnedIo: sealed::HasSocket {
    /// Receive up to `buf.bytes_total()` bytes into the start of `buf`
    /// (`IORING_OP_RECV`, Linux 5.6). `Ok(0)`: the peer closed its write side.
    fn read_owned<B: IoBufMut>(&self, buf: B) -> Op<Recv<B>> {
        ops::recv(self.socket(), buf, 0, 0)
    }

    /// Send `buf`'s initialised bytes (`IORING_OP_SEND`, Linux 5.6); may send fewer. Never
    /// raises `SIGPIPE`: writing to a closed peer gives `EPIPE`.
    fn write_owned<B: IoBuf>(&self, buf: B) -> Op<Send<B>> {
        ops::send(self.socket(), buf, 0, 0)
    }

    /// Send all of `buf`'s initialised bytes in one op (`IORING_OP_SEND` with
    /// `MSG_WAITALL`, Linux 5.6): it completes when every byte went out, or with the error
    /// that stopped it. Unlike [`write_all_owned`](Self::write_all_owned) (a loop of sends,
    /// started at its first poll), the op is in the kernel as soon as this returns, so a
    /// task can send and go on without awaiting it, and check it later. Never raises
    /// `SIGPIPE`.
    ///
    /// ```
    /// use ringleader::net::{OwnedIo, UnixStream};
    ///
    /// ringleader::block_on(async {
    ///     let (a, b) = UnixStream::pair().unwrap();
    ///     let send = a.send_whole(b"whole".to_vec()); // submitted now
    ///     let (res, buf) = b.read_exact_owned(vec![0u8; 5]).await;
    ///     res.unwrap();
    ///     assert_eq!(buf, b"whole");
    ///     assert_eq!(send.await.0.unwrap(), 5);
    /// });
    /// ```
    fn send_whole<B: IoBuf>(&self, buf: B) -> Op<Send<B>> {
        ops::send(self.socket(), buf, 0, libc::MSG_WAITALL)
    }

    /// Fill `buf` to `buf.bytes_total()` bytes, resuming after short receives;
    /// `UnexpectedEof` if the peer closes first (`IORING_OP_RECV` with `MSG_WAITALL`, 5.6).
    fn read_exact_owned<B: IoBufMut>(
        &self,
        buf: B,
    ) -> impl Future<Output = BufResult<(), B>> + 'static {
        ops::read_exact(Rc::clone(self.socket()), buf)
    }

    /// Send all of `buf`'s initialised bytes, resuming after short sends
    /// (`IORING_OP_SEND` with `MSG_WAITALL`, Linux 5.6).
    fn write_all_owned<B: IoBuf>(
        &self,
        buf: B,
    ) -> impl Future<Output = BufResult<(), B>> + 'static {
        ops::write_all(Rc::clone(self.socket()), buf)
    }

    /// Send all of `buf`'s initialised bytes in `lane`: after every op submitted into the
    /// lane before it, whole, never interleaved with the lane's other sends
    /// (`IORING_OP_SEND` with `MSG_WAITALL`, linked with the ops queued with it; see
    /// [`Lane`]). The result is the byte count; fewer bytes than asked, or an error, fails
    /// the lane, and later ops of the lane complete with `ECANCELED`.
    ///
    /// ```
    /// use ringleader::ops::Lane;
    /// use ringleader::net::{OwnedIo, UnixStream};
    ///
    /// ringleader::block_on(async {
    ///     let (a, b) = UnixStream::pair().unwrap();
    ///     let lane = Lane::new();
    ///     let first = a.send_in(&lane, b"one ".to_vec());
    ///     let second = a.send_in(&lane, b"two".to_vec());
    ///     let (r2, r1) = futures::join!(second, first);
    ///     assert_eq!((r1.0.unwrap(), r2.0.unwrap()), (4, 3));
    ///     let (res, buf) = b.read_exact_owned(vec![0u8; 7]).await;
    ///     res.unwrap();
    ///     assert_eq!(buf, b"one two");
    /// });
    /// ```
    fn send_in<B: IoBuf>(&self, lane: &Lane, buf: B) -> Op<Send<B>> {
        ops::send_in(self.socket(), lane, buf)
    }
}
