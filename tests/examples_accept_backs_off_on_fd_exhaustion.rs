//! Issue 14 defect 4: a server out of fds pauses accepting instead of spinning. Started with
//! `RLIMIT_NOFILE` 64 and flooded with 150 clients, echo and http_server each use little CPU
//! (< 20 % of one CPU over 3 s; a busy re-arm used 117 %) and write little to stderr
//! (< 64 KiB in all; the busy loop wrote 14-17 MB/s of `accept: Too many open files`), the
//! clients they did accept are still served, and once the clients leave, new ones are
//! accepted again (the accept was re-armed).

#[path = "support/example_bin.rs"]
mod example_bin;
#[path = "support/example_server.rs"]
mod example_server;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use example_server::Server;

const CLIENTS: usize = 150;
const WINDOW: Duration = Duration::from_secs(3);

/// Send one request: an echo, or `GET /`.
fn request(kind: &str, s: &mut TcpStream) {
    let req: &[u8] = match kind {
        "echo" => b"ping",
        _ => b"GET / HTTP/1.1\r\nhost: x\r\n\r\n",
    };
    s.write_all(req).unwrap();
}

/// Whether the reply to [`request`] has arrived (reading only what is there).
fn answered(kind: &str, s: &mut TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
    }
    s.set_nonblocking(false).unwrap();
    match kind {
        "echo" => reply == b"ping",
        _ => reply.starts_with(b"HTTP/1.1 200") && reply.ends_with(b"hello"),
    }
}

/// Request on `s` and wait up to 10 s for the reply.
fn served(kind: &str, s: &mut TcpStream) -> bool {
    request(kind, s);
    (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        answered(kind, s)
    })
}

fn backs_off(name: &str, features: &[&str], kind: &str) {
    let mut server = Server::start(
        name,
        features,
        &["--listen", "127.0.0.1:0", "--cores", "2"],
        Some(64),
    );
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| server.connect()).collect();
    // Let the server take what fds it has and run into the limit.
    std::thread::sleep(Duration::from_millis(500));
    let (cpu0, err0) = (server.cpu_time(), server.stderr_len());
    std::thread::sleep(WINDOW);
    let (cpu1, err1) = (server.cpu_time(), server.stderr_len());
    assert!(server.running(), "{name} exited: {}", server.stderr_text());
    let cpu = (cpu1 - cpu0).as_secs_f64() / WINDOW.as_secs_f64();
    let logged = server.stderr_len();
    let head: String = server.stderr_text().chars().take(600).collect();
    eprintln!(
        "{name}: {:.1} % CPU, {} stderr bytes in {WINDOW:?} ({logged} in all); stderr begins:\n{head}",
        cpu * 100.0,
        err1 - err0
    );
    assert!(
        head.contains("Too many open files"),
        "{name} should report the fd shortage"
    );
    assert!(
        cpu < 0.20,
        "{name} used {:.0} % of a CPU while out of fds",
        cpu * 100.0
    );
    assert!(
        logged < 64 * 1024,
        "{name} wrote {logged} bytes to stderr while out of fds"
    );
    // The clients that got an fd before the limit hit are still served.
    for c in &mut clients {
        request(kind, c);
    }
    std::thread::sleep(Duration::from_secs(1));
    let answered = clients
        .iter_mut()
        .map(|c| answered(kind, c))
        .filter(|&a| a)
        .count();
    eprintln!("{name}: {answered} of {CLIENTS} clients served while out of fds");
    assert!(
        answered > 0,
        "{name}: the accepted clients are no longer served"
    );
    // Free the fds: the server accepts again.
    clients.clear();
    let mut fresh = server.connect();
    assert!(
        served(kind, &mut fresh),
        "{name} no longer accepts after fds were freed: {}",
        server.stderr_text()
    );
}

#[test]
fn echo_backs_off_when_out_of_fds() {
    backs_off("echo", &[], "echo");
}

#[test]
#[cfg(feature = "hyper")]
fn http_server_backs_off_when_out_of_fds() {
    backs_off("http_server", &["hyper"], "http");
}
