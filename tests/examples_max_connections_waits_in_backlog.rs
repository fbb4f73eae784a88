//! Issue 14 defect 3: `--max-connections` caps the connections a server holds at once,
//! over all its cores. Clients beyond the cap are not refused: they wait in the listen
//! backlog and are served, in turn, as connections end.

#[path = "support/example_bin.rs"]
mod example_bin;
#[path = "support/example_server.rs"]
mod example_server;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use example_server::Server;

/// How long a waiting client is watched to see that it is not served.
const NOT_SERVED: Duration = Duration::from_millis(700);

/// A client that has sent `b'x'` once; `served` once its echo came back.
struct Client {
    s: TcpStream,
    served: bool,
}

impl Client {
    fn new(server: &Server) -> Client {
        let mut s = server.connect();
        s.write_all(b"x").unwrap();
        Client { s, served: false }
    }

    /// Wait up to `limit` for the echo.
    fn check(&mut self, limit: Duration) -> bool {
        if !self.served {
            self.s.set_read_timeout(Some(limit)).unwrap();
            let mut b = [0u8; 1];
            match self.s.read(&mut b) {
                Ok(1) => self.served = true,
                Ok(_) => panic!("the server closed a waiting client"),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("a waiting client failed: {e}"),
            }
        }
        self.served
    }
}

fn echo(args: &[&str]) -> Server {
    let mut all = vec!["--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    Server::start("echo", &[], &all, None)
}

#[test]
fn echo_holds_clients_beyond_the_cap_until_a_connection_ends() {
    let server = echo(&["--cores", "1", "--max-connections", "3"]);
    let mut first: Vec<Client> = (0..3).map(|_| Client::new(&server)).collect();
    for c in &mut first {
        assert!(c.check(Duration::from_secs(10)), "a client below the cap");
    }
    let mut waiting: Vec<Client> = (0..2).map(|_| Client::new(&server)).collect();
    for c in &mut waiting {
        assert!(!c.check(NOT_SERVED), "a client beyond the cap was served");
    }
    // One connection ends: one waiting client is served, the other still waits.
    drop(first.pop());
    let served =
        |w: &mut Vec<Client>, limit| w.iter_mut().map(|c| c.check(limit)).filter(|&s| s).count();
    let mut n = 0;
    for _ in 0..20 {
        n = served(&mut waiting, Duration::from_millis(500));
        if n > 0 {
            break;
        }
    }
    assert_eq!(
        n, 1,
        "one slot freed, so exactly one waiting client is served"
    );
    drop(first.pop());
    for c in &mut waiting {
        assert!(c.check(Duration::from_secs(10)), "the second slot freed");
    }
    assert!(
        server.stderr_text().contains("--max-connections 3"),
        "reaching the cap is logged: {}",
        server.stderr_text()
    );
}

#[test]
fn echo_cap_holds_over_two_cores() {
    const CAP: usize = 4;
    let server = echo(&["--cores", "2", "--max-connections", "4"]);
    let mut clients: Vec<Client> = (0..12).map(|_| Client::new(&server)).collect();
    let mut done = 0;
    for _ in 0..30 {
        let served = clients
            .iter_mut()
            .map(|c| c.check(Duration::from_millis(150)))
            .filter(|&s| s)
            .count();
        assert!(
            served <= CAP,
            "{served} clients served at once with --max-connections {CAP}"
        );
        // End the served connections; the waiting ones take their slots.
        done += served;
        clients.retain(|c| !c.served);
        if clients.is_empty() {
            break;
        }
    }
    assert_eq!(done, 12, "every waiting client is served in the end");
}

#[test]
#[cfg(feature = "hyper")]
fn http_server_holds_clients_beyond_the_cap_until_a_connection_ends() {
    let server = Server::start(
        "http_server",
        &["hyper"],
        &[
            "--listen",
            "127.0.0.1:0",
            "--cores",
            "1",
            "--max-connections",
            "2",
        ],
        None,
    );
    let get = |s: &mut TcpStream, limit: Duration| -> bool {
        s.set_read_timeout(Some(limit)).unwrap();
        let mut reply = Vec::new();
        let mut buf = [0u8; 1024];
        while !reply.ends_with(b"hello") {
            match s.read(&mut buf) {
                Ok(0) => panic!("the server closed the connection"),
                Ok(n) => reply.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return false;
                }
                Err(e) => panic!("{e}"),
            }
        }
        true
    };
    const REQ: &[u8] = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";
    let mut kept: Vec<TcpStream> = (0..2).map(|_| server.connect()).collect();
    for s in &mut kept {
        s.write_all(REQ).unwrap();
        assert!(get(s, Duration::from_secs(10)), "a client below the cap");
    }
    let mut third = server.connect();
    third.write_all(REQ).unwrap();
    assert!(
        !get(&mut third, NOT_SERVED),
        "a client beyond the cap was served"
    );
    drop(kept.pop());
    assert!(
        get(&mut third, Duration::from_secs(10)),
        "a freed slot goes to the waiting client"
    );
}
