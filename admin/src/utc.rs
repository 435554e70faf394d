//! `SystemTime` ⇄ `time::OffsetDateTime`, for RFC 3339 in JSON.

use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

/// `at` as a UTC date-time, or `None` if `time` cannot hold it (beyond ±9999 years).
/// Never panics, unlike `OffsetDateTime::from(SystemTime)` on such times.
pub(crate) fn from_system_time(at: SystemTime) -> Option<OffsetDateTime> {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => time::Duration::try_from(after)
            .ok()
            .and_then(|d| OffsetDateTime::UNIX_EPOCH.checked_add(d)),
        Err(before) => time::Duration::try_from(before.duration())
            .ok()
            .and_then(|d| OffsetDateTime::UNIX_EPOCH.checked_sub(d)),
    }
}
