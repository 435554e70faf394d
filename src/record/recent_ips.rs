//! [`RecentIps`]: the last few distinct client addresses a key was used from (DESIGN §12).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// How many addresses [`RecentIps`] keeps.
pub const MAX_RECENT_IPS: usize = 5;

/// The last [`MAX_RECENT_IPS`] distinct client addresses of a key's proven requests,
/// newest first. Tracked through last-used tracking, so it is as fresh as
/// `last_used_at` (a flush period behind).
///
/// An IPv4-mapped IPv6 address is kept as its IPv4 form, as allowlists match it, so
/// "restrict to recent addresses" covers the client whichever socket it reached.
/// `Copy`, and allocates nothing: it rides on every usage write.
///
/// ```
/// use tower_apikey::record::RecentIps;
///
/// let mut recent = RecentIps::new();
/// for ip in ["192.0.2.1", "192.0.2.2", "192.0.2.1"] {
///     recent.push(ip.parse()?);
/// }
/// let newest_first: Vec<String> = recent.iter().map(|ip| ip.to_string()).collect();
/// assert_eq!(newest_first, ["192.0.2.1", "192.0.2.2"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecentIps {
    /// `ips[..len]`, newest first; the rest is filler.
    ips: [IpAddr; MAX_RECENT_IPS],
    len: u8,
}

impl Default for RecentIps {
    fn default() -> Self {
        Self::new()
    }
}

impl RecentIps {
    /// No address yet.
    pub const fn new() -> Self {
        Self {
            ips: [IpAddr::V4(Ipv4Addr::UNSPECIFIED); MAX_RECENT_IPS],
            len: 0,
        }
    }

    /// The first [`MAX_RECENT_IPS`] distinct addresses of `newest_first`.
    pub fn from_newest(newest_first: impl IntoIterator<Item = IpAddr>) -> Self {
        let mut recent = Self::new();
        for ip in newest_first {
            if recent.len() == MAX_RECENT_IPS {
                break;
            }
            recent.append_if_new(ip);
        }
        recent
    }

    /// Records `ip` as the newest: moved to the front if already here, else added
    /// (the oldest giving way when full).
    pub fn push(&mut self, ip: IpAddr) {
        let ip = ip.to_canonical();
        let len = self.len();
        let end = match self.as_slice().iter().position(|&known| known == ip) {
            Some(0) => return,
            Some(at) => at,
            None if len < MAX_RECENT_IPS => {
                self.len += 1;
                len
            }
            None => MAX_RECENT_IPS - 1,
        };
        self.ips.copy_within(0..end, 1);
        self.ips[0] = ip;
    }

    /// These addresses, newer, followed by those of `older` not among them: what a
    /// store keeps when a usage write brings newer addresses.
    pub fn and_older(&self, older: &RecentIps) -> Self {
        Self::from_newest(self.iter().chain(older.iter()))
    }

    /// The addresses, newest first.
    pub fn as_slice(&self) -> &[IpAddr] {
        &self.ips[..self.len()]
    }

    /// The addresses, newest first.
    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.as_slice().iter().copied()
    }

    /// How many there are (at most [`MAX_RECENT_IPS`]).
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `ip` as the oldest so far, unless it is already here.
    fn append_if_new(&mut self, ip: IpAddr) {
        let ip = ip.to_canonical();
        if !self.as_slice().contains(&ip) {
            self.ips[self.len()] = ip;
            self.len += 1;
        }
    }
}

impl fmt::Debug for RecentIps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(texts: &[&str]) -> Vec<IpAddr> {
        texts.iter().map(|t| t.parse().unwrap()).collect()
    }

    #[test]
    fn push_keeps_the_last_five_distinct_addresses_newest_first() {
        let mut recent = RecentIps::new();
        assert!(recent.is_empty());
        for ip in ips(&["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.2", "10.0.0.2"]) {
            recent.push(ip);
        }
        assert_eq!(
            recent.as_slice(),
            ips(&["10.0.0.2", "10.0.0.3", "10.0.0.1"])
        );
        for ip in ips(&["10.0.0.4", "10.0.0.5", "10.0.0.6"]) {
            recent.push(ip);
        }
        assert_eq!(
            recent.as_slice(),
            ips(&["10.0.0.6", "10.0.0.5", "10.0.0.4", "10.0.0.2", "10.0.0.3"]),
            "the oldest gave way"
        );
        recent.push("10.0.0.3".parse().unwrap());
        assert_eq!(
            recent.as_slice(),
            ips(&["10.0.0.3", "10.0.0.6", "10.0.0.5", "10.0.0.4", "10.0.0.2"]),
            "the last one moved to the front"
        );
    }

    #[test]
    fn ipv4_mapped_addresses_are_their_ipv4_form() {
        let mut recent = RecentIps::new();
        recent.push("::ffff:192.0.2.7".parse().unwrap());
        recent.push("192.0.2.7".parse().unwrap());
        recent.push("2001:db8::1".parse().unwrap());
        assert_eq!(recent.as_slice(), ips(&["2001:db8::1", "192.0.2.7"]));
    }

    #[test]
    fn newer_addresses_come_first_and_duplicates_once() {
        let older = RecentIps::from_newest(ips(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]));
        let newer = RecentIps::from_newest(ips(&["10.0.0.3", "10.0.0.9", "10.0.0.8", "10.0.0.7"]));
        assert_eq!(
            newer.and_older(&older).as_slice(),
            ips(&["10.0.0.3", "10.0.0.9", "10.0.0.8", "10.0.0.7", "10.0.0.1"])
        );
        assert_eq!(RecentIps::new().and_older(&older), older);
        let many = RecentIps::from_newest(ips(&[
            "10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6",
        ]));
        assert_eq!(many.len(), MAX_RECENT_IPS);
        assert_eq!(many.as_slice()[4], "10.0.0.5".parse::<IpAddr>().unwrap());
    }
}
