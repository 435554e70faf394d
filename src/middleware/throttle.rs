//! [`FailureThrottle`]: a client address whose keys keep failing is refused before the
//! lookup, so that guessing keys costs the guesser time and the store nothing.

use std::fmt;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

use crate::client_addr::ClientAddr;

/// The period the allowance is counted over.
const PERIOD: Duration = Duration::from_secs(60);
/// Rows of the sketch: an address is throttled only when all of its cells say so.
const ROWS: usize = 4;
/// Cells per row unless configured: 4 × 8192 × 8 bytes = 256 KiB.
const DEFAULT_CELLS_PER_ROW: usize = 8192;
/// Each row's index takes 16 bits of one 64-bit hash.
const MAX_CELLS_PER_ROW: usize = 1 << 16;
const MIN_CELLS_PER_ROW: usize = 64;

/// Refuses, with 429 and `Retry-After`, requests from a client address that has sent
/// too many wrong keys, before their key is looked up.
///
/// Set it with [`ApiKeyV2Layer::throttle_failures`](crate::ApiKeyV2Layer::throttle_failures);
/// it is off by default.
///
/// ```
/// use tower_apikey::{ApiKeyV2Layer, FailureThrottle, InMemoryKeyStore};
///
/// let layer = ApiKeyV2Layer::new(InMemoryKeyStore::new())
///     .throttle_failures(FailureThrottle::per_minute(10));
/// ```
///
/// # What counts
///
/// A *failure* is a well-formed key that does not prove itself: an unknown id or a
/// wrong secret, the only mistakes that cost a lookup and the only guesses that could
/// ever succeed. A missing header, a malformed key or a bad checksum is refused without
/// a lookup and is not counted (a broken client is not a guesser, and such requests
/// cost the store nothing). An expired or revoked key proved its secret and is not
/// counted either, nor is a store outage. A success does not forgive earlier failures.
///
/// With `per_minute(n)`, an address may fail `n` times in a row; after that each of
/// its requests that carries a well-formed key is refused with 429 (outcome
/// `throttled`, [`RejectionKind::Throttled`](crate::RejectionKind::Throttled)), without
/// a lookup, until the allowance refills at one failure per `60 / n` seconds. Over any
/// `t` seconds an address gets at most `n + n·t/60` failures looked up (a generic cell
/// rate algorithm), plus however many of its requests were already past the check when
/// the last allowed failure landed. Throttled requests do not count: a client that
/// stops guessing is let back in, and one that keeps going stays refused.
///
/// IPv6 addresses are counted per /64 network (anyone who has one address of a /64
/// usually has all of them); IPv4 addresses one by one. The address is the connection's
/// peer or what trusted proxies forwarded: see [`client_addr`](crate::client_addr).
/// Requests that carry no address (the server inserted none) are not throttled, and
/// the first of them logs a warning that says how to fix it.
///
/// # Memory and collisions
///
/// The counts live in a fixed table (a count-min sketch of 4 rows, 256 KiB by default,
/// see [`cells_per_row`](Self::cells_per_row)) allocated once: memory does not grow with
/// the number of addresses, whatever an attacker sends. Each address maps to one cell
/// per row, by a hash keyed with a random seed per process, and its count is the least
/// of its cells. Two addresses that share a cell can therefore only make each other
/// look *worse*: a collision may throttle an innocent address early, never let a
/// guesser through. That takes all four of its cells being full, which stays unlikely
/// while the addresses failing `n` times a minute are well below the row's cell count;
/// a flood of guessers from far more addresses than that is a distributed attack, for
/// the network edge to absorb.
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
    sketch: Arc<Sketch>,
}

/// The shared state: one theoretical arrival time (GCRA) per cell.
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
    hasher: foldhash::quality::RandomState,
    origin: Instant,
    /// Whether the "no client address" warning was logged.
    warned_unaddressed: AtomicBool,
}

/// An address group's hash, computed once per request and used for the check and, on
/// failure, the count.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bucket(u64);

impl FailureThrottle {
    /// At most `failures` failed keys in a row from one address, and `failures` per
    /// minute after that.
    ///
    /// # Panics
    ///
    /// If `failures` is 0: a throttle that allows no failure would refuse every key.
    pub fn per_minute(failures: u32) -> Self {
        Self::build(failures, DEFAULT_CELLS_PER_ROW)
    }

    /// The size of the table: `cells` per row (rounded up to a power of two, from 64 to
    /// 65,536; default 8,192), 4 rows of 8-byte cells, so 256 KiB by default and 2 MiB at
    /// most. More cells keep more failing addresses apart; with `k` addresses failing
    /// at the limit, an innocent address is throttled with a probability of about
    /// `(k / cells)^4`.
    pub fn cells_per_row(self, cells: usize) -> Self {
        Self::build(self.sketch.failures, cells)
    }

    fn build(failures: u32, cells_per_row: usize) -> Self {
        assert!(
            failures > 0,
            "FailureThrottle::per_minute needs at least one failure per minute"
        );
        let width = cells_per_row
            .clamp(MIN_CELLS_PER_ROW, MAX_CELLS_PER_ROW)
            .next_power_of_two();
        let period = u64::try_from(PERIOD.as_nanos()).expect("a minute fits in u64 nanoseconds");
        let interval = period / u64::from(failures);
        Self {
            sketch: Arc::new(Sketch {
                cells: (0..ROWS * width).map(|_| AtomicU64::new(0)).collect(),
                mask: width as u64 - 1,
                failures,
                interval,
                tolerance: period - interval,
                hasher: foldhash::quality::RandomState::default(),
                origin: Instant::now(),
                warned_unaddressed: AtomicBool::new(false),
            }),
        }
    }

    /// The bucket of `addr`: the address itself for IPv4, its /64 for IPv6.
    pub(crate) fn bucket(&self, addr: ClientAddr) -> Bucket {
        // IPv4 as IPv4-mapped IPv6, whose low 64 bits are never 0, so that no IPv4
        // address shares a key with an IPv6 /64 (whose low 64 bits are cleared).
        let key = match addr.ip() {
            IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
            IpAddr::V6(v6) => u128::from(v6) & !u128::from(u64::MAX),
        };
        Bucket(self.sketch.hasher.hash_one(key))
    }

    /// `Ok` if `bucket` may try a key; otherwise how long until it may, in whole
    /// seconds (at least one).
    pub(crate) fn check(&self, bucket: Bucket) -> Result<(), Duration> {
        let sketch = &*self.sketch;
        let tat = sketch.cells_of(bucket).map(|c| c.load(Relaxed)).min();
        let tat = tat.unwrap_or(0);
        // A cell this low cannot be ahead of any time by more than the tolerance: the
        // common case, decided without reading the clock.
        if tat <= sketch.tolerance {
            return Ok(());
        }
        let ahead = tat.saturating_sub(sketch.now());
        if ahead <= sketch.tolerance {
            return Ok(());
        }
        let wait = ahead - sketch.tolerance;
        Err(Duration::from_secs(wait.div_ceil(1_000_000_000).max(1)))
    }

    /// Counts a failed key from `bucket`.
    pub(crate) fn record_failure(&self, bucket: Bucket) {
        let sketch = &*self.sketch;
        let now = sketch.now();
        for cell in sketch.cells_of(bucket) {
            // GCRA: a failure is paid for `interval` after the later of now and the
            // cell's last payment. Others sharing the cell only push it later.
            let _ = cell.fetch_update(Relaxed, Relaxed, |tat| {
                Some(tat.max(now).saturating_add(sketch.interval))
            });
        }
    }

    /// Logs, once per throttle, that requests arrive without a client address.
    pub(crate) fn warn_unaddressed(&self) {
        if !self.sketch.warned_unaddressed.swap(true, Relaxed) {
            tracing::warn!(
                "FailureThrottle is on, but a request carries no client address, so it is not \
                 throttled: serve axum with `into_make_service_with_connect_info::<SocketAddr>()`, \
                 or insert the connection's `SocketAddr` into each request's extensions \
                 (see tower_apikey::client_addr)"
            );
        }
    }
}

impl Sketch {
    fn cells_of(&self, bucket: Bucket) -> impl Iterator<Item = &AtomicU64> {
        let width = self.mask as usize + 1;
        (0..ROWS).map(move |row| {
            let column = ((bucket.0 >> (16 * row)) & self.mask) as usize;
            &self.cells[row * width + column]
        })
    }

    /// Nanoseconds since `origin`.
    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl fmt::Debug for FailureThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailureThrottle")
            .field("per_minute", &self.sketch.failures)
            .field("cells_per_row", &(self.sketch.mask + 1))
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
        assert_eq!(throttle.sketch.cells.len(), ROWS * 64);
    }

    #[test]
    fn the_table_size_is_a_power_of_two_within_bounds() {
        let size = |cells| {
            FailureThrottle::per_minute(1)
                .cells_per_row(cells)
                .sketch
                .cells
                .len()
        };
        assert_eq!(
            FailureThrottle::per_minute(1).sketch.cells.len(),
            ROWS * 8192
        );
        assert_eq!(size(1000), ROWS * 1024);
        assert_eq!(size(1), ROWS * MIN_CELLS_PER_ROW);
        assert_eq!(size(usize::MAX), ROWS * MAX_CELLS_PER_ROW);
        let throttle = FailureThrottle::per_minute(7).cells_per_row(100);
        assert_eq!(
            format!("{throttle:?}"),
            "FailureThrottle { per_minute: 7, cells_per_row: 128, .. }"
        );
    }

    #[test]
    #[should_panic(expected = "at least one failure per minute")]
    fn zero_failures_is_refused_at_configuration() {
        FailureThrottle::per_minute(0);
    }
}
