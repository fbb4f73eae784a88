//! A listener's `incoming()` stream that runs out of fds (`EMFILE`) pauses before it re-arms
//! its accept, instead of re-arming at once: a server loop that logs the error and keeps
//! polling (the natural code) must not spin. Before, such a loop saw thousands of errors a
//! second (issue 14 defect 4: 83-117 % CPU and megabytes of logs in the example servers).
//! Once fds are free again the stream accepts as before.
//!
//! Runs in a child process (it lowers the process's fd limit).

#[path = "support/reexec.rs"]
mod reexec;

use std::net::TcpStream as StdStream;
use std::time::Duration;

use futures::StreamExt;
use ringleader::net::TcpListener;

const CLIENTS: usize = 40;
const WINDOW: Duration = Duration::from_secs(1);

/// Set the soft fd limit (the hard one stays, so it can be raised again).
fn set_nofile(n: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one valid struct; setrlimit reads it.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = n.min(lim.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

fn child() {
    ringleader::block_on(async {
        let listener =
            TcpListener::bind("127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        // Clients wait in the backlog; then only two more fds may be opened.
        let clients: Vec<StdStream> = (0..CLIENTS)
            .map(|_| StdStream::connect(addr).unwrap())
            .collect();
        let before = open_fds();
        set_nofile(before + 2);
        let mut incoming = listener.incoming();
        let mut accepted = Vec::new();
        let mut errors = 0u64;
        let _ = ringleader::time::timeout(WINDOW, async {
            while let Some(r) = incoming.next().await {
                match r {
                    Ok(s) => accepted.push(s),
                    Err(e) if e.raw_os_error() == Some(libc::EMFILE) => errors += 1,
                    Err(e) => panic!("accept: {e}"),
                }
            }
        })
        .await;
        println!("ACCEPTED {} ERRORS {errors}", accepted.len());
        // Free fds: the stream accepts the clients still waiting.
        accepted.clear();
        set_nofile(before + 2 * CLIENTS as u64 + 16);
        let more = ringleader::time::timeout(Duration::from_secs(10), incoming.next()).await;
        let recovered = matches!(more, Ok(Some(Ok(_))));
        println!("RECOVERED {recovered}");
        drop(clients);
    });
}

#[test]
fn incoming_pauses_when_out_of_fds_then_accepts_again() {
    if reexec::case().is_some() {
        return child();
    }
    let out = reexec::run(
        "incoming_pauses_when_out_of_fds_then_accepts_again",
        "child",
        &[],
    )
    .out;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let num = |key: &str| -> u64 {
        stdout
            .split(key)
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{key} in {stdout}"))
    };
    let errors = num("ERRORS ");
    eprintln!("{}", stdout.trim());
    assert!(errors >= 1, "the fd limit was never hit: {stdout}");
    assert!(
        errors < 50,
        "{errors} EMFILE errors in {WINDOW:?}: the stream re-armed its accept at once after each"
    );
    assert!(
        stdout.contains("RECOVERED true"),
        "no accept after fds were freed: {stdout}"
    );
}
