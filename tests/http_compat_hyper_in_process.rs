//! `ringleader::compat::hyper` in one process: hyper's HTTP/1 and HTTP/2 servers and clients
//! over ringleader streams, keep-alive, request bodies, upgrades (`without_shutdown`), hyper's
//! header-read timeout on `HyperTimer`, `HyperSleep` crossing cores, and 200 concurrent
//! hyper clients against a server on two cores.
#![cfg(feature = "hyper")]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::rt::Timer;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use ringleader::compat::hyper::{HyperExecutor, HyperIo, HyperSleep, HyperTimer};
use ringleader::net::{TcpListener, TcpStream};
use ringleader::time::timeout;

/// Every test gives up (fails) after this long instead of hanging.
const LIMIT: Duration = Duration::from_secs(30);

/// `/` answers `hello`; `/echo` answers the request body; `/upgrade` switches protocols
/// and then echoes raw bytes over the upgraded connection.
async fn service(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    match req.uri().path() {
        "/echo" => {
            let body = req
                .into_body()
                .collect()
                .await
                .map_or(Bytes::new(), |b| b.to_bytes());
            Ok(Response::new(Full::new(body)))
        }
        "/upgrade" => {
            let mut res = Response::new(Full::new(Bytes::new()));
            *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            res.headers_mut()
                .insert(hyper::header::UPGRADE, "echo".parse().unwrap());
            res.headers_mut()
                .insert(hyper::header::CONNECTION, "upgrade".parse().unwrap());
            Ok(res)
        }
        _ => Ok(Response::new(Full::new(Bytes::from_static(b"hello")))),
    }
}

/// Accept on `listener` forever, serving HTTP/1 (or HTTP/2 with `h2`) on this core.
async fn serve(listener: TcpListener, h2: bool) {
    let mut incoming = listener.incoming();
    while let Some(Ok(stream)) = incoming.next().await {
        ringleader::spawn(async move {
            let io = HyperIo::new(stream);
            if h2 {
                let _ = hyper::server::conn::http2::Builder::new(HyperExecutor)
                    .timer(HyperTimer)
                    .serve_connection(io, service_fn(service))
                    .await;
            } else {
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(HyperTimer)
                    .serve_connection(io, service_fn(service))
                    .await;
            }
        })
        .detach();
    }
}

fn start_server(h2: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    ringleader::spawn(serve(listener, h2)).detach();
    addr
}

fn get(path: &str) -> Request<Empty<Bytes>> {
    Request::get(path)
        .header(hyper::header::HOST, "test")
        .body(Empty::new())
        .unwrap()
}

async fn text(res: Response<Incoming>) -> String {
    let body = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

#[ringleader::test]
async fn http1_keep_alive_serves_a_hundred_requests_on_one_connection() {
    timeout(LIMIT, async {
        let addr = start_server(false);
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(HyperIo::new(stream))
            .await
            .unwrap();
        let conn = ringleader::spawn(conn);
        for i in 0..100 {
            let body = format!("request {i} ").repeat(i * 50);
            let req = Request::post("/echo")
                .header(hyper::header::HOST, "test")
                .body(Full::new(Bytes::from(body.clone())))
                .unwrap();
            let res = sender.send_request(req).await.unwrap();
            assert_eq!(res.status(), 200);
            assert_eq!(text(res).await, body);
        }
        drop(sender);
        conn.await.unwrap().unwrap();
    })
    .await
    .expect("within the limit");
}

#[ringleader::test]
async fn http2_runs_on_the_local_executor() {
    timeout(LIMIT, async {
        let addr = start_server(true);
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) =
            hyper::client::conn::http2::handshake(HyperExecutor, HyperIo::new(stream))
                .await
                .unwrap();
        ringleader::spawn(conn).detach();
        // Concurrent streams on the one connection.
        let requests: Vec<_> = (0..20)
            .map(|_| {
                let mut sender = sender.clone();
                ringleader::spawn(async move {
                    text(sender.send_request(get("/")).await.unwrap()).await
                })
            })
            .collect();
        for r in requests {
            assert_eq!(r.await.unwrap(), "hello");
        }
    })
    .await
    .expect("within the limit");
}

/// Bytes hyper read past the HTTP exchange, then the rest from the stream.
async fn read_after_upgrade(read_buf: &[u8], stream: &mut TcpStream, out: &mut [u8]) {
    let n = read_buf.len().min(out.len());
    out[..n].copy_from_slice(&read_buf[..n]);
    stream.read_exact(&mut out[n..]).await.unwrap();
}

/// `hyper::upgrade` needs a `Send` I/O type; ringleader's streams are `!Send`, so an upgrade
/// takes the stream back with `without_shutdown` + `into_parts` on both sides.
#[ringleader::test]
async fn an_upgrade_takes_the_stream_back_on_both_sides() {
    timeout(LIMIT, async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = ringleader::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let parts = hyper::server::conn::http1::Builder::new()
                .serve_connection(HyperIo::new(stream), service_fn(service))
                .without_shutdown()
                .await
                .unwrap();
            let mut stream = parts.io.into_inner();
            let mut buf = [0u8; 4];
            read_after_upgrade(&parts.read_buf, &mut stream, &mut buf).await;
            stream.write_all(&buf).await.unwrap();
            stream.close().await.unwrap();
        });

        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(HyperIo::new(stream))
            .await
            .unwrap();
        let conn = ringleader::spawn(conn.without_shutdown());
        let req = Request::get("/upgrade")
            .header(hyper::header::HOST, "test")
            .header(hyper::header::UPGRADE, "echo")
            .header(hyper::header::CONNECTION, "upgrade")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let res = sender.send_request(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
        let parts = conn.await.unwrap().unwrap();
        let mut stream = parts.io.into_inner();
        stream.write_all(b"ping").await.unwrap();
        let mut back = [0u8; 4];
        read_after_upgrade(&parts.read_buf, &mut stream, &mut back).await;
        assert_eq!(&back, b"ping");
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        server.await.unwrap();
    })
    .await
    .expect("within the limit");
}

#[ringleader::test]
async fn header_read_timeout_closes_a_silent_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = ringleader::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        hyper::server::conn::http1::Builder::new()
            .timer(HyperTimer)
            .header_read_timeout(Duration::from_millis(50))
            .serve_connection(HyperIo::new(stream), service_fn(service))
            .await
    });
    let mut client = TcpStream::connect(addr).await.unwrap();
    // Half a request head, then silence.
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: te")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let read = timeout(LIMIT, client.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the server never closed the connection");
    let err = timeout(LIMIT, server).await.unwrap().unwrap().unwrap_err();
    assert!(
        err.is_timeout(),
        "expected hyper's header timeout, got {err:?}"
    );
}

#[test]
fn hyper_sleep_is_send_and_sync() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<HyperSleep>();
    send_sync::<HyperTimer>();
}

#[ringleader::test(cores = 2)]
async fn a_sleep_made_on_one_core_completes_on_another() {
    let deadline = Instant::now() + Duration::from_millis(20);
    let sleep = HyperTimer.sleep_until(deadline);
    let on1 = ringleader::spawn_on(1, move || async move {
        sleep.await;
        (ringleader::current_core(), Instant::now() >= deadline)
    });
    assert_eq!(on1.await.unwrap(), (1, true));

    // Polled first on core 0 (registered with core 0's timer task), then moved to core 1.
    let mut sleep = Box::pin(HyperSleep::new(Duration::from_millis(20)));
    assert!(futures::poll!(sleep.as_mut()).is_pending());
    let on1 = ringleader::spawn_on(1, move || async move {
        sleep.await;
        ringleader::current_core()
    });
    assert_eq!(on1.await.unwrap(), 1);
}

#[ringleader::test(cores = 2)]
async fn two_hundred_concurrent_hyper_clients_against_two_cores() {
    const CONNS: usize = 200;
    let listener = TcpListener::bind_reuseport("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    ringleader::spawn(serve(listener, false)).detach();
    let (tx, rx) = futures::channel::oneshot::channel();
    ringleader::spawn_on(1, move || async move {
        let listener = TcpListener::bind_reuseport(addr).unwrap();
        let _ = tx.send(());
        serve(listener, false).await;
    })
    .detach();
    rx.await.unwrap();

    let clients: Vec<_> = (0..CONNS)
        .map(|i| {
            ringleader::spawn(async move {
                let stream = TcpStream::connect(addr).await.unwrap();
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(HyperIo::new(stream))
                        .await
                        .unwrap();
                ringleader::spawn(conn).detach();
                let res = sender
                    .send_request(get(&format!("/?client={i}")))
                    .await
                    .unwrap();
                (res.status(), text(res).await)
            })
        })
        .collect();
    let all = timeout(LIMIT, futures::future::join_all(clients))
        .await
        .expect("within the limit");
    for (i, r) in all.into_iter().enumerate() {
        let (status, body) = r.unwrap();
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "hello"),
            "client {i}"
        );
    }
}

#[test]
fn runtime_shutdown_with_pending_sleeps_is_clean() {
    let rt = ringleader::Runtime::builder().cores(2).build().unwrap();
    for core in 0..2 {
        for _ in 0..100 {
            rt.spawn_on(core, || HyperSleep::new(Duration::from_secs(3600)))
                .detach();
        }
    }
    // Every core has polled its sleeps (and started its timer task) once this returns.
    for core in 0..2 {
        let polled = rt.spawn_on(core, || async {
            ringleader::yield_now().await;
            ringleader::current_core()
        });
        assert_eq!(futures::executor::block_on(polled).unwrap(), core);
    }
    // Dropping the runtime drops the sleeping tasks and both timer tasks, in either order.
    rt.shutdown();
}
