//! [`TrustedProxies`]: which peers may say who the client is.

use std::net::IpAddr;
use std::sync::Arc;

use http::{Extensions, HeaderMap};
use ipnet::{IpNet, Ipv4Net};

use super::ClientAddr;
use super::forwarded::{self, ProxyHeader};

/// The reverse proxies whose `X-Forwarded-For` or `Forwarded` header the application
/// believes; by default none, and the client address is the connection's peer.
///
/// Read the [module docs](crate::client_addr#behind-reverse-proxies) before trusting
/// anyone: a header from a peer you do not control is whatever the client wants it to
/// be.
///
/// When the peer is trusted, the header is read from its right end (the entry the
/// nearest proxy appended) leftwards; each trusted address is skipped, and the first
/// address not trusted is the client. At most 16 entries are read, and an entry that
/// is not an address (`unknown`, an obfuscated `_name`, garbage) stops the walk: the
/// client is then the last address found, a proxy, never a value a client chose.
///
/// ```
/// use tower_apikey::{ApiKeyV2Layer, InMemoryKeyStore};
/// use tower_apikey::client_addr::TrustedProxies;
/// use tower_apikey::middleware::FailureThrottle;
///
/// // nginx on 10.0.0.0/8 writes X-Forwarded-For (`proxy_add_x_forwarded_for`).
/// let layer = ApiKeyV2Layer::new(InMemoryKeyStore::new())
///     .trusted_proxies(TrustedProxies::x_forwarded_for(["10.0.0.0/8"])?)
///     .throttle_failures(FailureThrottle::per_minute(10));
/// # Ok::<(), tower_apikey::client_addr::TrustedProxiesError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    /// Empty: trust no one, read no header.
    nets: Arc<[IpNet]>,
    header: ProxyHeader,
}

/// A trusted proxy that is neither an IP address nor a CIDR network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "trusted proxy {entry:?} is not an IP address or a CIDR network; write it as 10.0.0.7, 10.0.0.0/8 or 2001:db8::/32"
)]
pub struct TrustedProxiesError {
    entry: String,
}

impl TrustedProxies {
    /// Trust no proxy: the client address is the connection's peer (the default).
    pub fn none() -> Self {
        Self::default()
    }

    /// Trust the `X-Forwarded-For` header from peers in `proxies`: IP addresses
    /// (`10.0.0.7`, `::1`) or CIDR networks (`10.0.0.0/8`, `2001:db8::/32`). nginx,
    /// HAProxy, AWS load balancers and most CDNs write this header.
    pub fn x_forwarded_for<I>(proxies: I) -> Result<Self, TrustedProxiesError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Self::with(proxies, ProxyHeader::XForwardedFor)
    }

    /// Trust the `Forwarded` header (RFC 7239, its `for=` parameters) from peers in
    /// `proxies`, given as for [`x_forwarded_for`](Self::x_forwarded_for).
    pub fn forwarded<I>(proxies: I) -> Result<Self, TrustedProxiesError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Self::with(proxies, ProxyHeader::Forwarded)
    }

    fn with<I>(proxies: I, header: ProxyHeader) -> Result<Self, TrustedProxiesError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let nets = proxies
            .into_iter()
            .map(|entry| parse_net(entry.as_ref()))
            .collect::<Result<Arc<[IpNet]>, _>>()?;
        Ok(Self { nets, header })
    }

    /// Whether `addr` is one of the trusted proxies.
    pub fn trusts(&self, addr: ClientAddr) -> bool {
        let ip = addr.ip();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client address of a request: its [peer](ClientAddr::peer), or, when the peer
    /// is trusted, the address the trusted proxies forwarded. `None` when the server
    /// recorded no peer.
    #[inline]
    pub fn client_addr(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<ClientAddr> {
        ClientAddr::peer(extensions).map(|peer| self.client_behind(peer, headers))
    }

    /// The client address of a request that came from `peer` with `headers`.
    #[inline]
    pub fn client_behind(&self, peer: ClientAddr, headers: &HeaderMap) -> ClientAddr {
        if self.nets.is_empty() || !self.trusts(peer) {
            return peer;
        }
        forwarded::walk(headers, self.header, peer, |addr| self.trusts(addr))
    }
}

/// An address or network; an IPv4-mapped IPv6 network is the IPv4 network it maps, as
/// client addresses are.
fn parse_net(entry: &str) -> Result<IpNet, TrustedProxiesError> {
    let text = entry.trim();
    let net = match text.parse::<IpNet>() {
        Ok(net) => net.trunc(),
        Err(_) => text
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| TrustedProxiesError {
                entry: entry.to_owned(),
            })?,
    };
    Ok(match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => IpNet::V4(
                Ipv4Net::new(v4, v6.prefix_len() - 96).expect("a prefix of at most 32 bits"),
            ),
            None => net,
        },
        _ => net,
    })
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    fn addr(text: &str) -> ClientAddr {
        ClientAddr::new(text.parse().unwrap())
    }

    fn headers(name: &str, values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        headers
    }

    #[test]
    fn without_trusted_proxies_the_headers_are_ignored() {
        let proxies = TrustedProxies::none();
        let spoofed = headers("x-forwarded-for", &["203.0.113.9"]);
        assert_eq!(
            proxies.client_behind(addr("10.0.0.5"), &spoofed),
            addr("10.0.0.5")
        );
    }

    #[test]
    fn an_untrusted_peers_x_forwarded_for_is_ignored() {
        let proxies = TrustedProxies::x_forwarded_for(["10.0.0.0/8"]).unwrap();
        let spoofed = headers("x-forwarded-for", &["10.9.9.9, 203.0.113.9"]);
        assert_eq!(
            proxies.client_behind(addr("198.51.100.1"), &spoofed),
            addr("198.51.100.1")
        );
    }

    #[test]
    fn a_trusted_proxys_header_is_walked_past_trusted_hops() {
        let proxies = TrustedProxies::x_forwarded_for(["10.0.0.0/8", "192.0.2.1"]).unwrap();
        // A client that forged an entry, then the client as the first proxy saw it, then
        // an inner proxy.
        let chain = headers(
            "x-forwarded-for",
            &["6.6.6.6, 203.0.113.9", "192.0.2.1, 10.2.3.4"],
        );
        assert_eq!(
            proxies.client_behind(addr("10.0.0.5"), &chain),
            addr("203.0.113.9")
        );
    }

    #[test]
    fn forwarded_is_read_only_when_named() {
        let chain = headers(
            "forwarded",
            &["for=6.6.6.6, for=\"[2001:db8::9]:4711\";proto=https, for=10.1.1.1"],
        );
        let forwarded = TrustedProxies::forwarded(["10.0.0.0/8"]).unwrap();
        assert_eq!(
            forwarded.client_behind(addr("10.0.0.5"), &chain),
            addr("2001:db8::9")
        );
        let xff = TrustedProxies::x_forwarded_for(["10.0.0.0/8"]).unwrap();
        assert_eq!(
            xff.client_behind(addr("10.0.0.5"), &chain),
            addr("10.0.0.5")
        );
    }

    #[test]
    fn client_addr_reads_the_peer_then_the_header() {
        let proxies = TrustedProxies::x_forwarded_for(["::1"]).unwrap();
        let mut request = http::Request::new(());
        request
            .headers_mut()
            .insert("x-forwarded-for", "::ffff:203.0.113.9".parse().unwrap());
        assert_eq!(
            proxies.client_addr(request.headers(), request.extensions()),
            None
        );
        request
            .extensions_mut()
            .insert("[::1]:9000".parse::<SocketAddr>().unwrap());
        assert_eq!(
            proxies.client_addr(request.headers(), request.extensions()),
            Some(addr("203.0.113.9"))
        );
    }

    #[test]
    fn proxies_are_addresses_or_networks() {
        let proxies =
            TrustedProxies::x_forwarded_for(["10.0.0.7", " 172.16.0.0/12 ", "2001:db8::/32"])
                .unwrap();
        assert!(proxies.trusts(addr("10.0.0.7")));
        assert!(!proxies.trusts(addr("10.0.0.8")));
        assert!(proxies.trusts(addr("172.31.255.255")));
        assert!(proxies.trusts(addr("2001:db8:ffff::1")));
        assert!(!proxies.trusts(addr("2001:db9::1")));
        // Host bits are ignored; IPv4-mapped networks are IPv4 networks.
        let proxies = TrustedProxies::forwarded(["10.1.2.3/8", "::ffff:192.0.2.0/120"]).unwrap();
        assert!(proxies.trusts(addr("10.200.0.1")));
        assert!(proxies.trusts(addr("192.0.2.200")));
        assert!(proxies.trusts(addr("::ffff:192.0.2.200")));
    }

    #[test]
    fn a_bad_proxy_is_refused_with_what_to_write() {
        let error = TrustedProxies::x_forwarded_for(["10.0.0.0/8", "10.0.0.0/33"]).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("\"10.0.0.0/33\""), "{message}");
        assert!(message.contains("10.0.0.0/8 or 2001:db8::/32"), "{message}");
        assert!(TrustedProxies::forwarded(["proxy.internal"]).is_err());
    }
}
