//! [`FailureThrottle`]: a client address whose keys keep failing is refused before the
//! lookup, so that guessing keys costs the guesser time and the store nothing, without
//! becoming a lever against anyone else.

use std::fmt;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

use crate::client_addr::ClientAddr;
use crate::metrics;

/// The period the allowance is counted over.
const PERIOD: Duration = Duration::from_secs(60);
/// Rows of each table: an address is throttled only when all of its cells say so.
const ROWS: usize = 4;
/// Cells per row of the address table unless configured: 4 × 8192 × 8 bytes = 256 KiB.
const DEFAULT_CELLS_PER_ROW: usize = 8192;
/// Each row's index takes 16 bits of one 64-bit hash.
const MAX_CELLS_PER_ROW: usize = 1 << 16;
const MIN_CELLS_PER_ROW: usize = 64;
/// The /48 table has a quarter of the address table's cells: far fewer /48s fail than
/// addresses, since each one holds 65,536 /64s.
const NETWORK_TABLE_SHARE: usize = 4;
/// Unless configured, a /48 may fail this many times what one of its /64s may: a site
/// with several subnets is not one guesser, but one allocation cannot spread a flood
/// over its 65,536 /64s either.
const DEFAULT_NETWORK_FACTOR: u32 = 16;
/// The saturation gauge is computed at most this often (it reads every cell).
const SATURATION_EVERY: Duration = Duration::from_secs(1);

/// Refuses, with 429 and `Retry-After`, requests from a client address that has sent
/// too many wrong keys, before their key is looked up in the store.
///
/// Set it with [`ApiKeyV2Layer::throttle_failures`](crate::ApiKeyV2Layer::throttle_failures);
/// it is off by default.
///
/// ```
/// use tower_apikey::{ApiKeyV2Layer, InMemoryKeyStore};
/// use tower_apikey::middleware::FailureThrottle;
///
/// let layer = ApiKeyV2Layer::new(InMemoryKeyStore::new())
///     .throttle_failures(FailureThrottle::per_minute(10));
/// ```
///
/// # What counts
///
/// A *failure* is a well-formed key that the store's answer does not prove: an id the
/// store says does not exist, or a wrong secret. These are the only guesses that could
/// ever succeed. Not counted:
///
/// - a missing header, a malformed key or a bad checksum (refused without a lookup: a
///   broken client is not a guesser, and such requests cost the store nothing);
/// - an id that a `CachedKeyStore`'s id filter (feature `cache`) rules out
///   without asking the store ([`StoreError::RuledOut`](crate::StoreError::RuledOut)):
///   it cost nothing, and the filter may not yet know a key created a millisecond ago
///   on another instance, whose first use must not lock its client out;
/// - an expired or revoked key (it proved its secret), a store outage.
///
/// A success does not forgive earlier failures.
///
/// # Who is refused
///
/// A key that the store answers at once ([`KeyStore::lookup_ready`](crate::KeyStore::lookup_ready):
/// the in-memory store, a cache hit) and whose secret matches is never throttled: it
/// costs nothing to verify, so no flood of other people's failures can lock it out.
/// Every other request with a well-formed key is checked before it reaches the store.
///
/// With `per_minute(n)`, an address may fail `n` times in a row; after that each of
/// its checked requests is refused with 429 (outcome `throttled`,
/// [`RejectionKind::Throttled`](crate::middleware::RejectionKind::Throttled)), without a lookup,
/// until the allowance refills at one failure per `60 / n` seconds. Over any `t`
/// seconds an address gets at most `n + n·t/60` failures looked up (a generic cell
/// rate algorithm), plus however many of its requests were already past the check when
/// the last allowed failure landed. Throttled requests do not count: a client that
/// stops guessing is let back in, and one that keeps going stays refused.
///
/// IPv4 addresses are counted one by one. IPv6 addresses are counted per /64 network
/// (anyone who has one address of a /64 usually has all of them) **and** per /48,
/// which may fail 16 times as often by default
/// ([`ipv6_48_per_minute`](Self::ipv6_48_per_minute)): one /48 allocation holds
/// 65,536 /64s, and without the second count could spread its failures over all of
/// them. The address is the connection's peer or what trusted proxies forwarded: see
/// [`client_addr`](crate::client_addr). Requests that carry no address (the server
/// inserted none) are not throttled, and the first of them logs a warning that says
/// how to fix it.
///
/// A throttle keyed on addresses refuses everyone behind one address together: behind
/// a carrier-grade NAT or a corporate proxy, one client's failures throttle its
/// neighbours' *uncached* keys (cached valid keys, as above, are never throttled).
///
/// # Memory, collisions and saturation
///
/// The counts live in two fixed tables (count-min sketches of 4 rows: 256 KiB for
/// addresses and /64s by default, see [`cells_per_row`](Self::cells_per_row), and a
/// quarter of that for /48s), allocated once: memory does not grow with the number of
/// addresses, whatever an attacker sends. Each address maps to one cell per row, by a
/// hash keyed with a random seed per process, and its count is the least of its cells.
/// A failure raises only the cells that hold that least count (a *conservative
/// update*), so an address's failures push other addresses' cells no further than its
/// own count. Two addresses that share a cell can therefore only make each other look
/// *worse*: a collision may throttle an innocent address early, never let a guesser
/// through. That takes all four of its cells being full, which stays unlikely while
/// the addresses failing `n` times a minute are well below the row's cell count.
///
/// A distributed flood from far more addresses than that fills the table: then
/// addresses that never failed are refused too (their uncached keys; see above). How
/// full it is shows as [`saturation`](Self::saturation) and, with the `metrics` feature,
/// the gauge `apikey_throttle_saturation`; size the table with
/// [`cells_per_row`](Self::cells_per_row) for the failing addresses you expect.
///
/// # Time
///
/// The throttle measures time with tokio's monotonic clock, so wall-clock steps neither
/// lift nor extend it, and tests move it with `tokio::time::pause` and `advance`.
///
/// Clones share their counts: give one throttle to every layer that checks keys (an
/// API's and an admin router's), so that a guesser cannot spread its attempts over them.
#[derive(Clone)]
pub struct FailureThrottle {
    inner: Arc<Inner>,
}

/// The state clones share.
struct Inner {
    /// IPv4 addresses and IPv6 /64s.
    addresses: Sketch,
    /// IPv6 /48s.
    networks: Sketch,
    hasher: foldhash::quality::RandomState,
    origin: Instant,
    /// Whether the "no client address" warning was logged.
    warned_unaddressed: AtomicBool,
    /// When (nanoseconds after `origin`, plus one so that 0 is "never") the saturation
    /// gauge was last computed.
    saturation_at: AtomicU64,
}

/// One count-min table of theoretical arrival times (GCRA), one per cell.
struct Sketch {
    /// `ROWS` rows of cells, row after row: for each, the time (nanoseconds after
    /// `origin`) by which its failures will have been paid for; 0 is "never failed".
    cells: Box<[AtomicU64]>,
    /// Cells per row, less one (a power of two, less one).
    mask: u64,
    failures: u32,
    /// Nanoseconds one failure costs: `PERIOD / failures`.
    interval: u64,
    /// How far ahead of now a cell may be and still allow a failure: `PERIOD - interval`.
    tolerance: u64,
}

/// A client's hashes, computed once per request and used for the check and, on
/// failure, the count.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bucket {
    /// The IPv4 address, or the IPv6 /64.
    address: u64,
    /// The IPv6 /48; none for IPv4.
    network: Option<u64>,
}

impl FailureThrottle {
    /// At most `failures` failed keys in a row from one IPv4 address or IPv6 /64, and
    /// `failures` per minute after that; 16 times that for an IPv6 /48.
    ///
    /// # Panics
    ///
    /// If `failures` is 0: a throttle that allows no failure would refuse every key.
    pub fn per_minute(failures: u32) -> Self {
        Self::build(
            failures,
            failures.saturating_mul(DEFAULT_NETWORK_FACTOR),
            DEFAULT_CELLS_PER_ROW,
        )
    }

    /// How many failures each IPv6 /48 may make, in a row and then per minute (default
    /// 16 times [`per_minute`](Self::per_minute)'s). Each of its /64s is still held to
    /// its own allowance. Its counts start again.
    ///
    /// # Panics
    ///
    /// If `failures` is 0.
    pub fn ipv6_48_per_minute(self, failures: u32) -> Self {
        let inner = &self.inner;
        Self::build(inner.addresses.failures, failures, inner.addresses.width())
    }

    /// The size of the tables: `cells` per row (rounded up to a power of two, from 64 to
    /// 65,536; default 8,192) for addresses and /64s, a quarter of that (at least 64) for
    /// /48s; 4 rows of 8-byte cells each, so 320 KiB in all by default and 2.5 MiB at
    /// most. More cells keep more failing addresses apart; with `k` addresses failing
    /// at the limit, an innocent address is throttled with a probability of about
    /// `(k / cells)^4`. Its counts start again.
    pub fn cells_per_row(self, cells: usize) -> Self {
        let inner = &self.inner;
        Self::build(inner.addresses.failures, inner.networks.failures, cells)
    }

    fn build(failures: u32, network_failures: u32, cells_per_row: usize) -> Self {
        assert!(
            failures > 0 && network_failures > 0,
            "FailureThrottle::per_minute needs at least one failure per minute"
        );
        let width = cells_per_row
            .clamp(MIN_CELLS_PER_ROW, MAX_CELLS_PER_ROW)
            .next_power_of_two();
        let network_width = (width / NETWORK_TABLE_SHARE).max(MIN_CELLS_PER_ROW);
        Self {
            inner: Arc::new(Inner {
                addresses: Sketch::new(failures, width),
                networks: Sketch::new(network_failures, network_width),
                hasher: foldhash::quality::RandomState::default(),
                origin: Instant::now(),
                warned_unaddressed: AtomicBool::new(false),
                saturation_at: AtomicU64::new(0),
            }),
        }
    }

    /// The share of the address table's cells (0.0 to 1.0) that alone would refuse an
    /// address now. An address that never failed is refused when all four of its cells
    /// are, so with a saturation `s` a fresh address's uncached keys are throttled with
    /// a probability of about `s^4`. Reads every cell (about 32,000 by default): for
    /// monitoring, not for every request.
    pub fn saturation(&self) -> f64 {
        self.inner.addresses.saturation(self.inner.now())
    }

    /// The buckets of `addr`: the address itself for IPv4; its /64 and its /48 for IPv6.
    pub(crate) fn bucket(&self, addr: ClientAddr) -> Bucket {
        let hasher = &self.inner.hasher;
        match addr.ip() {
            // IPv4 as IPv4-mapped IPv6, whose low 64 bits are never 0, so that no IPv4
            // address shares a key with an IPv6 /64 (whose low 64 bits are cleared).
            IpAddr::V4(v4) => Bucket {
                address: hasher.hash_one(u128::from(v4.to_ipv6_mapped())),
                network: None,
            },
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                Bucket {
                    address: hasher.hash_one(bits & !u128::from(u64::MAX)),
                    network: Some(hasher.hash_one(bits & (u128::MAX << 80))),
                }
            }
        }
    }

    /// `Ok` if `bucket` may try a key; otherwise how long until it may, in whole
    /// seconds (at least one).
    pub(crate) fn check(&self, bucket: Bucket) -> Result<(), Duration> {
        let inner = &*self.inner;
        // Cells this low cannot be ahead of any time by more than the tolerance: the
        // common case, decided without reading the clock.
        let address = inner.addresses.estimate(bucket.address);
        let network = bucket.network.map(|hash| inner.networks.estimate(hash));
        let quiet = address <= inner.addresses.tolerance
            && network.is_none_or(|tat| tat <= inner.networks.tolerance);
        if quiet {
            return Ok(());
        }
        let now = inner.now();
        let wait = inner
            .addresses
            .wait(address, now)
            .max(network.map_or(0, |tat| inner.networks.wait(tat, now)));
        if wait == 0 {
            return Ok(());
        }
        self.refresh_saturation(now);
        Err(Duration::from_secs(wait.div_ceil(1_000_000_000).max(1)))
    }

    /// Counts a failed key from `bucket`.
    pub(crate) fn record_failure(&self, bucket: Bucket) {
        let inner = &*self.inner;
        let now = inner.now();
        inner.addresses.add(bucket.address, now);
        if let Some(network) = bucket.network {
            inner.networks.add(network, now);
        }
        self.refresh_saturation(now);
    }

    /// Recomputes the saturation gauge if it was last computed more than
    /// [`SATURATION_EVERY`] ago; one caller at a time does it.
    fn refresh_saturation(&self, now: u64) {
        let inner = &*self.inner;
        let stamp = now.saturating_add(1);
        let last = inner.saturation_at.load(Relaxed);
        let due = last == 0 || stamp.saturating_sub(last) >= SATURATION_EVERY.as_nanos() as u64;
        if due
            && inner
                .saturation_at
                .compare_exchange(last, stamp, Relaxed, Relaxed)
                .is_ok()
        {
            metrics::throttle_saturation(inner.addresses.saturation(now));
        }
    }

    /// Logs, once per throttle, that requests arrive without a client address.
    pub(crate) fn warn_unaddressed(&self) {
        if !self.inner.warned_unaddressed.swap(true, Relaxed) {
            tracing::warn!(
                "FailureThrottle is on, but a request carries no client address, so it is not \
                 throttled: serve axum with `into_make_service_with_connect_info::<SocketAddr>()`, \
                 or insert the connection's `SocketAddr` into each request's extensions \
                 (see tower_apikey::client_addr)"
            );
        }
    }
}

impl Inner {
    /// Nanoseconds since `origin`.
    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl Sketch {
    fn new(failures: u32, width: usize) -> Self {
        let period = u64::try_from(PERIOD.as_nanos()).expect("a minute fits in u64 nanoseconds");
        let interval = period / u64::from(failures);
        Self {
            cells: (0..ROWS * width).map(|_| AtomicU64::new(0)).collect(),
            mask: width as u64 - 1,
            failures,
            interval,
            tolerance: period - interval,
        }
    }

    fn width(&self) -> usize {
        self.mask as usize + 1
    }

    fn cells_of(&self, hash: u64) -> [&AtomicU64; ROWS] {
        let width = self.width();
        std::array::from_fn(|row| {
            let column = ((hash >> (16 * row)) & self.mask) as usize;
            &self.cells[row * width + column]
        })
    }

    /// The least of `hash`'s cells: never below its own theoretical arrival time.
    fn estimate(&self, hash: u64) -> u64 {
        self.cells_of(hash)
            .iter()
            .map(|cell| cell.load(Relaxed))
            .min()
            .unwrap_or(0)
    }

    /// Nanoseconds until a cell at `tat` allows a failure again (0: it does now).
    fn wait(&self, tat: u64, now: u64) -> u64 {
        tat.saturating_sub(now).saturating_sub(self.tolerance)
    }

    /// Counts one failure of `hash` at `now`, conservatively: its estimate moves on by
    /// one interval (GCRA), and each of its cells is raised to that, never further. The
    /// least cell is moved by compare-and-swap, so that concurrent failures of one
    /// address each count.
    fn add(&self, hash: u64, now: u64) {
        let cells = self.cells_of(hash);
        loop {
            let (least, estimate) = cells
                .iter()
                .map(|cell| cell.load(Relaxed))
                .enumerate()
                .min_by_key(|&(_, tat)| tat)
                .unwrap_or((0, 0));
            let target = estimate.max(now).saturating_add(self.interval);
            if cells[least]
                .compare_exchange(estimate, target, Relaxed, Relaxed)
                .is_ok()
            {
                for cell in cells {
                    cell.fetch_max(target, Relaxed);
                }
                return;
            }
        }
    }

    /// The share of cells that alone would refuse at `now`.
    fn saturation(&self, now: u64) -> f64 {
        let limit = now.saturating_add(self.tolerance);
        let full = self
            .cells
            .iter()
            .filter(|cell| cell.load(Relaxed) > limit)
            .count();
        full as f64 / self.cells.len() as f64
    }
}

impl fmt::Debug for FailureThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("FailureThrottle")
            .field("per_minute", &inner.addresses.failures)
            .field("ipv6_48_per_minute", &inner.networks.failures)
            .field("cells_per_row", &inner.addresses.width())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> ClientAddr {
        ClientAddr::new(text.parse().unwrap())
    }

    /// Fails `times` from `from`, each after a check that must pass.
    fn fail(throttle: &FailureThrottle, from: &str, times: u32) {
        let bucket = throttle.bucket(addr(from));
        for i in 0..times {
            assert_eq!(throttle.check(bucket), Ok(()), "failure {i} from {from}");
            throttle.record_failure(bucket);
        }
    }

    fn throttled(throttle: &FailureThrottle, from: &str) -> bool {
        throttle.check(throttle.bucket(addr(from))).is_err()
    }

    #[tokio::test(start_paused = true)]
    async fn n_failures_are_allowed_then_one_per_interval() {
        let throttle = FailureThrottle::per_minute(6);
        fail(&throttle, "192.0.2.1", 6);
        let bucket = throttle.bucket(addr("192.0.2.1"));
        assert_eq!(throttle.check(bucket), Err(Duration::from_secs(10)));
        tokio::time::advance(Duration::from_millis(9_500)).await;
        assert_eq!(throttle.check(bucket), Err(Duration::from_secs(1)));
        tokio::time::advance(Duration::from_millis(500)).await;
        // One failure's worth has refilled: exactly one more.
        fail(&throttle, "192.0.2.1", 1);
        assert!(throttled(&throttle, "192.0.2.1"));
        // A quiet minute refills it all.
        tokio::time::advance(PERIOD).await;
        fail(&throttle, "192.0.2.1", 6);
        assert!(throttled(&throttle, "192.0.2.1"));
    }

    #[tokio::test(start_paused = true)]
    async fn other_ipv4_addresses_are_counted_apart() {
        let throttle = FailureThrottle::per_minute(3);
        fail(&throttle, "192.0.2.1", 3);
        assert!(throttled(&throttle, "192.0.2.1"));
        assert!(!throttled(&throttle, "192.0.2.2"));
        assert!(!throttled(&throttle, "192.0.3.1"));
    }

    #[tokio::test(start_paused = true)]
    async fn ipv6_addresses_are_counted_per_64() {
        let throttle = FailureThrottle::per_minute(4);
        // Four addresses of one /64, one failure each.
        for host in ["::1", "::2", ":ffff:ffff:ffff:ffff", ":1234:0:0:9"] {
            fail(&throttle, &format!("2001:db8:0:7{host}"), 1);
        }
        assert!(throttled(&throttle, "2001:db8:0:7::abcd"));
        // The neighbouring /64 is someone else.
        assert!(!throttled(&throttle, "2001:db8:0:8::1"));
    }

    #[tokio::test(start_paused = true)]
    async fn ipv4_mapped_addresses_count_as_ipv4() {
        let throttle = FailureThrottle::per_minute(2);
        fail(&throttle, "::ffff:198.51.100.7", 1);
        fail(&throttle, "198.51.100.7", 1);
        assert!(throttled(&throttle, "198.51.100.7"));
        assert!(throttled(&throttle, "::ffff:198.51.100.7"));
        // …and not as the IPv6 /64 `::/64`, whose low bits the mapping lives in.
        assert!(!throttled(&throttle, "::1"));
    }

    #[tokio::test(start_paused = true)]
    async fn clones_share_their_counts() {
        let throttle = FailureThrottle::per_minute(2);
        let other = throttle.clone();
        fail(&throttle, "192.0.2.1", 1);
        fail(&other, "192.0.2.1", 1);
        assert!(throttled(&throttle, "192.0.2.1"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_still_counts_each_address_at_least_once() {
        // A tiny table and far more addresses than cells, each failing once: nobody
        // is let through early, and the table has not grown.
        let throttle = FailureThrottle::per_minute(1).cells_per_row(64);
        for i in 0..10_000u32 {
            let from = std::net::Ipv4Addr::from(0x0A00_0000 + i).to_string();
            let bucket = throttle.bucket(addr(&from));
            if throttle.check(bucket).is_ok() {
                throttle.record_failure(bucket);
            }
            assert!(throttled(&throttle, &from), "{from}");
        }
        assert_eq!(throttle.inner.addresses.cells.len(), ROWS * 64);
    }

    #[test]
    fn the_table_size_is_a_power_of_two_within_bounds() {
        let size = |cells| {
            FailureThrottle::per_minute(1)
                .cells_per_row(cells)
                .inner
                .addresses
                .cells
                .len()
        };
        assert_eq!(
            FailureThrottle::per_minute(1).inner.addresses.cells.len(),
            ROWS * 8192
        );
        assert_eq!(size(1000), ROWS * 1024);
        assert_eq!(size(1), ROWS * MIN_CELLS_PER_ROW);
        assert_eq!(size(usize::MAX), ROWS * MAX_CELLS_PER_ROW);
        let throttle = FailureThrottle::per_minute(7).cells_per_row(100);
        assert_eq!(
            format!("{throttle:?}"),
            "FailureThrottle { per_minute: 7, ipv6_48_per_minute: 112, cells_per_row: 128, .. }"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn h1_one_48_cannot_spread_its_failures_over_its_64s() {
        // Each /64 of one /48 fails once: the /48's allowance (16 × 2) runs out, and the
        // rest of the /48 is throttled, while its /64s each failed only once.
        let throttle = FailureThrottle::per_minute(2);
        let mut refused = 0;
        for net in 0..1_000u16 {
            let bucket = throttle.bucket(addr(&format!("2001:db8:7:{net:x}::1")));
            if throttle.check(bucket).is_ok() {
                throttle.record_failure(bucket);
            } else {
                refused += 1;
            }
        }
        assert_eq!(
            refused,
            1_000 - 32,
            "the /48 fails 32 times, then is refused"
        );
        // Another /48 is someone else.
        assert!(!throttled(&throttle, "2001:db8:8::1"));
        // A minute later the /48 may fail again.
        tokio::time::advance(PERIOD).await;
        assert!(!throttled(&throttle, "2001:db8:7:ffff::1"));
    }

    #[tokio::test(start_paused = true)]
    async fn h1_the_48_allowance_is_configurable_and_ipv4_has_none() {
        let throttle = FailureThrottle::per_minute(5).ipv6_48_per_minute(3);
        fail(&throttle, "2001:db8:9:1::1", 1);
        fail(&throttle, "2001:db8:9:2::1", 1);
        fail(&throttle, "2001:db8:9:3::1", 1);
        assert!(throttled(&throttle, "2001:db8:9:4::1"));
        // 300 IPv4 addresses of one /24, one failure each: no coarser count.
        let throttle = FailureThrottle::per_minute(1);
        for host in 0..=255u8 {
            fail(&throttle, &format!("198.51.100.{host}"), 1);
        }
        assert!(!throttled(&throttle, "198.51.101.1"));
    }

    #[tokio::test(start_paused = true)]
    async fn h1_conservative_counts_keep_a_flood_of_addresses_from_filling_every_cell() {
        // 2,048 addresses fail once each in a 1,024-cell row: plain count-min would
        // push most cells past a 1-per-minute allowance; conservative updates raise a
        // cell only as far as the least count of the address that failed, so few
        // addresses that never failed are refused.
        let throttle = FailureThrottle::per_minute(2).cells_per_row(1_024);
        for i in 0..2_048u32 {
            let bucket =
                throttle.bucket(addr(&std::net::Ipv4Addr::from(0x0A00_0000 + i).to_string()));
            if throttle.check(bucket).is_ok() {
                throttle.record_failure(bucket);
            }
        }
        let innocent = (0..1_000u32)
            .filter(|i| {
                throttled(
                    &throttle,
                    &std::net::Ipv4Addr::from(0xC000_0000 + i).to_string(),
                )
            })
            .count();
        assert!(
            innocent < 50,
            "{innocent} of 1,000 fresh addresses throttled"
        );
        assert!(throttle.saturation() < 0.5, "{}", throttle.saturation());
    }

    #[tokio::test(start_paused = true)]
    async fn h1_saturation_shows_how_full_the_table_is_and_falls_as_it_refills() {
        let throttle = FailureThrottle::per_minute(1).cells_per_row(64);
        assert_eq!(throttle.saturation(), 0.0);
        for i in 0..10_000u32 {
            let bucket =
                throttle.bucket(addr(&std::net::Ipv4Addr::from(0x0A00_0000 + i).to_string()));
            if throttle.check(bucket).is_ok() {
                throttle.record_failure(bucket);
            }
        }
        assert!(throttle.saturation() > 0.9, "{}", throttle.saturation());
        tokio::time::advance(PERIOD * 10_000).await;
        assert_eq!(throttle.saturation(), 0.0);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_failures_of_one_address_each_count() {
        let throttle = FailureThrottle::per_minute(40);
        let bucket = throttle.bucket(addr("192.0.2.77"));
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..10 {
                        throttle.record_failure(bucket);
                    }
                });
            }
        });
        assert!(
            throttle.check(bucket).is_err(),
            "40 failures fill a 40-per-minute allowance"
        );
    }

    #[test]
    #[should_panic(expected = "at least one failure per minute")]
    fn zero_failures_is_refused_at_configuration() {
        FailureThrottle::per_minute(0);
    }
}
