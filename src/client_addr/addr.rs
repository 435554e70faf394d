//! [`ClientAddr`]: a client's address, as [`client_addr`](super) documents.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use http::Extensions;

/// A client's IP address, IPv4-mapped IPv6 addresses given as the IPv4 address they map.
///
/// ```
/// use std::net::IpAddr;
/// use tower_apikey::client_addr::ClientAddr;
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
    /// the server recorded neither (see [`client_addr`](crate::client_addr)).
    ///
    /// This is the peer only: [`TrustedProxies::client_addr`](crate::client_addr::TrustedProxies::client_addr) also reads the headers of
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
