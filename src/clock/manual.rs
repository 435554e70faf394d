//! [`ManualClock`]: time that moves only when a test says so (feature `test-util`).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use super::Clock;

/// A clock that moves only when told to; clones share one time (feature `test-util`).
#[derive(Clone)]
pub struct ManualClock {
    /// Nanoseconds since the Unix epoch; an atomic so that reads on the request path
    /// never take a lock.
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    ///
    /// # Panics
    ///
    /// If `start` is before 1970 or after 2554, which a `u64` of nanoseconds cannot hold.
    pub fn new(start: SystemTime) -> Self {
        Self {
            nanos: Arc::new(AtomicU64::new(to_nanos(start))),
        }
    }

    /// A clock stopped at the current system time.
    pub fn starting_now() -> Self {
        Self::new(SystemTime::now())
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(by, Ordering::Relaxed);
    }

    /// Sets the clock to `to`, forwards or backwards.
    pub fn set(&self, to: SystemTime) {
        self.nanos.store(to_nanos(to), Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        crate::time::from_epoch_nanos(self.nanos.load(Ordering::Relaxed))
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock").field(&self.now()).finish()
    }
}

fn to_nanos(time: SystemTime) -> u64 {
    crate::time::checked_epoch_nanos(time).expect("ManualClock holds times from 1970 to 2554")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_it() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let clock = ManualClock::new(start);
        let other = clock.clone();
        assert_eq!(clock.now(), start);
        other.advance(Duration::from_millis(1500));
        assert_eq!(clock.now(), start + Duration::from_millis(1500));
        clock.set(start);
        assert_eq!(other.now(), start);
    }
}
