//! Linux 6.18 with `DEFER_TASKRUN`: an accept armed in the same `io_uring_enter` as the
//! `ASYNC_CANCEL` of an earlier accept on the same listener never sees the next connection
//! (docs/kernel-notes.md). The runtime sends cancels to the kernel in an enter of their own,
//! so an `accept()` cancelled by a timeout (or a dropped `incoming()`) followed at once by a
//! new accept still gets the next client.

use std::sync::mpsc;
use std::time::Duration;

use futures::StreamExt;
use ringleader::net::TcpListener;
use ringleader::time::timeout;

const DELAY_MS: u64 = 20;

fn connect_later(addr: std::net::SocketAddr) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(DELAY_MS));
        let s = std::net::TcpStream::connect(addr).unwrap();
        // Keep the client open until the test is done with it.
        let _ = rx_wait(&tx);
        drop(s);
    });
    rx
}

fn rx_wait(tx: &mpsc::Sender<()>) -> Result<(), mpsc::SendError<()>> {
    tx.send(())?;
    std::thread::sleep(Duration::from_secs(2));
    Ok(())
}

#[test]
fn accept_after_a_timed_out_accept_gets_the_next_client() {
    ringleader::block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let first = timeout(Duration::from_millis(20), l.accept()).await;
        assert!(first.is_err(), "nobody connected yet");
        // In the same tick as the cancel of the first accept: a new one.
        let second = l.accept();
        let _client = connect_later(addr);
        let got = timeout(Duration::from_secs(5), second).await;
        assert!(
            matches!(got, Ok(Ok(_))),
            "the next client was not accepted: {got:?}"
        );
    });
}

#[test]
fn incoming_after_a_dropped_incoming_gets_the_next_client() {
    ringleader::block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let mut a = l.incoming();
        assert!(
            timeout(Duration::from_millis(20), a.next()).await.is_err(),
            "nobody connected yet"
        );
        drop(a);
        let mut b = l.incoming();
        let _client = connect_later(addr);
        let got = timeout(Duration::from_secs(5), b.next()).await;
        assert!(
            matches!(got, Ok(Some(Ok(_)))),
            "the next client was not accepted: {got:?}"
        );
    });
}

#[test]
fn accept_armed_before_the_cancel_of_another_in_one_tick_gets_the_next_client() {
    ringleader::block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let mut first = Box::pin(l.accept());
        assert!(futures::poll!(first.as_mut()).is_pending());
        ringleader::yield_now().await; // the first accept is in the kernel
        let mut second = Box::pin(l.accept());
        assert!(futures::poll!(second.as_mut()).is_pending()); // pushed, not yet submitted
        drop(first); // its cancel goes in the same tick
        let _client = connect_later(addr);
        let got = timeout(Duration::from_secs(5), second).await;
        assert!(
            matches!(got, Ok(Ok(_))),
            "the next client was not accepted: {got:?}"
        );
    });
}

#[test]
fn multishot_armed_before_the_cancel_of_another_in_one_tick_gets_the_next_client() {
    ringleader::block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let mut a = l.incoming();
        assert!(futures::poll!(a.next()).is_pending());
        ringleader::yield_now().await;
        let mut b = l.incoming();
        assert!(futures::poll!(b.next()).is_pending());
        drop(a);
        let _client = connect_later(addr);
        let got = timeout(Duration::from_secs(5), b.next()).await;
        assert!(
            matches!(got, Ok(Some(Ok(_)))),
            "the next client was not accepted: {got:?}"
        );
    });
}

#[test]
fn a_client_connecting_right_after_the_cancel_reached_the_kernel_is_accepted() {
    ringleader::block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let mut first = Box::pin(l.accept());
        assert!(futures::poll!(first.as_mut()).is_pending());
        ringleader::yield_now().await; // the first accept waits in the kernel
        drop(first); // its cancel is pushed...
        let mut second = Box::pin(l.accept());
        assert!(futures::poll!(second.as_mut()).is_pending()); // ...and the new accept
        ringleader::yield_now().await; // one tick: both reach the kernel
        // The client connects before the core runs its deferred task work again.
        let _client = std::net::TcpStream::connect(addr).unwrap();
        let got = timeout(Duration::from_secs(3), second).await;
        assert!(
            matches!(got, Ok(Ok(_))),
            "the next client was not accepted: {got:?}"
        );
    });
}
