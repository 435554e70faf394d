//! Reading `X-Forwarded-For` and `Forwarded` (RFC 7239) from the right, without
//! allocating and without reading more than a few entries, whatever a client sends.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::HeaderMap;
use http::header::{FORWARDED, HeaderName};

use super::ClientAddr;

/// The most list entries read from one request, empty ones included: more trusted
/// proxies than this in a row is not a deployment but an attack on the parser.
pub(crate) const MAX_HOPS: usize = 16;

/// The longest node a proxy writes: a bracketed, quoted IPv6 address with a port is
/// 55 bytes. Longer values are not addresses, and are not parsed.
const MAX_NODE_LEN: usize = 64;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The header the trusted proxies write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum ProxyHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1;proto=https, for="[2001:db8::1]:4711"`.
    Forwarded,
}

/// The client behind `peer` (a trusted proxy): the header's entries from the right,
/// each one the address the hop to its right saw, until one is not `trusted`.
pub(super) fn walk(
    headers: &HeaderMap,
    header: ProxyHeader,
    peer: ClientAddr,
    trusted: impl Fn(ClientAddr) -> bool,
) -> ClientAddr {
    let name = match header {
        ProxyHeader::XForwardedFor => &X_FORWARDED_FOR,
        ProxyHeader::Forwarded => &FORWARDED,
    };
    // Several fields of one name are one comma-separated list, in order (RFC 9110 §5.3).
    let entries = headers
        .get_all(name)
        .iter()
        .rev()
        .flat_map(|value| value.as_bytes().rsplit(|&b| b == b','))
        .take(MAX_HOPS);
    let mut client = peer;
    for entry in entries {
        let entry = entry.trim_ascii();
        if entry.is_empty() {
            // Empty list elements are allowed and mean nothing (RFC 9110 §5.6.1).
            continue;
        }
        let node = match header {
            ProxyHeader::XForwardedFor => Some(entry),
            ProxyHeader::Forwarded => for_parameter(entry),
        };
        match node.and_then(parse_node) {
            Some(ip) => client = ClientAddr::new(ip),
            // `unknown`, an obfuscated name or garbage, written by a proxy we trust:
            // the client stays the last address known, which no client chose.
            None => return client,
        }
        if !trusted(client) {
            return client;
        }
    }
    client
}

/// The value of the `for` parameter of one `Forwarded` element
/// (`for=192.0.2.60;proto=http;by=203.0.113.43`), names matched case-insensitively.
fn for_parameter(element: &[u8]) -> Option<&[u8]> {
    element.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let (name, value) = pair.split_at(pair.iter().position(|&b| b == b'=')?);
        name.trim_ascii()
            .eq_ignore_ascii_case(b"for")
            .then(|| value[1..].trim_ascii())
    })
}

/// An address as proxies write it: `192.0.2.60`, `2001:db8::1`, `192.0.2.60:4711`,
/// `[2001:db8::1]`, `[2001:db8::1]:4711`, any of them in double quotes.
fn parse_node(node: &[u8]) -> Option<IpAddr> {
    if node.len() > MAX_NODE_LEN {
        return None;
    }
    let node = match node {
        [b'"', inner @ .., b'"'] => inner,
        _ => node,
    };
    let text = std::str::from_utf8(node).ok()?;
    if let Some(bracketed) = text.strip_prefix('[') {
        let (ip, rest) = bracketed.split_once(']')?;
        if !(rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return ip.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    // IPv4 with a port; an IPv6 address with a port is always bracketed.
    let (ip, port) = text.split_once(':')?;
    if !is_port(port) {
        return None;
    }
    ip.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn nodes_parse_in_every_form_proxies_write() {
        for (node, expected) in [
            ("192.0.2.60", "192.0.2.60"),
            ("192.0.2.60:4711", "192.0.2.60"),
            ("\"192.0.2.60:4711\"", "192.0.2.60"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("\"[2001:db8::1]:4711\"", "2001:db8::1"),
            ("::ffff:192.0.2.60", "::ffff:192.0.2.60"),
        ] {
            assert_eq!(parse_node(node.as_bytes()), Some(ip(expected)), "{node}");
        }
        for node in [
            "unknown",
            "_hidden",
            "",
            "\"",
            "[2001:db8::1",
            "[2001:db8::1]x",
            "[192.0.2.1]",
            "192.0.2.60:",
            "192.0.2.60:123456",
            "192.0.2.60:http",
            "2001:db8::1:99999x",
            "\"192.0.2.60",
        ] {
            assert_eq!(parse_node(node.as_bytes()), None, "{node}");
        }
        let long = format!("{}1", " ".repeat(MAX_NODE_LEN));
        assert_eq!(parse_node(long.as_bytes()), None);
    }

    #[test]
    fn the_for_parameter_is_found_among_others() {
        assert_eq!(
            for_parameter(b"proto=https;For=\"[2001:db8::1]:80\";by=10.0.0.1"),
            Some(&b"\"[2001:db8::1]:80\""[..])
        );
        assert_eq!(for_parameter(b" for = 192.0.2.1 "), Some(&b"192.0.2.1"[..]));
        assert_eq!(for_parameter(b"by=10.0.0.1;proto=http"), None);
        assert_eq!(for_parameter(b"for"), None);
        assert_eq!(for_parameter(b"forwarded=1.2.3.4"), None);
    }

    fn walk_xff(values: &[&str], peer: &str, trusted: &[&str]) -> ClientAddr {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(&X_FORWARDED_FOR, value.parse().unwrap());
        }
        let trusted: Vec<ClientAddr> = trusted.iter().map(|t| ClientAddr::new(ip(t))).collect();
        walk(
            &headers,
            ProxyHeader::XForwardedFor,
            ClientAddr::new(ip(peer)),
            |addr| trusted.contains(&addr),
        )
    }

    #[test]
    fn the_walk_stops_at_the_first_untrusted_address() {
        let client = walk_xff(
            &["1.1.1.1, 2.2.2.2, 10.0.0.2"],
            "10.0.0.1",
            &["10.0.0.1", "10.0.0.2"],
        );
        assert_eq!(client.ip(), ip("2.2.2.2"));
    }

    #[test]
    fn garbage_written_by_a_trusted_proxy_leaves_the_last_known_address() {
        let client = walk_xff(
            &["1.1.1.1, unknown, 10.0.0.2"],
            "10.0.0.1",
            &["10.0.0.1", "10.0.0.2"],
        );
        assert_eq!(client.ip(), ip("10.0.0.2"));
        let client = walk_xff(
            &["1.1.1.1, , 10.0.0.2,"],
            "10.0.0.1",
            &["10.0.0.1", "10.0.0.2"],
        );
        assert_eq!(client.ip(), ip("1.1.1.1"), "empty elements are skipped");
    }

    #[test]
    fn an_all_trusted_chain_ends_at_its_leftmost_entry() {
        let client = walk_xff(
            &["10.0.0.3", "10.0.0.2"],
            "10.0.0.1",
            &["10.0.0.1", "10.0.0.2", "10.0.0.3"],
        );
        assert_eq!(client.ip(), ip("10.0.0.3"));
    }

    #[test]
    fn at_most_max_hops_entries_are_read() {
        // A client in front of 40 proxies that all claim to be trusted: the walk gives up
        // after MAX_HOPS entries, at a trusted address, not at the client's claim.
        let mut chain = vec!["6.6.6.6".to_owned()];
        chain.extend((0..40).map(|i| format!("10.0.0.{i}")));
        let trusted: Vec<String> = (0..40).map(|i| format!("10.0.0.{i}")).collect();
        let trusted: Vec<&str> = trusted.iter().map(String::as_str).collect();
        let client = walk_xff(&[&chain.join(",")], "10.0.0.0", &trusted);
        assert_eq!(client.ip(), ip(&format!("10.0.0.{}", 40 - MAX_HOPS)));
    }

    #[test]
    fn ipv4_mapped_entries_are_ipv4() {
        let client = walk_xff(&["::ffff:203.0.113.9"], "10.0.0.1", &["10.0.0.1"]);
        assert_eq!(client.ip(), ip("203.0.113.9"));
    }
}
