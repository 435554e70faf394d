//! `SystemTime` as whole units since the Unix epoch, and back: the one place these
//! conversions are written, so that every counter, ledger and store rounds alike.
//!
//! Times before 1970 read as 0 (no key, lease or count is older), and times past what a
//! `u64` holds saturate; [`checked_epoch_nanos`] is for the one caller that must not
//! clamp.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nanoseconds in a second.
pub(crate) const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Nanoseconds since the epoch; 0 before it, saturating after 2554.
#[inline]
pub(crate) fn epoch_nanos(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Nanoseconds since the epoch, or `None` before it or after 2554.
#[inline]
#[cfg(any(test, feature = "test-util"))]
pub(crate) fn checked_epoch_nanos(at: SystemTime) -> Option<u64> {
    u64::try_from(at.duration_since(UNIX_EPOCH).ok()?.as_nanos()).ok()
}

/// Milliseconds since the epoch; 0 before it, saturating.
#[inline]
pub(crate) fn epoch_millis(at: SystemTime) -> u64 {
    // Seconds and sub-second millis separately: `as_millis` would go through u128.
    at.duration_since(UNIX_EPOCH).map_or(0, |d| {
        d.as_secs()
            .saturating_mul(1000)
            .saturating_add(u64::from(d.subsec_millis()))
    })
}

/// Whole seconds since the epoch; 0 before it.
#[inline]
pub(crate) fn epoch_secs(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Whole microseconds since the epoch (negative before it, rounded towards the past),
/// saturating far outside any key's lifetime.
#[inline]
pub(crate) fn epoch_micros(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_micros()).unwrap_or(i64::MAX),
        Err(before) => {
            let before = before.duration();
            // Round towards the past, as truncating the positive side does.
            let whole = before.as_micros() + u128::from(before.subsec_nanos() % 1_000 != 0);
            i64::try_from(whole).map_or(i64::MIN, |m| -m)
        }
    }
}

/// `at` truncated to whole microseconds, as PostgreSQL keeps times, so that a time set
/// here reads back the same from every shipped store (before the epoch: unchanged).
#[inline]
pub(crate) fn whole_micros(at: SystemTime) -> SystemTime {
    match at.duration_since(UNIX_EPOCH) {
        Ok(since) => UNIX_EPOCH + Duration::new(since.as_secs(), since.subsec_micros() * 1_000),
        Err(_) => at,
    }
}

/// The time `nanos` nanoseconds after the epoch.
#[inline]
#[cfg(any(test, feature = "test-util"))]
pub(crate) fn from_epoch_nanos(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

/// The time `millis` milliseconds after the epoch.
#[inline]
pub(crate) fn from_epoch_millis(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis)
}

/// `nanos` in whole seconds, rounded up: a wait is never said shorter than it is.
#[inline]
pub(crate) fn ceil_secs(nanos: u64) -> u64 {
    nanos.div_ceil(NANOS_PER_SEC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_the_epoch_reads_as_zero_and_far_futures_saturate() {
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(epoch_nanos(before), 0);
        assert_eq!(epoch_millis(before), 0);
        assert_eq!(epoch_secs(before), 0);
        assert_eq!(checked_epoch_nanos(before), None);
        let at = UNIX_EPOCH + Duration::new(1_800_000_000, 123_456_789);
        assert_eq!(epoch_nanos(at), 1_800_000_000_123_456_789);
        assert_eq!(epoch_millis(at), 1_800_000_000_123);
        assert_eq!(epoch_secs(at), 1_800_000_000);
        assert_eq!(from_epoch_nanos(epoch_nanos(at)), at);
        assert_eq!(
            whole_micros(at),
            UNIX_EPOCH + Duration::new(1_800_000_000, 123_456_000)
        );
        let far = UNIX_EPOCH + Duration::from_secs(u64::MAX / 2);
        assert_eq!(epoch_nanos(far), u64::MAX);
        assert_eq!(checked_epoch_nanos(far), None);
        assert_eq!(ceil_secs(1), 1);
        assert_eq!(ceil_secs(NANOS_PER_SEC), 1);
        assert_eq!(ceil_secs(0), 0);
    }
}
