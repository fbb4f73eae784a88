//! [`lookup_host`]: name resolution on the blocking pool (tokio's `net::lookup_host`).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// What [`lookup_host`] accepts (tokio's `net::ToSocketAddrs`): socket addresses, `(ip, port)`
/// and `(host, port)` pairs, and `"host:port"` strings, borrowed or owned. Sealed.
pub trait ToSocketAddrs: sealed::Sealed {}

mod sealed {
    /// The owned form a blocking-pool job can take.
    #[derive(Debug)]
    pub enum Query {
        Done(Vec<std::net::SocketAddr>),
        HostPort(String),
        Host(String, u16),
    }
    pub trait Sealed {
        fn query(self) -> Query;
    }
}
use sealed::{Query, Sealed};

macro_rules! resolved {
    ($($t:ty),*) => {$(
        impl Sealed for $t {
            fn query(self) -> Query {
                Query::Done(vec![SocketAddr::from(self)])
            }
        }
        impl ToSocketAddrs for $t {}
    )*};
}
resolved!(
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16)
);

impl Sealed for &[SocketAddr] {
    fn query(self) -> Query {
        Query::Done(self.to_vec())
    }
}
impl ToSocketAddrs for &[SocketAddr] {}

impl Sealed for &str {
    fn query(self) -> Query {
        match self.parse::<SocketAddr>() {
            Ok(a) => Query::Done(vec![a]),
            Err(_) => Query::HostPort(self.to_owned()),
        }
    }
}
impl ToSocketAddrs for &str {}

impl Sealed for String {
    fn query(self) -> Query {
        self.as_str().query()
    }
}
impl ToSocketAddrs for String {}

impl Sealed for &String {
    fn query(self) -> Query {
        self.as_str().query()
    }
}
impl ToSocketAddrs for &String {}

impl Sealed for (&str, u16) {
    fn query(self) -> Query {
        match self.0.parse::<IpAddr>() {
            Ok(ip) => Query::Done(vec![SocketAddr::new(ip, self.1)]),
            Err(_) => Query::Host(self.0.to_owned(), self.1),
        }
    }
}
impl ToSocketAddrs for (&str, u16) {}

impl Sealed for (String, u16) {
    fn query(self) -> Query {
        (self.0.as_str(), self.1).query()
    }
}
impl ToSocketAddrs for (String, u16) {}

/// Resolve `host` to socket addresses (tokio's `net::lookup_host`).
///
/// Addresses and IP literals are returned at once; host names are resolved with the C
/// library's resolver (`getaddrinfo`, through std's `ToSocketAddrs`) on the blocking pool,
/// so the core goes on meanwhile. Cancellation: dropping the future stops waiting; the
/// lookup itself runs to its end on the pool.
///
/// ```
/// ringleader::block_on(async {
///     let addrs: Vec<_> = ringleader::net::lookup_host("localhost:80").await?.collect();
///     assert!(addrs.iter().all(|a| a.port() == 80 && a.ip().is_loopback()));
///     let mut lit = ringleader::net::lookup_host(("127.0.0.1", 8080)).await?;
///     assert_eq!(lit.next(), Some("127.0.0.1:8080".parse().unwrap()));
///     Ok::<_, std::io::Error>(())
/// }).unwrap();
/// ```
///
/// # Errors
/// The resolver's error (a name that does not resolve, `"host"` without a port:
/// `InvalidInput`).
pub async fn lookup_host<T: ToSocketAddrs>(
    host: T,
) -> io::Result<impl Iterator<Item = SocketAddr> + use<T>> {
    let addrs = match host.query() {
        Query::Done(v) => v,
        Query::HostPort(s) => resolve(move || std::net::ToSocketAddrs::to_socket_addrs(&s)).await?,
        Query::Host(h, p) => {
            resolve(move || std::net::ToSocketAddrs::to_socket_addrs(&(h.as_str(), p))).await?
        }
    };
    Ok(addrs.into_iter())
}

async fn resolve<I>(
    f: impl FnOnce() -> io::Result<I> + Send + 'static,
) -> io::Result<Vec<SocketAddr>>
where
    I: Iterator<Item = SocketAddr>,
{
    ringleader_executor::spawn_blocking(move || f().map(Iterator::collect)).await?
}
