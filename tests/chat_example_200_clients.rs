//! The chat example (`examples/chat.rs`, built and run as a child process) serves 200
//! clients at once: once all are in the room, each sends a few lines and every other client
//! receives each of them exactly once; then SIGINT (and, in a second run, SIGTERM) stops the
//! server, every client is told and closed, and the process exits 0.
//!
//! Loopback only; every socket has a 20 s read/write timeout and the phases are joined by
//! barriers, so a lost line fails the test instead of hanging it.

#[path = "support/example_bin.rs"]
mod example_bin;
#[path = "support/example_server.rs"]
mod example_server;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use example_server::{Server, describe};

const CLIENTS: usize = 200;
/// Lines each client sends.
const LINES: usize = 5;

/// What one client saw.
struct Seen {
    /// Chat lines by text (`cN: mK`), with how many times each arrived.
    lines: HashMap<String, usize>,
    /// Lines read after the last expected one, up to end of stream.
    after: Vec<String>,
}

/// One client: join as `c{me}`, wait for everyone, send `LINES` lines, read the others'
/// lines until all `(CLIENTS - 1) * LINES` have arrived, wait for the stop, read to the end.
fn run_client(
    server_addr: std::net::SocketAddr,
    me: usize,
    phases: &Barrier,
) -> Result<Seen, String> {
    let joined = (|| -> Result<_, String> {
        let s = std::net::TcpStream::connect(server_addr).map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut rd = BufReader::new(s.try_clone().unwrap());
        let mut wr = s;
        writeln!(wr, "c{me}").map_err(|e| format!("sending the name: {e}"))?;
        // The prompt, maybe join notices of others, then our welcome.
        loop {
            let line = read_line(&mut rd)?.ok_or("closed before the welcome")?;
            if line.starts_with("chat: welcome") {
                break;
            }
        }
        Ok((rd, wr))
    })();
    phases.wait(); // everyone subscribed (or failed)
    let (mut rd, mut wr) = joined?;

    let mut out = Ok(());
    for k in 0..LINES {
        if let Err(e) = writeln!(wr, "m{k}") {
            out = Err(format!("sending m{k}: {e}"));
            break;
        }
    }
    let mut lines = HashMap::new();
    let mut got = 0;
    while out.is_ok() && got < (CLIENTS - 1) * LINES {
        match read_line(&mut rd) {
            Ok(Some(line)) if line.starts_with("* ") => {} // join/leave notices
            Ok(Some(line)) => {
                *lines.entry(line).or_insert(0) += 1;
                got += 1;
            }
            Ok(None) => out = Err(format!("end of stream after {got} lines")),
            Err(e) => out = Err(format!("after {got} lines: {e}")),
        }
    }
    phases.wait(); // everyone has read all (or failed): the test stops the server
    out?;
    let mut after = Vec::new();
    while let Some(line) = read_line(&mut rd)? {
        after.push(line);
    }
    Ok(Seen { lines, after })
}

fn read_line(rd: &mut impl BufRead) -> Result<Option<String>, String> {
    let mut line = String::new();
    match rd.read_line(&mut line) {
        Ok(0) => Ok(None),
        Ok(_) => Ok(Some(line.trim_end().to_owned())),
        Err(e) => Err(format!("read: {e}")),
    }
}

fn run(sig: i32) {
    let mut server = Server::start(
        "chat",
        &[],
        &["--listen", "127.0.0.1:0", "--max-clients", "250"],
        None,
    );
    let addr = server.addr;
    let phases = Arc::new(Barrier::new(CLIENTS + 1));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|me| {
            let phases = Arc::clone(&phases);
            std::thread::spawn(move || run_client(addr, me, &phases))
        })
        .collect();
    phases.wait();
    phases.wait();
    server.signal(sig);

    let mut failures = Vec::new();
    for (me, c) in clients.into_iter().enumerate() {
        let seen = match c.join().expect("client thread") {
            Ok(seen) => seen,
            Err(e) => {
                failures.push(format!("client {me}: {e}"));
                continue;
            }
        };
        for other in (0..CLIENTS).filter(|&o| o != me) {
            for k in 0..LINES {
                let text = format!("c{other}: m{k}");
                let n = seen.lines.get(&text).copied().unwrap_or(0);
                if n != 1 {
                    failures.push(format!("client {me} got {text:?} {n} times"));
                }
            }
        }
        if let Some(own) = seen
            .lines
            .keys()
            .find(|l| l.starts_with(&format!("c{me}: ")))
        {
            failures.push(format!("client {me} got its own line {own:?}"));
        }
        let chat_after: Vec<_> = seen.after.iter().filter(|l| !l.starts_with("* ")).collect();
        if chat_after != ["chat: server stopping"] {
            failures.push(format!(
                "client {me}: after its lines it read {chat_after:?}"
            ));
        }
    }
    let status = server.wait_exit(Duration::from_secs(10));
    assert!(
        failures.is_empty(),
        "{} failures, first: {:#?}\nserver stderr:\n{}",
        failures.len(),
        &failures[..failures.len().min(10)],
        server.stderr_text()
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "the chat server after signal {sig}: {}; stderr:\n{}",
        describe(status),
        server.stderr_text()
    );
}

#[test]
fn chat_example_200_clients_sigint() {
    run(libc::SIGINT);
}

#[test]
fn chat_example_200_clients_sigterm() {
    run(libc::SIGTERM);
}
