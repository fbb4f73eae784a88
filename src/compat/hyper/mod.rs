//! hyper 1.x on ringleader (cargo feature `hyper`).
//!
//! | hyper needs | ringleader gives |
//! |---|---|
//! | `hyper::rt::Read` + `Write` | [`HyperIo<T>`](HyperIo) over a [`TcpStream`](crate::net::TcpStream) or [`UnixStream`](crate::net::UnixStream): recv through the stream's buffer, write-behind sends |
//! | `hyper::rt::Executor` | [`HyperExecutor`]: `ringleader::spawn` on the current core (futures need not be `Send`) |
//! | `hyper::rt::Timer` + `Sleep` | [`HyperTimer`] / [`HyperSleep`]: `Send + Sync` sleeps served by a per-core timer task |
//!
//! # Model
//!
//! Thread-per-core, as everywhere in ringleader: a connection is accepted on a core (one
//! `SO_REUSEPORT` listener per core spreads them), and its hyper connection future runs as
//! a task on that core for its whole life. Nothing has to be `Send`: the stream is `!Send`,
//! the service may hold `Rc`s, the response body may read a ringleader `File`.
//!
//! # What works
//!
//! - **HTTP/1 server** (`hyper::server::conn::http1`): `serve_connection(HyperIo::new(stream),
//!   service)` needs no executor; set [`HyperTimer`] with `.timer(..)` to get hyper's header
//!   read timeout (30 s by default once a timer is set).
//! - **HTTP/1 client** (`hyper::client::conn::http1::handshake`): spawn the returned
//!   connection with `ringleader::spawn`.
//! - **HTTP/2 server and client** (`hyper::server::conn::http2`, `hyper::client::conn::http2`):
//!   pass [`HyperExecutor`]; hyper's HTTP/2 executor bounds (`Http2ServerConnExec`,
//!   `Http2ClientConnExec`) do not ask for `Send`, and `HyperExecutor` spawns any
//!   `'static` future, `Send` or not, on the current core. The HTTP/2 client also asks for
//!   `B::Data: Send` (e.g. `Bytes`, as usual). HTTP/2 needs a timer when keep-alive pings are
//!   configured.
//! - **Upgrades** (`CONNECT`, WebSocket): `hyper::upgrade::on` and `with_upgrades()` require
//!   a `Send` I/O type, and ringleader's streams are `!Send`. Take the stream back instead:
//!   `serve_connection(..).without_shutdown().await` (server) or
//!   `conn.without_shutdown().await` (client) ends after the `101` and returns `Parts { io,
//!   read_buf, .. }`; `io.into_inner()` is the `TcpStream` again, and `read_buf` holds bytes
//!   hyper read past the HTTP exchange. `tests/http_compat_hyper_in_process.rs` does this.
//! - **hyper-util**'s pooled `Client` is not covered: its pool requires `Send` connections
//!   and its `HttpConnector` uses tokio's I/O. Use the `conn` APIs above, with one connection
//!   (or pool) per core. (`HyperExecutor` itself accepts `Send` futures too, so APIs that only
//!   bound the executor are fine.)
//!
//! `HyperExecutor` spawns on the core that calls `execute`; calling it outside a ringleader
//! runtime panics, as `ringleader::spawn` does.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use futures::StreamExt;
//! use http_body_util::{BodyExt, Empty, Full};
//! use hyper::{Request, Response, body::Incoming, service::service_fn};
//! use ringleader::compat::hyper::{HyperIo, HyperTimer};
//! use ringleader::net::{TcpListener, TcpStream};
//!
//! async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
//!     Ok(Response::new(Full::new(Bytes::from_static(b"hello"))))
//! }
//!
//! ringleader::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//!     let addr = listener.local_addr().unwrap();
//!     ringleader::spawn(async move {
//!         let mut incoming = listener.incoming();
//!         while let Some(Ok(stream)) = incoming.next().await {
//!             ringleader::spawn(async move {
//!                 let _ = hyper::server::conn::http1::Builder::new()
//!                     .timer(HyperTimer)
//!                     .serve_connection(HyperIo::new(stream), service_fn(hello))
//!                     .await;
//!             })
//!             .detach();
//!         }
//!     })
//!     .detach();
//!
//!     let stream = TcpStream::connect(addr).await.unwrap();
//!     let (mut sender, conn) = hyper::client::conn::http1::handshake(HyperIo::new(stream))
//!         .await
//!         .unwrap();
//!     ringleader::spawn(conn).detach();
//!     let req = Request::get("/").header("host", "localhost").body(Empty::<Bytes>::new()).unwrap();
//!     let res = sender.send_request(req).await.unwrap();
//!     assert_eq!(res.status(), 200);
//!     let body = res.into_body().collect().await.unwrap().to_bytes();
//!     assert_eq!(&body[..], b"hello");
//! });
//! ```

mod io;
mod timer;

use std::future::Future;

pub use io::HyperIo;
pub use timer::{HyperSleep, HyperTimer};

/// hyper's [`Executor`](::hyper::rt::Executor) on ringleader: spawns on the current core.
///
/// The future need not be `Send`: it never leaves the core that spawned it.
///
/// # Panics
/// `execute` panics outside a ringleader runtime.
#[derive(Clone, Copy, Debug, Default)]
pub struct HyperExecutor;

impl<F> ::hyper::rt::Executor<F> for HyperExecutor
where
    F: Future + 'static,
    F::Output: 'static,
{
    fn execute(&self, fut: F) {
        crate::spawn(fut).detach();
    }
}
