//! The chat example against clients that misbehave. A client that sends a line longer than
//! `--max-line` (its name or a chat line) is told why and closed, instead of having the
//! server buffer an endless line; a client that stops reading is closed after
//! `--write-timeout`, instead of keeping its task and slot for good, blocked in a send. The
//! room goes on for everyone else.

#[path = "support/example_bin.rs"]
mod example_bin;
#[path = "support/example_server.rs"]
mod example_server;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use example_server::Server;

fn chat(args: &[&str]) -> Server {
    let mut all = vec!["--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    Server::start("chat", &[], &all, None)
}

/// Connect and read up to the name prompt.
fn connect(server: &Server) -> (BufReader<TcpStream>, TcpStream) {
    let s = server.connect();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut rd = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    rd.read_line(&mut line).unwrap();
    assert_eq!(line, "chat: your name?\n");
    (rd, s)
}

/// Join as `name`: read up to the welcome.
fn join(server: &Server, name: &str) -> (BufReader<TcpStream>, TcpStream) {
    let (mut rd, mut wr) = connect(server);
    writeln!(wr, "{name}").unwrap();
    loop {
        let mut line = String::new();
        assert!(
            rd.read_line(&mut line).unwrap() > 0,
            "closed before welcome"
        );
        if line.starts_with("chat: welcome") {
            return (rd, wr);
        }
    }
}

/// Read what is left until the server closes: the text read, or a panic if it stays open.
fn read_until_closed(rd: &mut impl Read) -> String {
    let mut all = Vec::new();
    let mut buf = [0u8; 64 << 10];
    loop {
        match rd.read(&mut buf) {
            Ok(0) => return String::from_utf8_lossy(&all).into_owned(),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the server did not close the client")
            }
            Err(_) => return String::from_utf8_lossy(&all).into_owned(),
        }
    }
}

/// Send `n` bytes with no newline, stopping quietly once the server closes on us.
fn send_endless_line(wr: &mut TcpStream, n: usize) {
    let chunk = vec![b'x'; 64 << 10];
    let mut sent = 0;
    while sent < n {
        if wr.write_all(&chunk).is_err() {
            return;
        }
        sent += chunk.len();
    }
}

#[test]
fn a_line_over_max_line_closes_only_its_client() {
    let server = chat(&["--max-line", "1000"]);
    let (mut other_rd, mut other_wr) = join(&server, "other");

    // A chat line of 4 MiB, no newline.
    let (mut rd, mut wr) = join(&server, "long");
    send_endless_line(&mut wr, 4 << 20);
    let said = read_until_closed(&mut rd);
    assert!(said.contains("longer than 1000 bytes"), "{said:?}");

    // A name of 4 MiB.
    let (mut rd, mut wr) = connect(&server);
    send_endless_line(&mut wr, 4 << 20);
    let said = read_until_closed(&mut rd);
    assert!(said.contains("longer than 1000 bytes"), "{said:?}");

    // A line of exactly the limit still goes through, and the room goes on.
    let (_rd3, mut wr3) = join(&server, "third");
    let max = "y".repeat(1000);
    writeln!(wr3, "{max}").unwrap();
    loop {
        let mut line = String::new();
        assert!(other_rd.read_line(&mut line).unwrap() > 0);
        if line.starts_with("third: ") {
            assert_eq!(line, format!("third: {max}\n"));
            break;
        }
    }
    writeln!(other_wr, "bye").unwrap();
}

#[test]
fn a_client_that_stops_reading_is_closed_after_write_timeout() {
    let server = chat(&["--write-timeout", "1", "--max-line", "2000"]);
    // Joins, then never reads again.
    let (mut stalled_rd, _stalled_wr) = join(&server, "stalled");
    let (mut talker_rd, mut talker_wr) = join(&server, "talker");
    // 8 MiB of lines for the stalled client: more than its socket buffers hold.
    let line = "z".repeat(1000);
    let writer = std::thread::spawn(move || {
        for _ in 0..8192 {
            writeln!(talker_wr, "{line}").unwrap();
        }
        talker_wr
    });
    let mut talker_wr = writer.join().unwrap();
    // Well past the write timeout, then drain: the server has closed the stalled client.
    std::thread::sleep(Duration::from_secs(3));
    read_until_closed(&mut stalled_rd);
    // The talker is still in the room: it sees a newcomer join.
    let (_new_rd, _new_wr) = join(&server, "newcomer");
    loop {
        let mut l = String::new();
        assert!(talker_rd.read_line(&mut l).unwrap() > 0, "talker closed");
        if l == "* newcomer joined\n" {
            break;
        }
    }
    writeln!(talker_wr, "still here").unwrap();
    // The close is logged (stderr is collected by a thread: give it a moment).
    let mut logged = false;
    for _ in 0..200 {
        logged = server.stderr_text().contains("--write-timeout");
        if logged {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(logged, "the close is logged: {}", server.stderr_text());
}
