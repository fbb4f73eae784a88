//! Adversarial review of nbd_server's spliced READs (`examples/nbd_server/splice.rs`).
//!
//! 1. A pipe holds `PIPE_CAPACITY` (1 MiB) as 256 page slots, and a splice from the page
//!    cache takes one slot per page it touches. A READ of up to 1 MiB whose range is not
//!    page aligned touches 257 pages: the first splice moves all but the last page's bytes,
//!    the next one waits in an io-wq worker for room in a pipe nobody drains. The request is
//!    never answered (until `--stall-timeout` closes the whole connection), and the worker
//!    stays blocked. The server's minimum block size is 1, so such a READ is valid
//!    (`qemu-io -c 'read 512 1M'` sends one).
//! 2. Every splice runs in an io-wq worker, and a splice into the socket of a client that
//!    stops reading blocks its worker until the stall timeout. A ring has at most 64
//!    unbounded workers: 64 such clients on a core hold them all, and every other client's
//!    spliced READ on that core waits behind them (the group path sends with an internal
//!    poll and holds no worker: `--read-path group` serves the same victim at once).
//! 3. Every spliced READ waiting for its turn on the wire holds a pipe: two fds. A
//!    connection may have 256 requests in flight, so one client that does not read its
//!    replies pins 512 of the server's fds (the group and batch paths: none). Under the
//!    usual `RLIMIT_NOFILE` of 1024 (systemd's soft default; the server does not raise it),
//!    three such clients leave no fd for `accept`: nobody else can connect. A client that
//!    reads one reply now and then keeps the stall timeout from ever closing it.

mod nbd_common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use nbd_common::*;

const IMAGE: usize = 8 << 20;

/// A server on one core whose image holds `pseudo_random(IMAGE, 7)`, in the page cache.
fn server(extra: &[&str]) -> (Server, TempPath, Vec<u8>) {
    let image = TempPath::on_disk("adv-splice");
    let content = pseudo_random(IMAGE, 7);
    std::fs::write(image.path(), &content).unwrap();
    let mut args = vec!["--image", image.path().to_str().unwrap(), "--cores", "1"];
    args.extend_from_slice(extra);
    (Server::start(&args), image, content)
}

/// `READ` with simple replies; the data, or what went wrong (as text).
fn read(c: &mut Raw, handle: u64, offset: u64, len: u32) -> Result<Vec<u8>, String> {
    c.request(0, CMD_READ, handle, offset, len);
    let mut head = [0u8; 16];
    c.s.read_exact(&mut head)
        .map_err(|e| format!("no reply head: {e}"))?;
    if be32(&head[0..4]) != SIMPLE_REPLY_MAGIC || be64(&head[8..16]) != handle {
        return Err(format!("not the reply to handle {handle}: {head:02x?}"));
    }
    if be32(&head[4..8]) != 0 {
        return Err(format!("error {}", be32(&head[4..8])));
    }
    let mut data = vec![0; len as usize];
    c.s.read_exact(&mut data)
        .map_err(|e| format!("head without its data: {e}"))?;
    Ok(data)
}

/// Valid READs of at most 1 MiB (so spliced) that start or end inside a page.
#[test]
fn adversarial_nbd_splice_unaligned_reads_up_to_1m_are_answered() {
    // The stall timeout only makes a lost reply show as a closed connection quickly.
    let (server, _image, content) = server(&["--read-path", "splice", "--stall-timeout", "5s"]);
    let cases: [(u64, u32); 4] = [
        (0, 1 << 20),                 // aligned: 256 pages (passes today)
        (512, 1 << 20),               // 257 pages
        (4095, (1 << 20) - 4094),     // 1 byte of a page, 255 pages, 1 byte
        (3 << 20 | 1, (1 << 20) - 1), // 257 pages
    ];
    for (i, (offset, len)) in cases.into_iter().enumerate() {
        let (mut c, _, _) = Raw::ready(server.addr, false);
        let got = read(&mut c, i as u64, offset, len).unwrap_or_else(|e| {
            panic!("READ of {len} bytes at {offset} (spliced, not page aligned): {e}")
        });
        let want = &content[offset as usize..offset as usize + len as usize];
        assert!(got == want, "READ of {len} bytes at {offset}: other bytes");
        c.disconnect();
    }
    server.stop();
}

/// A client whose receive buffer is a few KiB, connected and past the handshake.
fn small_window_client(addr: SocketAddr) -> Raw {
    let SocketAddr::V4(v4) = addr else {
        panic!("IPv4 listener")
    };
    // SAFETY: plain socket calls on a socket this function owns; the address is a valid
    // sockaddr_in for the length given.
    let s = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket");
        let small: libc::c_int = 4096;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw const small).cast(),
            size_of::<libc::c_int>() as u32,
        );
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(v4.ip().octets()),
            },
            sin_zero: [0; 8],
        };
        let r = libc::connect(
            fd,
            (&raw const sa).cast(),
            size_of::<libc::sockaddr_in>() as u32,
        );
        assert_eq!(r, 0, "connect: {}", std::io::Error::last_os_error());
        TcpStream::from_raw_fd(fd)
    };
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut c = Raw { s };
    let hello = c.read_n(18);
    assert_eq!(be64(&hello[0..8]), NBDMAGIC);
    c.send(&3u32.to_be_bytes());
    c.go();
    c
}

/// 80 clients (more than the ring's 64 unbounded io-wq workers) each ask for 8 MiB of
/// spliced READs and never read the replies; then a well-behaved client reads 1 MiB. Its
/// reply must not wait for the stalled clients to be closed.
#[test]
fn adversarial_nbd_splice_nonreading_clients_do_not_starve_other_clients() {
    let (server, _image, content) = server(&["--stall-timeout", "10m", "--max-memory", "4G"]);
    let mut hogs = Vec::new();
    for _ in 0..80 {
        let mut c = small_window_client(server.addr);
        for h in 0..8 {
            c.request(0, CMD_READ, h, 0, 1 << 20);
        }
        c.s.flush().unwrap();
        hogs.push(c);
    }
    // Let the server queue the hogs' replies (the victim's request, had it come first,
    // would only race them).
    std::thread::sleep(Duration::from_secs(2));
    let (mut victim, _, _) = Raw::ready(server.addr, false);
    // Raw's 60 s read timeout is the hang guard: the group path answers in milliseconds.
    let got = read(&mut victim, 1, 1 << 20, 1 << 20).unwrap_or_else(|e| {
        panic!(
            "a 1 MiB READ while 80 clients do not read their spliced replies: {e} (every \
             io-wq worker of the core is blocked in a splice into a full socket)"
        )
    });
    assert!(got == content[1 << 20..2 << 20], "the victim's data");
    drop(hogs);
    server.stop();
}

/// [`server`], started with `RLIMIT_NOFILE` at 1024 (what a service gets by default).
fn server_with_1024_fds(extra: &[&str]) -> (Server, TempPath) {
    let image = TempPath::on_disk("adv-splice-fds");
    std::fs::write(image.path(), pseudo_random(IMAGE, 9)).unwrap();
    let mut cmd = Command::new(server_bin());
    cmd.args(["--listen", "127.0.0.1:0", "--cores", "1", "--image"])
        .arg(image.path())
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // SAFETY: setrlimit is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn nbd_server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line from nbd_server: {line:?}"));
    (Server { child, addr }, image)
}

/// Three clients each send 256 READs of 128 KiB (spliced) and do not read the replies; a
/// fourth client must still be able to connect and finish the handshake.
#[test]
fn adversarial_nbd_splice_nonreading_clients_do_not_exhaust_server_fds() {
    let (server, _image) = server_with_1024_fds(&["--stall-timeout", "10m"]);
    let mut hogs = Vec::new();
    for _ in 0..3 {
        let mut c = small_window_client(server.addr);
        for h in 0..256u64 {
            c.request(0, CMD_READ, h, (h % 48) << 17, 128 << 10);
        }
        hogs.push(c);
    }
    // Let the server take the hogs' requests (a client connecting first would only race
    // them).
    std::thread::sleep(Duration::from_secs(2));
    let fds = std::fs::read_dir(format!("/proc/{}/fd", server.child.id()))
        .map(Iterator::count)
        .unwrap_or(0);
    // Raw's 60 s read timeout is the hang guard; the greeting follows the accept at once.
    let victim = std::thread::spawn({
        let addr = server.addr;
        move || {
            let (c, size, _) = Raw::ready(addr, false);
            assert_eq!(size, IMAGE as u64);
            c.disconnect();
        }
    });
    if victim.join().is_err() {
        panic!(
            "a new client got no greeting while 3 clients hold their spliced READs \
             unread: the server has {fds} fds open of 1024 (a pipe per queued reply)"
        );
    }
    drop(hogs);
    server.stop();
}

/// Passes (pins it): the stall timeout still ends clients that stopped reading while
/// their replies are splices blocked in io-wq workers on a full socket: each connection is
/// reset, and the pipes it held are closed (at most the core's pool of 64 empty pipes
/// stays open), and the server then serves spliced READs with the right bytes (no pipe
/// came back to the pool holding stale bytes).
#[test]
fn adversarial_nbd_splice_stalled_readers_are_closed_and_their_pipes_freed() {
    let (server, _image, content) = server(&["--stall-timeout", "2s", "--max-memory", "4G"]);
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", server.child.id()))
            .map(Iterator::count)
            .unwrap()
    };
    let before = fds();
    let mut hogs = Vec::new();
    for _ in 0..4 {
        let mut c = small_window_client(server.addr);
        for h in 0..64u64 {
            c.request(0, CMD_READ, h, (h % 7) << 20, 1 << 20);
        }
        hogs.push(c);
    }
    for (i, c) in hogs.iter().enumerate() {
        // Without reading (reading would be progress): wait for the reset or the end of
        // stream, with a 60 s hang guard.
        let mut pfd = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&c.s),
            events: libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, 60_000) };
        assert!(
            n == 1 && pfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0,
            "client {i}: the stalled connection was not closed (poll: {n}, {:#x})",
            pfd.revents
        );
    }
    drop(hogs);
    // The closes are done on the server's side once its connection tasks end: a spliced
    // READ on a fresh connection comes after them on the same core.
    let (mut c, _, _) = Raw::ready(server.addr, false);
    for (h, off) in [(1u64, 0usize), (2, 3 << 20), (3, 5 << 20)] {
        let got = read(&mut c, h, off as u64, 1 << 20).expect("a spliced READ after the stalls");
        assert!(
            got == content[off..off + (1 << 20)],
            "READ at {off}: other bytes"
        );
    }
    // The hogs' tasks end as their blocked splices come back; allow them a moment (a
    // hang guard, not a timing claim).
    let mut after = fds();
    for _ in 0..100 {
        if after <= before + 2 * 64 + 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        after = fds();
    }
    assert!(
        after <= before + 2 * 64 + 2,
        "fds: {before} before the stalled clients, {after} after they were closed"
    );
    c.disconnect();
    server.stop();
}
