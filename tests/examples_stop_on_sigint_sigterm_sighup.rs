//! The long-running examples (echo, http_server, proxy, nbd_server) stop cleanly, with exit
//! status 0, on SIGINT, SIGTERM and SIGHUP. SIGINT stops them even when they were started
//! with SIGINT ignored (a shell starts background jobs that way, and `kill -INT %1` must
//! still stop one); a SIGHUP ignored on purpose (`nohup`) stays ignored: the server keeps
//! serving until SIGTERM.

#[path = "support/example_bin.rs"]
mod example_bin;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use example_bin::example_bin;

/// An example server started as a child; SIGKILLed and reaped on drop.
struct Server {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    stderr: std::thread::JoinHandle<String>,
}

/// The examples, each with the features it needs and the flags that start it on a free
/// port. The proxy's upstream is `upstream` (only connected to when a client comes).
fn examples(upstream: SocketAddr) -> Vec<(&'static str, &'static [&'static str], Vec<String>)> {
    let listen = ["--listen".to_owned(), "127.0.0.1:0".to_owned()];
    let with = |extra: &[&str]| -> Vec<String> {
        listen
            .iter()
            .cloned()
            .chain(extra.iter().map(|s| s.to_string()))
            .collect()
    };
    let mut v = vec![
        ("echo", &[][..], with(&["--cores", "2"])),
        (
            "proxy",
            &[][..],
            with(&["--cores", "2", "--upstream", &upstream.to_string()]),
        ),
        (
            "nbd_server",
            &[][..],
            with(&["--cores", "2", "--size", "16M"]),
        ),
    ];
    if cfg!(feature = "hyper") {
        v.push((
            "http_server",
            &["hyper"][..],
            with(&["--cores", "2", "--dir", env!("CARGO_MANIFEST_DIR")]),
        ));
    }
    v
}

impl Server {
    /// Start `name` with `args`; `ignore` lists signals set to `SIG_IGN` before exec (as a
    /// shell does for a background job, or `nohup`). Waits for the `listening on` line.
    fn start(name: &'static str, features: &[&str], args: &[String], ignore: &[i32]) -> Server {
        let mut cmd = Command::new(example_bin(name, features));
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        let ignore = ignore.to_vec();
        // SAFETY: the closure runs in the forked child before exec and only calls signal(),
        // which is async-signal-safe, with SIG_IGN (no handler code).
        unsafe {
            cmd.pre_exec(move || {
                for &sig in &ignore {
                    if libc::signal(sig, libc::SIG_IGN) == libc::SIG_ERR {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{name}: unexpected first line {line:?}; stderr: {}",
                stderr.join().unwrap()
            );
        };
        Server {
            name,
            child,
            addr,
            stderr,
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's PID, not reaped before `Server` drops.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// Wait (at most 30 s) for the exit; panics unless it is a clean exit 0.
    fn expect_clean_exit(mut self, after: &str) {
        let end = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break Some(s);
            }
            if Instant::now() >= end {
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let name = self.name;
        let stderr = std::mem::replace(&mut self.stderr, std::thread::spawn(String::new));
        let stderr = stderr.join().unwrap();
        assert!(
            status.is_some_and(|s| s.success()),
            "{name} after {after}: {status:?} (None: still running after 30 s); stderr: {stderr}"
        );
    }

    /// Whether the server still accepts and runs.
    fn serving(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none() && TcpStream::connect(self.addr).is_ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A listener standing in for the proxy's upstream (never accepted from).
fn upstream() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

#[test]
fn sigint_and_sigterm_stop_every_example() {
    let up = upstream();
    for (name, features, args) in examples(up.local_addr().unwrap()) {
        for sig in [libc::SIGINT, libc::SIGTERM] {
            let s = Server::start(name, features, &args, &[]);
            s.signal(sig);
            s.expect_clean_exit(&format!("signal {sig}"));
        }
    }
}

#[test]
fn sigint_stops_a_server_started_with_sigint_ignored() {
    let up = upstream();
    for (name, features, args) in examples(up.local_addr().unwrap()) {
        let s = Server::start(name, features, &args, &[libc::SIGINT]);
        s.signal(libc::SIGINT);
        s.expect_clean_exit("SIGINT, started with SIGINT ignored");
    }
}

#[test]
fn sighup_stops_unless_ignored_at_start() {
    let up = upstream();
    for (name, features, args) in examples(up.local_addr().unwrap()) {
        let s = Server::start(name, features, &args, &[]);
        s.signal(libc::SIGHUP);
        s.expect_clean_exit("SIGHUP");

        // Under nohup: SIGHUP is not a stop signal; the server goes on serving.
        let mut s = Server::start(name, features, &args, &[libc::SIGHUP]);
        s.signal(libc::SIGHUP);
        // Give a wrongly handled SIGHUP time to start a stop (which closes the listeners).
        std::thread::sleep(Duration::from_millis(300));
        assert!(s.serving(), "{name} stopped on a SIGHUP ignored at start");
        if name == "echo" {
            let mut c = TcpStream::connect(s.addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            c.write_all(b"still here").unwrap();
            let mut back = [0u8; 10];
            c.read_exact(&mut back).unwrap();
            assert_eq!(&back, b"still here");
        }
        s.signal(libc::SIGTERM);
        s.expect_clean_exit("SIGTERM, after an ignored SIGHUP");
    }
}
