//! Sockets on io_uring: TCP, UDP and Unix-domain streams.
//!
//! # Model
//!
//! Every socket type holds its fd in a shared `Socket` (an `Rc`, see `socket.rs`), and
//! every op it submits holds a clone in the op's data next to the buffer and any address the
//! SQE points at. So:
//!
//! - **memory**: a buffer, `msghdr`, `iovec` or `sockaddr` the kernel may touch lives in the
//!   op's data until the op's final CQE, even if the future is dropped ([`Op`] parks the data
//!   and cancels). Buffers come back in a [`BufResult`] on success and on error;
//! - **fds**: a socket's fd is closed only after the last op naming it has completed, so an
//!   fd number is never reused under an SQE still on its way to the kernel. An fd the kernel
//!   hands out for an op whose future is gone (accept) is closed, never leaked;
//! - **errors** are `std::io::Error` carrying the kernel's errno (`ECONNREFUSED`,
//!   `ECONNRESET`, `EBADF`, ...); nothing here prints or panics on a kernel error.
//!
//! Set-up that never waits on the network (`socket`, `bind`, `listen`, socket options) is a
//! plain syscall; connecting, accepting, sending and receiving are ring ops. Sockets stay in
//! blocking mode; the kernel polls internally. The types are `!Send`: a socket lives on the
//! core that made it (thread-per-core; one `SO_REUSEPORT` listener per core spreads load).
//!
//! [`TcpStream`] and [`UnixStream`] also implement `futures::io::{AsyncRead, AsyncBufRead,
//! AsyncWrite}` with internal buffers moved into the in-flight op (see `compat`).
//!
//! [`TcpStream::into_split`] gives owned read and write halves for two tasks on one core;
//! [`lookup_host`] resolves names on the blocking pool (tokio's names for both).
//!
//! Minimum kernel per op: `CONNECT`/`ACCEPT` 5.5, `SENDMSG`/`RECVMSG` 5.3, `SEND`/`RECV`
//! 5.6, `SHUTDOWN` 5.11, multishot `ACCEPT` 5.19, `SEND_ZC` 6.0.
//!
//! ```
//! use ringleader::net::{TcpListener, TcpStream};
//! use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
//!
//! ringleader::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//!     let addr = listener.local_addr().unwrap();
//!     let server = ringleader::spawn(async move {
//!         let mut incoming = listener.incoming();
//!         let mut stream = incoming.next().await.unwrap().unwrap();
//!         let mut line = [0u8; 5];
//!         stream.read_exact(&mut line).await.unwrap();
//!         stream.write_all(&line).await.unwrap();
//!     });
//!     let mut client = TcpStream::connect(addr).await.unwrap();
//!     client.write_all(b"hello").await.unwrap();
//!     let mut back = Vec::new();
//!     client.read_to_end(&mut back).await.unwrap();
//!     assert_eq!(back, b"hello");
//!     server.await.unwrap();
//! });
//! ```
//!
//! [`Op`]: ringleader_executor::Op
//! [`BufResult`]: ringleader_buf::BufResult

mod accept;
mod addr;
mod compat;
mod lookup_host;
mod msg;
mod owned_io;
mod socket;
mod tcp_listener;
mod tcp_split;
mod tcp_stream;
mod udp;
mod unix;

/// Ops' resource types, as they appear in `Op<...>` return types.
pub mod ops;
pub mod recv_multi;

pub use std::net::Shutdown;

pub use lookup_host::{ToSocketAddrs, lookup_host};
pub use owned_io::OwnedIo;
pub use tcp_listener::{Incoming, TcpListener};
pub use tcp_split::{OwnedReadHalf, OwnedWriteHalf, ReuniteError};
pub use tcp_stream::TcpStream;
pub use udp::UdpSocket;
pub use unix::{UnixIncoming, UnixListener, UnixStream};
