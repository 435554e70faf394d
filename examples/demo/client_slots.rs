//! The connections one client may hold at once (`--max-connections-per-client`).
//!
//! The server's connection cap alone let one address open every slot and keep it with a
//! small request every few seconds, so that no one else was served (red team, L5). Here
//! each client has at most `max` connections; one more is closed as soon as it is
//! accepted, while other clients go on being served.
//!
//! A client is an IPv4 address, or an IPv6 /64: one host, or one subscriber's network,
//! is handed a whole /64, so counting IPv6 per address would give one machine 2^64
//! clients' worth of slots (the failure throttle counts IPv6 per /64 too). IPv4-mapped
//! IPv6 peers count as their IPv4 address.
//!
//! Trusted proxies are not capped: each of their connections carries many clients, and
//! the proxy is where those clients' connections are limited.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};

use tower_apikey::client_addr::{ClientAddr, TrustedProxies};

/// The connections each client holds, and the most it may.
///
/// The map holds one entry per client with a connection open, so it never outgrows the
/// server's connection cap.
#[derive(Clone)]
pub struct ClientSlots {
    max: usize,
    uncapped: TrustedProxies,
    held: Held,
}

/// The connections open per client; a client holding none has no entry.
type Held = Arc<Mutex<HashMap<IpAddr, usize>>>;

impl ClientSlots {
    /// At most `max` connections per client; none for the peers in `uncapped`.
    pub fn new(max: usize, uncapped: TrustedProxies) -> Self {
        Self {
            max,
            uncapped,
            held: Arc::default(),
        }
    }

    /// A place for one more connection from `peer`, held until the slot drops; `None`
    /// if that client already holds `max` connections.
    pub fn take(&self, peer: IpAddr) -> Option<ClientSlot> {
        let peer = ClientAddr::new(peer);
        if self.uncapped.trusts(peer) {
            return Some(ClientSlot(None));
        }
        let client = client_of(peer.ip());
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let count = held.entry(client).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(ClientSlot(Some((client, Arc::clone(&self.held)))))
    }

    /// How many clients hold a connection now.
    #[cfg(test)]
    fn clients(&self) -> usize {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The client `ip` belongs to: itself for IPv4, its /64 for IPv6.
fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
    }
}

/// One connection's place under its client's cap; freed on drop.
pub struct ClientSlot(Option<(IpAddr, Held)>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let Some((client, held)) = self.0.take() else {
            return;
        };
        let mut held = held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(&client) {
            *count -= 1;
            if *count == 0 {
                held.remove(&client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_client_holds_at_most_max_and_others_are_not_affected() {
        let slots = ClientSlots::new(2, TrustedProxies::none());
        let first = slots.take(ip("192.0.2.1")).unwrap();
        let _second = slots.take(ip("192.0.2.1")).unwrap();
        assert!(slots.take(ip("192.0.2.1")).is_none());
        assert!(slots.take(ip("::ffff:192.0.2.1")).is_none(), "mapped");
        let _other = slots.take(ip("192.0.2.2")).unwrap();
        drop(first);
        assert!(slots.take(ip("192.0.2.1")).is_some(), "a slot freed");
    }

    #[test]
    fn ipv6_counts_per_64() {
        let slots = ClientSlots::new(1, TrustedProxies::none());
        let _held = slots.take(ip("2001:db8:0:1::1")).unwrap();
        assert!(slots.take(ip("2001:db8:0:1:ffff::2")).is_none());
        assert!(slots.take(ip("2001:db8:0:2::1")).is_some());
    }

    #[test]
    fn trusted_proxies_are_not_capped() {
        let proxies = TrustedProxies::x_forwarded_for(["10.0.0.0/8"]).unwrap();
        let slots = ClientSlots::new(1, proxies);
        let held: Vec<ClientSlot> = (0..5)
            .map(|_| slots.take(ip("10.1.2.3")).unwrap())
            .collect();
        assert_eq!(slots.clients(), 0, "nothing counted for a proxy");
        drop(held);
    }

    #[test]
    fn clients_without_connections_leave_the_map() {
        let slots = ClientSlots::new(3, TrustedProxies::none());
        let held: Vec<ClientSlot> = (0..100)
            .map(|i| slots.take(ip(&format!("198.51.100.{i}"))).unwrap())
            .collect();
        assert_eq!(slots.clients(), 100);
        drop(held);
        assert_eq!(slots.clients(), 0);
    }
}
