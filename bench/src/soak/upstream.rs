//! The proxy's default upstream: a plain tokio echo server (current-thread runtime, a task
//! per connection, `read` into 16 KiB and `write_all` it back, close at end of stream), run
//! in a process of its own (`soak --serve-echo ADDR`) so that its fds and memory are not the
//! bench's. It is not what the soak judges: it only has to be dependable at 10,000
//! connections, and be nothing of ringleader's, so a stall seen through the proxy is the
//! proxy's.

use std::io::{self, Write};
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The line it prints first (then the address), as the example servers do.
pub const NAME: &str = "upstream";

/// Serve echoes on `listen` until killed. Returns only on a set-up error.
pub fn serve(listen: SocketAddr) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        {
            let mut out = io::stdout().lock();
            writeln!(out, "{NAME}: listening on {}", listener.local_addr()?)?;
            out.flush()?;
        }
        loop {
            let mut conn = match listener.accept().await {
                Ok((c, _)) => c,
                // Out of fds and the like: the open connections go on; accepting resumes
                // after a pause (which blocks this thread: short, and rare).
                Err(_) => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                }
            };
            tokio::spawn(async move {
                let _ = conn.set_nodelay(true);
                let mut buf = vec![0u8; 16 << 10];
                loop {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    })
}
