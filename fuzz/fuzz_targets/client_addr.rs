//! The client address behind trusted proxies, from arbitrary `X-Forwarded-For` or
//! `Forwarded` fields, against a plain reading of the rules in `tower_apikey::client_addr`.
//!
//! Invariants: it never panics; an untrusted peer is the client whatever it sent; the
//! answer is the one the oracle gets by splitting the fields into entries, reading at
//! most 16 from the right, skipping empty ones, stopping at the first untrusted address
//! or at the first entry that is not an address.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::Arbitrary;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tower_apikey::client_addr::{ClientAddr, TrustedProxies};

#[derive(Arbitrary, Debug)]
struct Net {
    v4: bool,
    bytes: [u8; 16],
    prefix: u8,
}

#[derive(Arbitrary, Debug)]
struct Input {
    forwarded: bool,
    peer_v4: bool,
    peer: [u8; 16],
    trusted: Vec<Net>,
    values: Vec<Vec<u8>>,
}

fn ip(v4: bool, bytes: [u8; 16]) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(bytes))
    }
}

/// An address as the rules accept it, written independently of the crate's parser.
fn oracle_node(text: &str) -> Option<IpAddr> {
    if text.len() > 64 {
        return None;
    }
    let text = if text.len() >= 2 && text.starts_with('"') && text.ends_with('"') {
        &text[1..text.len() - 1]
    } else {
        text
    };
    let port_ok = |p: &str| (1..=5).contains(&p.len()) && p.chars().all(|c| c.is_ascii_digit());
    if let Some(rest) = text.strip_prefix('[') {
        let close = rest.find(']')?;
        let after = &rest[close + 1..];
        if !(after.is_empty() || (after.starts_with(':') && port_ok(&after[1..]))) {
            return None;
        }
        return rest[..close].parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    let colon = text.find(':')?;
    if !port_ok(&text[colon + 1..]) {
        return None;
    }
    text[..colon].parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

fn oracle(
    values: &[Vec<u8>],
    forwarded: bool,
    peer: IpAddr,
    trusts: &dyn Fn(IpAddr) -> bool,
) -> IpAddr {
    let mut client = peer.to_canonical();
    if !trusts(client) {
        return client;
    }
    let joined = values.join(&b","[..]);
    let entries: Vec<&[u8]> = joined.split(|&b| b == b',').collect();
    for entry in entries.iter().rev().take(16) {
        let entry = entry.trim_ascii();
        if entry.is_empty() {
            continue;
        }
        let node = if forwarded {
            entry.split(|&b| b == b';').find_map(|pair| {
                let pair = pair.trim_ascii();
                let eq = pair.iter().position(|&b| b == b'=')?;
                pair[..eq]
                    .trim_ascii()
                    .eq_ignore_ascii_case(b"for")
                    .then(|| pair[eq + 1..].trim_ascii())
            })
        } else {
            Some(entry)
        };
        let parsed = node
            .and_then(|n| std::str::from_utf8(n).ok())
            .and_then(oracle_node);
        match parsed {
            Some(ip) => client = ip.to_canonical(),
            None => return client,
        }
        if !trusts(client) {
            return client;
        }
    }
    client
}

fuzz_target!(|input: Input| {
    let nets: Vec<String> = input
        .trusted
        .iter()
        .take(8)
        .map(|net| {
            let max = if net.v4 { 32 } else { 128 };
            format!("{}/{}", ip(net.v4, net.bytes), net.prefix % (max + 1))
        })
        .collect();
    let proxies = if input.forwarded {
        TrustedProxies::forwarded(&nets)
    } else {
        TrustedProxies::x_forwarded_for(&nets)
    }
    .expect("every address/prefix written here is valid");
    let name = if input.forwarded {
        "forwarded"
    } else {
        "x-forwarded-for"
    };
    let mut headers = HeaderMap::new();
    let mut values = Vec::new();
    for value in input.values.iter().take(8) {
        if let Ok(header) = HeaderValue::from_bytes(value) {
            headers.append(name, header);
            values.push(value.clone());
        }
    }
    let peer = ip(input.peer_v4, input.peer);
    let client = proxies.client_behind(ClientAddr::new(peer), &headers);
    let trusts = |ip: IpAddr| proxies.trusts(ClientAddr::new(ip));
    if !trusts(peer) {
        assert_eq!(
            client,
            ClientAddr::new(peer),
            "an untrusted peer is the client"
        );
    }
    let expected = oracle(&values, input.forwarded, peer, &trusts);
    assert_eq!(client.ip(), expected, "{headers:?}");
});
