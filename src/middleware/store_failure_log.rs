//! Store failures in the logs: at most one line per second for each kind of failure.
//!
//! While a store is down, every request that needs it fails the same way. Logging each
//! at ERROR would let anyone, with or without a key, write to the logs as fast as they
//! can send requests. So each kind of [`StoreError`] (unavailable, timeout, corrupt
//! record, duplicate) writes at most one line per [`LOG_INTERVAL`], and that line's
//! `suppressed` field counts the lines of its kind left out since the previous one:
//!
//! ```text
//! ERROR key store unavailable; refusing the request with 503 key_id=… error=… suppressed=0
//! ERROR key store unavailable; refusing the request with 503 key_id=… error=… suppressed=4181
//! ```
//!
//! Every refused request still gets its 503; only the log lines are thinned. The count
//! left out after the last line of an outage shows in the first line of the next one.
//!
//! Deciding costs two atomic operations and no lock or allocation, so a flood of
//! failing requests never queues behind the log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::StoreError;

/// The shortest time between two lines about the same kind of store failure.
pub(crate) const LOG_INTERVAL: Duration = Duration::from_secs(1);

/// One [`Throttle`] per kind of [`StoreError`], in [`kind_index`] order.
const KINDS: usize = 6;

/// Which store failures were logged when, for one layer and all its services.
#[derive(Debug)]
pub(crate) struct StoreFailureLog {
    /// Times are nanoseconds since this instant, on the monotonic clock: a wall-clock
    /// step can neither silence the log nor flood it.
    origin: Instant,
    kinds: [Throttle; KINDS],
}

#[derive(Debug, Default)]
struct Throttle {
    /// When the last line was written, plus one (so that 0 means "never").
    logged_at: AtomicU64,
    /// Lines left out since then.
    suppressed: AtomicU64,
}

impl StoreFailureLog {
    pub(crate) fn new() -> Self {
        Self {
            origin: Instant::now(),
            kinds: Default::default(),
        }
    }

    /// Whether to log `error` now: `Some(n)` with the number of lines of its kind left
    /// out since the last one, or `None` to leave this one out (it is counted).
    pub(crate) fn admit(&self, error: &StoreError) -> Option<u64> {
        let since_origin = Instant::now().saturating_duration_since(self.origin);
        let now = u64::try_from(since_origin.as_nanos())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        self.kinds[kind_index(error)].admit(now)
    }
}

impl Throttle {
    fn admit(&self, now: u64) -> Option<u64> {
        let last = self.logged_at.load(Ordering::Acquire);
        let interval = u64::try_from(LOG_INTERVAL.as_nanos()).unwrap_or(u64::MAX);
        // A `now` read just before another thread logged may be a little older than
        // `last`: that is not due either.
        let due = last == 0 || now.saturating_sub(last) >= interval;
        // Of the requests that find the line due, the one that moves `logged_at` logs.
        if due
            && self
                .logged_at
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::AcqRel));
        }
        self.suppressed.fetch_add(1, Ordering::AcqRel);
        None
    }
}

/// The kind of a store failure, as an index into [`StoreFailureLog::kinds`].
fn kind_index(error: &StoreError) -> usize {
    match error {
        StoreError::Unavailable(_) => 0,
        StoreError::Timeout(_) => 1,
        StoreError::Corrupt(_) => 2,
        StoreError::Duplicate(_) => 3,
        // Shed lookups are logged at DEBUG by the caller; counted apart all the same.
        StoreError::Overloaded | StoreError::RuledOut => 4,
        StoreError::Unsupported(_) => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn a_throttle_admits_one_line_per_interval_and_counts_the_rest() {
        let throttle = Throttle::default();
        assert_eq!(throttle.admit(1), Some(0));
        for n in 1..=5 {
            assert_eq!(throttle.admit(n * 1000), None);
        }
        assert_eq!(throttle.admit(SECOND), None, "one nanosecond early");
        assert_eq!(throttle.admit(SECOND + 1), Some(6));
        assert_eq!(throttle.admit(SECOND + 2), None);
        assert_eq!(throttle.admit(10 * SECOND), Some(1));
        // A time read before another thread logged is not due.
        assert_eq!(throttle.admit(10 * SECOND - 5), None);
    }

    #[test]
    fn every_kind_of_store_error_has_its_own_throttle() {
        let kinds = [
            StoreError::unavailable("down"),
            StoreError::Timeout(Duration::from_secs(3)),
            StoreError::Corrupt(String::new()),
            StoreError::Duplicate(crate::KeyId::new("0000000000000000").unwrap()),
            StoreError::Overloaded,
            StoreError::Unsupported("KeyStore::lookup"),
        ];
        let mut seen: Vec<usize> = kinds.iter().map(kind_index).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, (0..KINDS).collect::<Vec<_>>());
    }
}
