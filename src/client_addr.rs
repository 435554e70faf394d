//! The client's address: the connection's peer, or, behind proxies the application
//! trusts, the address they forwarded.
//!
//! Per-address policies read it: [`FailureThrottle`](crate::FailureThrottle) counts
//! failed attempts per client address.
//!
//! # Where the peer comes from
//!
//! The server knows each connection's peer; the middleware finds it in the request's
//! extensions, as one of:
//!
//! - a [`std::net::SocketAddr`], which hyper and tonic servers insert with a one-line
//!   layer (`examples/hyper.rs` and `examples/tonic.rs` show it; tonic inserts a
//!   `TcpConnectInfo` whose `remote_addr()` is that address);
//! - axum's `ConnectInfo<SocketAddr>` (feature `axum`), when the application is served
//!   with `into_make_service_with_connect_info::<SocketAddr>()`:
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use axum::{Router, routing::get};
//!
//! # async fn run(app: Router) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:3000").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
//! # }
//! ```
//!
//! A plain `SocketAddr` wins when both are present. An IPv4-mapped IPv6 address
//! (`::ffff:192.0.2.7`, what a dual-stack socket reports for an IPv4 client) is the
//! IPv4 address it maps, so one client is one address whichever socket it reached.
//!
//! # Behind reverse proxies
//!
//! Behind a load balancer or reverse proxy every connection comes from the proxy, and
//! only the proxy knows the client. Name your proxies in [`TrustedProxies`]: when the
//! peer is one of them, the address is read from the header they set
//! (`X-Forwarded-For` or `Forwarded`, RFC 7239), walking from its right end leftwards
//! past the proxies you trust, to the first address you do not trust.
//!
//! **Trust these headers only from proxies you run.** Anyone can send
//! `X-Forwarded-For: 1.2.3.4`; the header means something only when it was written by a
//! proxy that replaces or appends to it, and only the entries that proxy appended. So:
//!
//! - never trust a network that clients can connect from (such as `0.0.0.0/0`): every
//!   client could then choose its address, and a throttled client would simply pick
//!   another one;
//! - name the header your proxies actually write: a client can send the other one, and
//!   no proxy will have touched it;
//! - make sure clients cannot reach the service except through those proxies.
//!
//! Without trusted proxies (the default), the headers are never read.
//!
//! ```
//! use std::net::SocketAddr;
//! use tower_apikey::{ClientAddr, TrustedProxies};
//!
//! let proxies = TrustedProxies::x_forwarded_for(["10.0.0.0/8", "fd00::/8"])?;
//! let mut request = http::Request::new(());
//! request.headers_mut().insert("x-forwarded-for", "203.0.113.9, 10.1.2.3".parse()?);
//! request.extensions_mut().insert("10.0.0.5:41234".parse::<SocketAddr>()?);
//!
//! let client = proxies.client_addr(request.headers(), request.extensions());
//! assert_eq!(client, Some(ClientAddr::from("203.0.113.9".parse::<std::net::IpAddr>()?)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod forwarded;
mod trusted_proxies;

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use http::Extensions;

pub use trusted_proxies::{TrustedProxies, TrustedProxiesError};

/// A client's IP address, IPv4-mapped IPv6 addresses given as the IPv4 address they map.
///
/// ```
/// use std::net::IpAddr;
/// use tower_apikey::ClientAddr;
///
/// let mapped: IpAddr = "::ffff:192.0.2.7".parse()?;
/// assert_eq!(ClientAddr::from(mapped).ip(), "192.0.2.7".parse::<IpAddr>()?);
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientAddr(IpAddr);

impl ClientAddr {
    /// The address `ip`, an IPv4-mapped IPv6 address given as IPv4.
    pub fn new(ip: IpAddr) -> Self {
        Self(ip.to_canonical())
    }

    /// The IP address.
    pub fn ip(&self) -> IpAddr {
        self.0
    }

    /// The connection's peer, as the server recorded it in a request's `extensions`: a
    /// [`SocketAddr`], or (feature `axum`) axum's `ConnectInfo<SocketAddr>`. `None` when
    /// the server recorded neither (see the [module docs](self)).
    ///
    /// This is the peer only: [`TrustedProxies::client_addr`] also reads the headers of
    /// trusted proxies.
    pub fn peer(extensions: &Extensions) -> Option<Self> {
        if let Some(addr) = extensions.get::<SocketAddr>() {
            return Some(Self::new(addr.ip()));
        }
        #[cfg(feature = "axum")]
        if let Some(info) = extensions.get::<::axum::extract::ConnectInfo<SocketAddr>>() {
            return Some(Self::new(info.0.ip()));
        }
        None
    }
}

impl From<IpAddr> for ClientAddr {
    fn from(ip: IpAddr) -> Self {
        Self::new(ip)
    }
}

impl From<SocketAddr> for ClientAddr {
    fn from(addr: SocketAddr) -> Self {
        Self::new(addr.ip())
    }
}

impl fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for ClientAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientAddr({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_ipv4_mapped_address_is_the_ipv4_address() {
        assert_eq!(
            ClientAddr::new(ip("::ffff:192.0.2.7")).ip(),
            ip("192.0.2.7")
        );
        assert_eq!(
            ClientAddr::new(ip("::ffff:192.0.2.7")),
            ClientAddr::new(ip("192.0.2.7"))
        );
        // Only the mapped form: an IPv4-compatible or ordinary IPv6 address stays IPv6.
        assert_eq!(ClientAddr::new(ip("::192.0.2.7")).ip(), ip("::192.0.2.7"));
        assert_eq!(ClientAddr::new(ip("2001:db8::1")).ip(), ip("2001:db8::1"));
    }

    #[test]
    fn the_peer_comes_from_a_socket_addr_extension() {
        let mut extensions = Extensions::new();
        assert_eq!(ClientAddr::peer(&extensions), None);
        extensions.insert("[::ffff:198.51.100.4]:5000".parse::<SocketAddr>().unwrap());
        assert_eq!(
            ClientAddr::peer(&extensions),
            Some(ClientAddr::new(ip("198.51.100.4")))
        );
    }

    #[cfg(feature = "axum")]
    #[test]
    fn the_peer_comes_from_axums_connect_info() {
        let mut extensions = Extensions::new();
        extensions.insert(::axum::extract::ConnectInfo(
            "[2001:db8::7]:443".parse::<SocketAddr>().unwrap(),
        ));
        assert_eq!(
            ClientAddr::peer(&extensions),
            Some(ClientAddr::new(ip("2001:db8::7")))
        );
        // A plain `SocketAddr`, inserted deliberately by the application, wins.
        extensions.insert("192.0.2.1:1".parse::<SocketAddr>().unwrap());
        assert_eq!(
            ClientAddr::peer(&extensions),
            Some(ClientAddr::new(ip("192.0.2.1")))
        );
    }

    #[test]
    fn debug_and_display_show_the_address() {
        let addr = ClientAddr::new(ip("2001:db8::1"));
        assert_eq!(addr.to_string(), "2001:db8::1");
        assert_eq!(format!("{addr:?}"), "ClientAddr(2001:db8::1)");
    }
}
