//! Per-key limits and restrictions (DESIGN §12): a rate limit, a quota and an address
//! allowlist, each checked once the key is proven and active.
//!
//! Each is validated when it is made, so a record never holds a limit that cannot be
//! enforced:
//!
//! ```
//! use tower_apikey::record::{AllowedIps, Quota, QuotaPeriod, RateLimit};
//!
//! let rate = RateLimit::new(100, 60)?; // a burst of 100, then one request every 0.6 s
//! let quota = Quota::new(10_000, QuotaPeriod::Day)?; // per UTC day
//! let ips = AllowedIps::new(["203.0.113.0/24", "2001:db8::/32", "127.0.0.1"])?;
//! assert!(ips.allows("203.0.113.9".parse()?));
//! assert!(ips.allows("::ffff:127.0.0.1".parse()?)); // IPv4-mapped is its IPv4 form
//! assert!(!ips.allows("198.51.100.1".parse()?));
//! # let _ = (rate, quota);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net};

/// The most entries an [`AllowedIps`] holds.
pub const MAX_ALLOWED_IPS: usize = 64;
/// The longest window of a [`RateLimit`], in seconds (one day); longer budgets are a
/// [`Quota`]'s job.
pub const MAX_RATE_WINDOW_SECS: u32 = 86_400;

/// Why a limit or an allowlist is not valid. Each message says what to send instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// A rate limit or quota of zero requests.
    #[error("requests must be at least 1; leave the limit unset for no limit")]
    ZeroRequests,
    /// A rate limit over zero seconds.
    #[error("per_secs must be at least 1")]
    ZeroWindow,
    /// A rate limit over more than [`MAX_RATE_WINDOW_SECS`].
    #[error("per_secs is at most {MAX_RATE_WINDOW_SECS} (one day); for longer budgets use a quota")]
    WindowTooLong(u32),
    /// An allowlist with no entry, which would refuse every address.
    #[error(
        "allowed_ips cannot be empty (it would refuse every address); leave it unset to allow any"
    )]
    NoAddresses,
    /// More than [`MAX_ALLOWED_IPS`] entries.
    #[error(
        "allowed_ips holds at most {MAX_ALLOWED_IPS} entries; this one has {0}: merge addresses into CIDR networks"
    )]
    TooManyAddresses(usize),
    /// An entry that is neither an IP address nor a CIDR network (the entry, cut to 64
    /// characters).
    #[error(
        "{0:?} is not an IP address or CIDR network; write e.g. 203.0.113.7, 203.0.113.0/24 or 2001:db8::/32"
    )]
    BadAddress(String),
}

/// A rate limit: GCRA with emission interval `per_secs / requests` and a burst of
/// `requests`. A key that has been idle may send `requests` at once; after that, one
/// request per emission interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    requests: u32,
    per_secs: u32,
}

impl RateLimit {
    /// `requests` per `per_secs` seconds: both at least 1, `per_secs` at most
    /// [`MAX_RATE_WINDOW_SECS`].
    pub fn new(requests: u32, per_secs: u32) -> Result<Self, LimitError> {
        if requests == 0 {
            return Err(LimitError::ZeroRequests);
        }
        if per_secs == 0 {
            return Err(LimitError::ZeroWindow);
        }
        if per_secs > MAX_RATE_WINDOW_SECS {
            return Err(LimitError::WindowTooLong(per_secs));
        }
        Ok(Self { requests, per_secs })
    }

    /// The burst, and the number of requests per window.
    pub fn requests(&self) -> u32 {
        self.requests
    }

    /// The window, in seconds.
    pub fn per_secs(&self) -> u32 {
        self.per_secs
    }

    /// The emission interval `per_secs / requests`, in nanoseconds (at least 1).
    pub(crate) fn interval_nanos(&self) -> u64 {
        (u64::from(self.per_secs) * 1_000_000_000 / u64::from(self.requests)).max(1)
    }
}

/// The calendar period of a [`Quota`], in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QuotaPeriod {
    /// A UTC day, from 00:00:00.
    Day,
    /// A UTC calendar month (28 to 31 days), from the 1st at 00:00:00.
    Month,
}

impl QuotaPeriod {
    /// `day` or `month`, as the admin API writes it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Month => "month",
        }
    }
}

impl fmt::Display for QuotaPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A quota: at most `requests` per UTC calendar day or month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    requests: u32,
    per: QuotaPeriod,
}

impl Quota {
    /// `requests` (at least 1) per `per`.
    pub fn new(requests: u32, per: QuotaPeriod) -> Result<Self, LimitError> {
        if requests == 0 {
            return Err(LimitError::ZeroRequests);
        }
        Ok(Self { requests, per })
    }

    /// How many requests a period admits.
    pub fn requests(&self) -> u32 {
        self.requests
    }

    /// The period.
    pub fn per(&self) -> QuotaPeriod {
        self.per
    }
}

/// The addresses a key may be used from: IPv4 and IPv6 addresses and CIDR networks, at
/// most [`MAX_ALLOWED_IPS`]. An IPv4-mapped IPv6 address or network
/// (`::ffff:192.0.2.0/120`) is its IPv4 form, as client addresses are, so one rule
/// covers a client whichever socket it reached.
///
/// Cloning is cheap (one shared list).
#[derive(Clone, PartialEq, Eq)]
pub struct AllowedIps(Arc<Nets>);

#[derive(PartialEq, Eq)]
struct Nets {
    /// As given (normalised), for records and the admin API.
    nets: Box<[IpNet]>,
    /// `(network, mask)` pairs, so that a check is a scan of integer compares.
    v4: Box<[(u32, u32)]>,
    v6: Box<[(u128, u128)]>,
}

impl AllowedIps {
    /// Parses `entries` (`203.0.113.7`, `203.0.113.0/24`, `2001:db8::/32`…): 1 to
    /// [`MAX_ALLOWED_IPS`] of them. Host bits of a network are dropped
    /// (`203.0.113.9/24` is `203.0.113.0/24`).
    pub fn new<I>(entries: I) -> Result<Self, LimitError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut nets = Vec::new();
        for entry in entries {
            // Counted before parsing, so that a huge list is refused without more work.
            if nets.len() == MAX_ALLOWED_IPS {
                return Err(LimitError::TooManyAddresses(MAX_ALLOWED_IPS + 1));
            }
            nets.push(parse_net(entry.as_ref())?);
        }
        Self::from_nets(nets)
    }

    /// The allowlist of `nets`, already parsed: 1 to [`MAX_ALLOWED_IPS`] of them.
    pub fn from_nets(nets: impl IntoIterator<Item = IpNet>) -> Result<Self, LimitError> {
        let nets: Vec<IpNet> = nets.into_iter().map(canonical).collect();
        if nets.is_empty() {
            return Err(LimitError::NoAddresses);
        }
        if nets.len() > MAX_ALLOWED_IPS {
            return Err(LimitError::TooManyAddresses(nets.len()));
        }
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in &nets {
            match net {
                IpNet::V4(n) => v4.push((n.network().to_bits(), n.netmask().to_bits())),
                IpNet::V6(n) => v6.push((n.network().to_bits(), n.netmask().to_bits())),
            }
        }
        Ok(Self(Arc::new(Nets {
            nets: nets.into(),
            v4: v4.into(),
            v6: v6.into(),
        })))
    }

    /// The networks (a single address is a `/32` or `/128`).
    pub fn nets(&self) -> &[IpNet] {
        &self.0.nets
    }

    /// Whether `ip` is in the list; an IPv4-mapped IPv6 address is checked as IPv4.
    pub fn allows(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(ip) => {
                let ip = ip.to_bits();
                self.0.v4.iter().any(|&(net, mask)| ip & mask == net)
            }
            IpAddr::V6(ip) => {
                let ip = ip.to_bits();
                self.0.v6.iter().any(|&(net, mask)| ip & mask == net)
            }
        }
    }
}

impl fmt::Debug for AllowedIps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.nets.iter()).finish()
    }
}

/// An address or network, host bits dropped.
fn parse_net(entry: &str) -> Result<IpNet, LimitError> {
    let text = entry.trim();
    match text.parse::<IpNet>() {
        Ok(net) => Ok(net.trunc()),
        Err(_) => text.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
            // Cut, so that an error about a huge entry stays small.
            LimitError::BadAddress(entry.chars().take(64).collect())
        }),
    }
}

/// An IPv4-mapped IPv6 network as the IPv4 network it maps; host bits dropped.
fn canonical(net: IpNet) -> IpNet {
    let net = net.trunc();
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, IpNet::V4),
            None => net,
        },
        _ => net,
    }
}

/// A key's limits and restrictions, as a record carries them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) rate_limit: Option<RateLimit>,
    pub(crate) quota: Option<Quota>,
    pub(crate) allowed_ips: Option<AllowedIps>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_allowlist_matches_ipv4_ipv6_and_ipv4_mapped_addresses() {
        let ips = AllowedIps::new(["203.0.113.0/24", "2001:db8::/32", "127.0.0.1"]).unwrap();
        assert!(ips.allows(ip("203.0.113.255")));
        assert!(!ips.allows(ip("203.0.114.0")));
        assert!(ips.allows(ip("2001:db8:ffff::1")));
        assert!(!ips.allows(ip("2001:db9::1")));
        assert!(ips.allows(ip("127.0.0.1")));
        assert!(!ips.allows(ip("127.0.0.2")));
        assert!(ips.allows(ip("::ffff:203.0.113.4")));
        assert!(!ips.allows(ip("::ffff:198.51.100.4")));
    }

    #[test]
    fn an_ipv4_mapped_entry_is_its_ipv4_network() {
        let ips = AllowedIps::new(["::ffff:192.0.2.0/120"]).unwrap();
        assert_eq!(ips.nets(), &["192.0.2.0/24".parse::<IpNet>().unwrap()]);
        assert!(ips.allows(ip("192.0.2.77")));
        assert!(ips.allows(ip("::ffff:192.0.2.77")));
    }

    #[test]
    fn host_bits_are_dropped() {
        let ips = AllowedIps::new(["203.0.113.9/24"]).unwrap();
        assert_eq!(ips.nets(), &["203.0.113.0/24".parse::<IpNet>().unwrap()]);
    }

    #[test]
    fn allowlists_are_validated_with_errors_that_say_what_to_do() {
        assert_eq!(
            AllowedIps::new([] as [&str; 0]),
            Err(LimitError::NoAddresses)
        );
        let many: Vec<String> = (0..65).map(|i| format!("10.0.0.{i}")).collect();
        assert_eq!(
            AllowedIps::new(&many),
            Err(LimitError::TooManyAddresses(65))
        );
        assert!(AllowedIps::new(&many[..64]).is_ok());
        let bad = AllowedIps::new(["10.0.0.0/33"]).unwrap_err();
        assert_eq!(bad, LimitError::BadAddress("10.0.0.0/33".into()));
        assert!(bad.to_string().contains("203.0.113.0/24"));
    }

    #[test]
    fn limits_are_validated() {
        assert_eq!(RateLimit::new(0, 1), Err(LimitError::ZeroRequests));
        assert_eq!(RateLimit::new(1, 0), Err(LimitError::ZeroWindow));
        assert_eq!(
            RateLimit::new(1, 86_401),
            Err(LimitError::WindowTooLong(86_401))
        );
        assert_eq!(
            Quota::new(0, QuotaPeriod::Month),
            Err(LimitError::ZeroRequests)
        );
        assert_eq!(RateLimit::new(4, 2).unwrap().interval_nanos(), 500_000_000);
    }
}
