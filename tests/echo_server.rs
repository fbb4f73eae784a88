//! Acceptance b, through the real `examples/echo` binary on 2 cores: 100 concurrent clients x
//! 1,000 round trips byte-exact; half-close (everything sent before `shutdown(Write)` comes
//! back, then end-of-stream); clients that reset (`SO_LINGER` 0) do not stop the multishot
//! accepts, which keep serving new clients.
//!
//! Clients are std threads with blocking sockets and read timeouts, so a hang fails the test
//! instead of stalling it. The example is built by `cargo test` (examples are built with the
//! tests); it sits in `target/<profile>/examples/`, next to this test's `deps/` directory.

#[path = "support/example_bin.rs"]
mod example_bin;

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use common::Rng;

const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// The example's binary (see `support/example_bin.rs`).
fn echo_binary() -> PathBuf {
    example_bin::example_bin("echo", &[])
}

/// The echo example running as a child process; killed and reaped on drop.
struct EchoServer {
    child: Child,
    addr: SocketAddr,
    _stdout: BufReader<ChildStdout>,
}

impl EchoServer {
    fn start() -> Self {
        let mut child = Command::new(echo_binary())
            .args(["--listen", "127.0.0.1:0", "--cores", "2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning the echo example");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        // "echo: listening on ADDR (N cores)"
        let addr = line
            .split_whitespace()
            .nth(3)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                let _ = child.wait();
                panic!("unexpected first line from echo: {line:?}")
            });
        EchoServer {
            child,
            addr,
            _stdout: stdout,
        }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    fn assert_running(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the echo server exited"
        );
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn round_trips(server: &EchoServer, seed: u64, n: usize) {
    let mut s = server.connect();
    let mut rng = Rng::new(seed);
    let mut back = vec![0u8; 2048];
    for i in 0..n {
        let len = 1 + rng.below(2048) as usize;
        let msg: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        s.write_all(&msg).unwrap();
        s.read_exact(&mut back[..len])
            .unwrap_or_else(|e| panic!("client {seed} round trip {i}: {e}"));
        assert!(
            back[..len] == msg[..],
            "client {seed} round trip {i}: bytes differ"
        );
    }
}

#[test]
fn hundred_clients_thousand_round_trips_each_byte_exact() {
    let server = EchoServer::start();
    std::thread::scope(|scope| {
        for client in 0..100u64 {
            let server = &server;
            scope.spawn(move || round_trips(server, client + 1, 1000));
        }
    });
}

#[test]
fn half_close_echoes_everything_then_ends_the_stream() {
    let server = EchoServer::start();
    std::thread::scope(|scope| {
        for client in 0..8u64 {
            let server = &server;
            scope.spawn(move || {
                let mut rng = Rng::new(client + 100);
                let data: Vec<u8> = (0..(1 << 20)).map(|_| rng.next() as u8).collect();
                let s = server.connect();
                let mut w = s.try_clone().unwrap();
                // Write and read at once: the server echoes while we are still sending.
                let writer = std::thread::spawn({
                    let data = data.clone();
                    move || {
                        w.write_all(&data).unwrap();
                        w.shutdown(Shutdown::Write).unwrap();
                    }
                });
                let mut back = Vec::new();
                (&s).read_to_end(&mut back).unwrap();
                writer.join().unwrap();
                assert_eq!(back.len(), data.len());
                assert!(back == data, "client {client}: echoed bytes differ");
            });
        }
    });
}

/// `SO_LINGER` with a zero timeout: `close` sends RST instead of FIN.
fn set_linger_zero(s: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `linger` is a live `struct linger` of the size passed.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
}

#[test]
fn resets_do_not_stop_the_server_from_accepting() {
    let mut server = EchoServer::start();
    for round in 0..5u64 {
        // Clients that reset at once, and clients that reset with an echo in flight.
        for _ in 0..20 {
            let s = server.connect();
            set_linger_zero(&s);
            drop(s);
        }
        for _ in 0..20 {
            let mut s = server.connect();
            s.write_all(&[7u8; 4096]).unwrap();
            set_linger_zero(&s);
            drop(s);
        }
        // New clients are still accepted and served, whichever core's listener gets them.
        std::thread::scope(|scope| {
            for client in 0..20u64 {
                let server = &server;
                scope.spawn(move || round_trips(server, 1000 + round * 100 + client, 20));
            }
        });
        server.assert_running();
    }
}
