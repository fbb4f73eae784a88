//! The three servers of a soak: `examples/nbd_server`, `examples/proxy`, and the proxy's
//! upstream echo server (the bench's own, [`upstream`](super::upstream), or
//! `examples/echo`), each started from a copy of its binary.

use std::path::Path;
use std::process::Command;

use super::procs::Server;
use super::{Settings, Who, upstream};

/// The three servers, killed when dropped.
#[derive(Debug)]
pub struct Servers {
    pub nbd: Server,
    pub proxy: Server,
    pub upstream: Server,
}

impl Servers {
    /// Start them, each with its output in `dir`.
    pub fn start(args: &Settings, dir: &Path) -> Result<Servers, String> {
        // Each server runs from a copy in `dir`, so a rebuild while the soak starts cannot
        // mix binaries of two builds.
        let bin = |name: &str| -> Result<Command, String> {
            let path = args.bin_dir.join(name);
            let built = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .map_err(|e| {
                    format!(
                        "{}: {e}: build it with `cargo build --release --all-features \
                         --examples` at the repository root, or pass --bin-dir",
                        path.display()
                    )
                })?;
            let copy = dir.join(name);
            std::fs::copy(&path, &copy).map_err(|e| format!("copying {}: {e}", path.display()))?;
            let age = built.elapsed().unwrap_or_default().as_secs();
            println!("  {name}: {} (built {age} s ago)", path.display());
            Ok(Command::new(copy))
        };
        let mut cmd = bin("nbd_server")?;
        cmd.args(["--listen", "127.0.0.1:0", "--image"])
            .arg(dir.join("export.img"))
            .args(["--size", "1G", "--handshake-timeout", "10s"])
            .args(&args.nbd_args);
        let nbd = Server::start("nbd_server", cmd, dir).map_err(|e| e.to_string())?;
        let upstream = if args.ringleader_upstream {
            let mut cmd = bin("echo")?;
            cmd.args([
                "--listen",
                "127.0.0.1:0",
                "--cores",
                "1",
                "--max-connections",
                "20000",
            ]);
            Server::start("echo", cmd, dir)
        } else {
            let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
            let mut cmd = Command::new(exe);
            cmd.args(["--serve-echo", "127.0.0.1:0"]);
            Server::start(upstream::NAME, cmd, dir)
        }
        .map_err(|e| e.to_string())?;
        let mut cmd = bin("proxy")?;
        cmd.args(["--listen", "127.0.0.1:0", "--upstream"])
            .arg(upstream.addr().to_string())
            .args(["--mode", &args.proxy_mode])
            .args(&args.proxy_args);
        let proxy = Server::start("proxy", cmd, dir).map_err(|e| e.to_string())?;
        Ok(Servers {
            nbd,
            proxy,
            upstream,
        })
    }

    /// The server `who`.
    pub fn get(&mut self, who: Who) -> &mut Server {
        match who {
            Who::Nbd => &mut self.nbd,
            Who::Proxy => &mut self.proxy,
            Who::Upstream => &mut self.upstream,
        }
    }
}
