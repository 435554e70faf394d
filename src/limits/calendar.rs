//! The UTC calendar of quotas: which day or month a time falls in, when it ends, and
//! how long it is, worked out from epoch nanoseconds without a date library.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::record::QuotaPeriod;
use crate::time::{NANOS_PER_SEC, ceil_secs};

/// Seconds in a UTC day.
pub(crate) const DAY_SECS: u64 = 86_400;

/// The month last worked out: its first day (20 bits), the day after its last (20 bits)
/// and its number (24 bits), packed so that one load reads them together; 0 for none.
static MONTH: AtomicU64 = AtomicU64::new(0);

/// A UTC day or month: its number and its bounds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Period {
    pub(crate) index: u32,
    /// The end, in seconds since the epoch.
    end_secs: u64,
    /// Its length in seconds, for `RateLimit-Policy`.
    pub(crate) len_secs: u64,
}

impl Period {
    /// The period of kind `per` that holds `now` (nanoseconds since the epoch).
    #[inline]
    pub(crate) fn of(per: QuotaPeriod, now: u64) -> Self {
        let day = now / NANOS_PER_SEC / DAY_SECS;
        match per {
            QuotaPeriod::Month => {
                // The current month, cached: working it out from the day costs more
                // than the rest of the quota's check.
                let cached = MONTH.load(Ordering::Relaxed);
                let (start, end, index) =
                    (cached >> 44, (cached >> 24) & 0xF_FFFF, cached & 0xFF_FFFF);
                if cached != 0 && (start..end).contains(&day) {
                    return Self {
                        index: index as u32,
                        end_secs: end * DAY_SECS,
                        len_secs: (end - start) * DAY_SECS,
                    };
                }
                let (year, month) = year_month(day);
                let start = days_from_civil(year, month);
                let (next_year, next_month) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                let end = days_from_civil(next_year, next_month);
                let index = month_index(day);
                if end < 1 << 20 && index < 1 << 24 {
                    MONTH.store((start << 44) | (end << 24) | index, Ordering::Relaxed);
                }
                Self {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    end_secs: end * DAY_SECS,
                    len_secs: (end - start) * DAY_SECS,
                }
            }
            // A day, and any period added later, until it is taught its own bounds.
            _ => Self {
                index: u32::try_from(day).unwrap_or(u32::MAX),
                end_secs: (day + 1) * DAY_SECS,
                len_secs: DAY_SECS,
            },
        }
    }

    /// Seconds until the period ends, rounded up.
    #[inline]
    pub(crate) fn secs_left(&self, now: u64) -> u64 {
        ceil_secs((self.end_secs * NANOS_PER_SEC).saturating_sub(now))
    }
}

/// `year * 12 + month - 1` of the UTC day `day` (days since 1970-01-01).
fn month_index(day: u64) -> u64 {
    let (year, month) = year_month(day);
    year * 12 + month - 1
}

/// The civil year and month (1–12) of day `day` since 1970-01-01 (H. Hinnant's
/// `civil_from_days`, for days after the epoch).
fn year_month(day: u64) -> (u64, u64) {
    let z = day + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month)
}

/// Days from 1970-01-01 to the first of `month` in `year` (Hinnant's `days_from_civil`).
pub(crate) fn days_from_civil(year: u64, month: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let yoe = year - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}
