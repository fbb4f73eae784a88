//! `net::lookup_host`: names resolve on the blocking pool (localhost), addresses and IP
//! literals in every accepted form come back as given, and bad input is an error.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ringleader::net::lookup_host;

#[ringleader::test]
async fn names_literals_and_errors() {
    let local: Vec<SocketAddr> = lookup_host("localhost:8080").await.unwrap().collect();
    assert!(!local.is_empty());
    assert!(
        local
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 8080),
        "{local:?}"
    );
    let local2: Vec<_> = lookup_host(("localhost".to_owned(), 9))
        .await
        .unwrap()
        .collect();
    assert!(local2.iter().all(|a| a.ip().is_loopback() && a.port() == 9));

    let want: SocketAddr = "127.0.0.1:80".parse().unwrap();
    assert_eq!(
        lookup_host("127.0.0.1:80")
            .await
            .unwrap()
            .collect::<Vec<_>>(),
        [want]
    );
    assert_eq!(lookup_host(want).await.unwrap().collect::<Vec<_>>(), [want]);
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    assert_eq!(
        lookup_host((ip, 80)).await.unwrap().collect::<Vec<_>>(),
        [want]
    );
    assert_eq!(
        lookup_host(("127.0.0.1", 80))
            .await
            .unwrap()
            .collect::<Vec<_>>(),
        [want]
    );
    let owned = String::from("[::1]:443");
    let v6: Vec<_> = lookup_host(&owned).await.unwrap().collect();
    assert_eq!(v6, ["[::1]:443".parse::<SocketAddr>().unwrap()]);
    let list = [want, "10.0.0.1:1".parse().unwrap()];
    assert_eq!(lookup_host(&list[..]).await.unwrap().count(), 2);

    // No port: the resolver refuses the input.
    assert!(lookup_host("localhost").await.is_err());
    // A name under .invalid never resolves (RFC 6761).
    assert!(lookup_host("no-such-host.invalid:80").await.is_err());
}
