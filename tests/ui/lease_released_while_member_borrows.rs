// The lease cannot be released while a member op borrows it.
use ringleader::buf::FixedPool;
use ringleader::net::TcpStream;

async fn send(pool: FixedPool, sock: TcpStream) {
    let lease = pool.lease(16).await.unwrap();
    let send = sock.send_zc_lease(&lease);
    drop(lease);
    send.await.unwrap();
}

fn main() {
    drop(send);
}
