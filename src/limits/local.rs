//! One instance's state of per-key rate limits and quotas (DESIGN §12): the map of
//! limited keys, and each key's GCRA and quota count, checked and committed with
//! atomics.
//!
//! # The state
//!
//! One entry per limited key that was proven recently, in a lock-free map keyed by key
//! id, holding two atomics:
//!
//! - the rate limit's GCRA *theoretical arrival time* (TAT, nanoseconds since the Unix
//!   epoch): a request at `now` is admitted when `max(TAT, now) + T - now <= N·T`
//!   (emission interval `T = per_secs / requests`, burst `N = requests`), and then
//!   moves the TAT to `max(TAT, now) + T`;
//! - the quota's counter, packed with the UTC period it counts (day or month number),
//!   so that a new period starts from zero without a reset task.
//!
//! Both change with compare-and-swap loops; nothing is locked and, once a key's entry
//! exists, nothing is allocated. The decision is made synchronously in the verdict, so
//! a request cancelled while waiting for the store leaves nothing behind.
//!
//! # Check, then commit
//!
//! The policies only *read* the state (address, then rate, then quota: a request refused
//! for any of them consumes nothing). Once they pass (or only the scope check refused),
//! [`Entry::commit`] takes one quota unit, then moves the TAT; if a concurrent request
//! took the last rate slot in between, the quota unit is given back and the request is
//! refused as rate limited. So a request consumes both or neither.
//!
//! # Bounds
//!
//! The map holds only keys that were proven and active. When it doubles in size since
//! the last sweep, the inserting request sweeps it: entries of keys past their end, and
//! entries equal to a fresh one (TAT in the past, quota counting an earlier period),
//! are dropped, which changes no decision. So it is bounded by the limited keys used in
//! the current quota period (or rate window), which are live keys.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use crate::key::KeyId;
use crate::limits::backend::Exhausted;
use crate::limits::calendar::Period;
use crate::limits::headers::{Counted, Policies, PolicyCell, Seen};
use crate::limits::lease_slot::LeaseSlot;
use crate::record::{Quota, QuotaPeriod, RateLimit};
use crate::time::{NANOS_PER_SEC, ceil_secs, epoch_nanos, epoch_secs};

/// The map is not swept below this size: sweeping a small map would cost more than it
/// frees.
const MIN_SWEEP: usize = 1024;

type Hasher = foldhash::fast::RandomState;

/// The limits' state of one layer (or of every layer given one
/// [`SharedLimits`](crate::limits::SharedLimits)), shared by all its clones.
pub(crate) struct LocalLimits {
    entries: papaya::HashMap<KeyId, Arc<Entry>, Hasher>,
    /// The `RateLimit-Policy` values in use.
    policies: Policies,
    /// The size at which the next insertion sweeps.
    sweep_at: AtomicUsize,
}

/// One request to charge to a key's limits: the key, its entry, the limits that decide
/// on this instance now (its own, or its local share of shared limits), its own limits
/// (what a lease asks the backend for), and the request's time.
pub(crate) struct Charge<'a> {
    pub(crate) id: &'a KeyId,
    pub(crate) entry: &'a Arc<Entry>,
    pub(crate) local: (Option<RateLimit>, Option<Quota>),
    pub(crate) own: (Option<RateLimit>, Option<Quota>),
    pub(crate) now: SystemTime,
}

/// One key's state.
pub(crate) struct Entry {
    /// GCRA's theoretical arrival time, in nanoseconds since the Unix epoch.
    tat: AtomicU64,
    /// `period << 32 | count`: the quota's count in the period it counts.
    quota: AtomicU64,
    /// When the key stops working (seconds since the epoch): after that the entry can go.
    stops_at: u64,
    /// This key's `RateLimit-Policy` value (see [`PolicyCell`]).
    policy: PolicyCell,
    /// The leased tokens, when the limits are shared.
    pub(crate) lease: LeaseSlot,
}

impl LocalLimits {
    pub(crate) fn new() -> Self {
        Self {
            entries: papaya::HashMap::builder().hasher(Hasher::default()).build(),
            policies: Policies::new(),
            sweep_at: AtomicUsize::new(MIN_SWEEP),
        }
    }

    /// The entry of key `id`, made if it has none (the one allocation, per key).
    pub(crate) fn entry(&self, id: &KeyId, stops_at: SystemTime, now: SystemTime) -> Arc<Entry> {
        let entries = self.entries.pin();
        if let Some(entry) = entries.get(id) {
            return Arc::clone(entry);
        }
        if entries.len() >= self.sweep_at.load(Ordering::Relaxed) {
            let now = epoch_nanos(now);
            // An entry a request in flight still holds stays: removing it would let that
            // request commit into a copy no later request sees.
            entries.retain(|_, entry| !entry.is_stale(now) || Arc::strong_count(entry) > 1);
            self.policies.clear();
            self.sweep_at
                .store((entries.len() * 2).max(MIN_SWEEP), Ordering::Relaxed);
        }
        let stops_at = epoch_secs(stops_at);
        Arc::clone(entries.get_or_insert_with(*id, || {
            Arc::new(Entry {
                tat: AtomicU64::new(0),
                quota: AtomicU64::new(0),
                stops_at,
                policy: PolicyCell::new(),
                lease: LeaseSlot::default(),
            })
        }))
    }

    /// `counted` with its `RateLimit-Policy` value, from the cache.
    #[inline]
    pub(crate) fn seen(&self, entry: &Entry, counted: Counted) -> Seen {
        self.policies.seen(&entry.policy, counted)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

impl Entry {
    /// Whether the entry says nothing a fresh one would not: the key has ended, or its
    /// rate is fully recovered and it counts nothing in the current period.
    ///
    /// "Counting" is read from the period the count is packed with, not from the
    /// limits the key had when the entry was made: a quota added or changed since (by
    /// a PATCH) counts in this same entry, and must not be forgotten at a sweep. A
    /// count of the current day or the current month is live; day and month numbers
    /// cannot be told apart, so a count of a past day whose number is the current
    /// month's is kept too, which only keeps an entry a little longer.
    fn is_stale(&self, now: u64) -> bool {
        let ended = self.stops_at <= now / NANOS_PER_SEC;
        let rested = self.tat.load(Ordering::Relaxed) <= now;
        let (period, count) = unpack(self.quota.load(Ordering::Relaxed));
        let counting = count > 0
            && [QuotaPeriod::Day, QuotaPeriod::Month]
                .into_iter()
                .any(|per| period == Period::of(per, now).index);
        // Leased tokens and owed requests must reach the ledger first.
        (ended || (rested && !counting)) && self.lease.is_settled()
    }

    /// The rate check, reading only: `Err` with the wait if the request would be over
    /// the limit.
    pub(crate) fn check_rate(&self, limit: RateLimit, now: SystemTime) -> Result<(), Exhausted> {
        let now = epoch_nanos(now);
        let (_, wait) = gcra(self.tat.load(Ordering::Acquire), limit, now);
        match wait {
            0 => Ok(()),
            wait => Err(Exhausted::Rate {
                retry_after: Duration::from_secs(ceil_secs(wait)),
            }),
        }
    }

    /// The quota check, reading only: `Err` until the period ends if it is used up.
    pub(crate) fn check_quota(&self, quota: Quota, now: SystemTime) -> Result<(), Exhausted> {
        let now = epoch_nanos(now);
        let period = Period::of(quota.per(), now);
        if self.count(period) < quota.requests() {
            Ok(())
        } else {
            Err(Exhausted::Quota {
                retry_after: Duration::from_secs(period.secs_left(now)),
            })
        }
    }

    fn count(&self, period: Period) -> u32 {
        let (counted, count) = unpack(self.quota.load(Ordering::Acquire));
        if counted == period.index { count } else { 0 }
    }

    /// Consumes one request of each limit, or neither (see the module docs); the state
    /// after, for the headers.
    #[inline]
    pub(crate) fn commit(
        &self,
        rate: Option<RateLimit>,
        quota: Option<Quota>,
        now: SystemTime,
    ) -> Result<Counted, (Exhausted, Counted)> {
        let now = epoch_nanos(now);
        let period = quota.map(|q| Period::of(q.per(), now));
        // The quota first: a unit can be given back exactly if the rate then refuses.
        let mut left = None;
        if let (Some(quota), Some(period)) = (quota, period) {
            match self.take_unit(quota, period) {
                Ok(count) => left = Some(quota.requests().saturating_sub(count)),
                Err(()) => {
                    let seen = Counted {
                        rate: rate
                            .map(|limit| rate_seen(self.tat.load(Ordering::Acquire), limit, now)),
                        quota: Some(quota_seen(quota, period, 0, now)),
                    };
                    let retry_after = Duration::from_secs(period.secs_left(now));
                    return Err((Exhausted::Quota { retry_after }, seen));
                }
            }
        }
        let quota_after =
            quota.and_then(|q| Some(quota_seen(q, period?, left.unwrap_or_default(), now)));
        let Some(limit) = rate else {
            return Ok(Counted {
                rate: None,
                quota: quota_after,
            });
        };
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let (next, wait) = gcra(tat, limit, now);
            if wait > 0 {
                if let Some(period) = period {
                    self.give_back(period);
                }
                let seen = Counted {
                    rate: Some(rate_seen(tat, limit, now)),
                    quota: quota.and_then(|q| {
                        Some(quota_seen(
                            q,
                            period?,
                            q.requests().saturating_sub(self.count(period?)),
                            now,
                        ))
                    }),
                };
                let retry_after = Duration::from_secs(ceil_secs(wait));
                return Err((Exhausted::Rate { retry_after }, seen));
            }
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    return Ok(Counted {
                        rate: Some(rate_seen(next, limit, now)),
                        quota: quota_after,
                    });
                }
                Err(current) => tat = current,
            }
        }
    }

    /// The state as it is, for the headers of a refusal that consumed nothing.
    pub(crate) fn peek(
        &self,
        rate: Option<RateLimit>,
        quota: Option<Quota>,
        now: SystemTime,
    ) -> Counted {
        let now = epoch_nanos(now);
        Counted {
            rate: rate.map(|limit| rate_seen(self.tat.load(Ordering::Acquire), limit, now)),
            quota: quota.map(|quota| {
                let period = Period::of(quota.per(), now);
                let left = quota.requests().saturating_sub(self.count(period));
                quota_seen(quota, period, left, now)
            }),
        }
    }

    /// Takes one unit of `quota` in `period`: the count after, or `Err` if none is left.
    fn take_unit(&self, quota: Quota, period: Period) -> Result<u32, ()> {
        let mut current = self.quota.load(Ordering::Acquire);
        loop {
            let (counted, count) = unpack(current);
            let count = if counted == period.index { count } else { 0 };
            if count >= quota.requests() {
                return Err(());
            }
            let next = pack(period.index, count + 1);
            match self.quota.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(count + 1),
                Err(seen) => current = seen,
            }
        }
    }

    /// Gives back a unit taken in `period` (none if the period has moved on since).
    fn give_back(&self, period: Period) {
        let _ = self
            .quota
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                let (counted, count) = unpack(current);
                (counted == period.index && count > 0).then(|| pack(counted, count - 1))
            });
    }
}

/// GCRA at `now` from `tat`: the TAT after admitting one request, and 0; or the wait
/// (nanoseconds) until it would be admitted.
fn gcra(tat: u64, limit: RateLimit, now: u64) -> (u64, u64) {
    let interval = limit.interval_nanos();
    let window = interval.saturating_mul(u64::from(limit.requests()));
    let next = tat.max(now).saturating_add(interval);
    let ahead = next - now;
    if ahead <= window {
        (next, 0)
    } else {
        (tat, ahead - window)
    }
}

/// The rate item of the headers with the TAT at `tat`: `(limit, r, t)`.
fn rate_seen(tat: u64, limit: RateLimit, now: u64) -> (RateLimit, u32, u64) {
    let interval = limit.interval_nanos();
    let n = u64::from(limit.requests());
    let window = interval.saturating_mul(n);
    let ahead = tat.saturating_sub(now);
    if ahead == 0 {
        return (limit, limit.requests(), 0);
    }
    // `r` more requests fit now; one more fits once `ahead` has shrunk enough.
    let r = (window.saturating_sub(ahead) / interval).min(n);
    let t = (ahead + (r + 1) * interval).saturating_sub(window);
    (limit, u32::try_from(r).unwrap_or(u32::MAX), ceil_secs(t))
}

fn quota_seen(quota: Quota, period: Period, left: u32, now: u64) -> (Quota, u64, u32, u64) {
    (quota, period.len_secs, left, period.secs_left(now))
}

fn pack(period: u32, count: u32) -> u64 {
    (u64::from(period) << 32) | u64::from(count)
}

fn unpack(packed: u64) -> (u32, u32) {
    ((packed >> 32) as u32, packed as u32)
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use http::HeaderMap;
    use proptest::prelude::*;

    use super::*;
    use crate::limits::calendar::{DAY_SECS, days_from_civil};

    fn at(secs: u64, nanos: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(nanos)
    }

    fn entry() -> Entry {
        Entry {
            tat: AtomicU64::new(0),
            quota: AtomicU64::new(0),
            stops_at: u64::MAX,
            policy: PolicyCell::new(),
            lease: LeaseSlot::default(),
        }
    }

    /// Checks, then commits, as the verdict does: whether the request was admitted.
    fn admit(entry: &Entry, rate: RateLimit, now: SystemTime) -> bool {
        entry.check_rate(rate, now).is_ok() && entry.commit(Some(rate), None, now).is_ok()
    }

    #[test]
    fn gcra_admits_exactly_its_burst_then_one_request_per_emission_interval() {
        // 5 per 10 s: a burst of 5, then one every 2 s.
        let rate = RateLimit::new(5, 10).unwrap();
        let e = entry();
        let start = 1_800_000_000;
        for _ in 0..5 {
            assert!(admit(&e, rate, at(start, 0)));
        }
        assert!(!admit(&e, rate, at(start, 0)));
        for step in 1..=20u64 {
            let due = at(start + 2 * step, 0);
            assert!(
                !admit(&e, rate, due - Duration::from_nanos(1)),
                "early at step {step}"
            );
            assert!(admit(&e, rate, due), "on time at step {step}");
            assert!(!admit(&e, rate, due), "twice at step {step}");
        }
    }

    #[test]
    fn a_refusal_names_the_wait_rounded_up_and_consumes_nothing() {
        let rate = RateLimit::new(1, 3).unwrap();
        let e = entry();
        assert!(admit(&e, rate, at(100, 0)));
        let tat = e.tat.load(Ordering::Relaxed);
        assert_eq!(
            e.check_rate(rate, at(100, 500_000_000)),
            Err(Exhausted::Rate {
                retry_after: Duration::from_secs(3)
            })
        );
        assert_eq!(
            e.check_rate(rate, at(102, 1)),
            Err(Exhausted::Rate {
                retry_after: Duration::from_secs(1)
            })
        );
        assert!(e.commit(Some(rate), None, at(102, 1)).is_err());
        assert_eq!(e.tat.load(Ordering::Relaxed), tat);
    }

    #[test]
    fn the_rate_item_says_what_is_left_and_when_one_more_comes() {
        let rate = RateLimit::new(3, 6).unwrap(); // one every 2 s
        let e = entry();
        let seen = e.commit(Some(rate), None, at(50, 0)).unwrap();
        assert_eq!(seen.rate, Some((rate, 2, 2)));
        e.commit(Some(rate), None, at(50, 0)).unwrap();
        let seen = e.commit(Some(rate), None, at(50, 0)).unwrap();
        assert_eq!(seen.rate, Some((rate, 0, 2)));
        let (kind, seen) = e.commit(Some(rate), None, at(51, 0)).unwrap_err();
        assert_eq!(
            kind,
            Exhausted::Rate {
                retry_after: Duration::from_secs(1)
            }
        );
        assert_eq!(seen.rate, Some((rate, 0, 1)));
    }

    #[test]
    fn the_quota_resets_at_the_utc_day_boundary() {
        let quota = Quota::new(2, QuotaPeriod::Day).unwrap();
        let e = entry();
        // 2027-03-21 23:59:59 UTC.
        let day_end = 1_805_673_600 - 1;
        for _ in 0..2 {
            e.commit(None, Some(quota), at(day_end, 0)).unwrap();
        }
        assert_eq!(
            e.check_quota(quota, at(day_end, 999_999_999)),
            Err(Exhausted::Quota {
                retry_after: Duration::from_secs(1)
            })
        );
        let (kind, seen) = e.commit(None, Some(quota), at(day_end, 0)).unwrap_err();
        assert_eq!(
            kind,
            Exhausted::Quota {
                retry_after: Duration::from_secs(1)
            }
        );
        assert_eq!(seen.quota, Some((quota, 86_400, 0, 1)));
        let seen = e.commit(None, Some(quota), at(day_end + 1, 0)).unwrap();
        assert_eq!(seen.quota, Some((quota, 86_400, 1, 86_400)));
    }

    /// Seconds since the epoch of `year-month-01T00:00:00Z`.
    fn month_start(year: u64, month: u64) -> u64 {
        days_from_civil(year, month) * DAY_SECS
    }

    #[test]
    fn the_quota_resets_at_the_utc_month_boundary_whatever_the_month_length() {
        // February of a leap year (29 days), of a common year (28), a 30- and a 31-day
        // month, December into January, and 2100 (not a leap year).
        for (year, month, days) in [
            (2028, 2, 29),
            (2027, 2, 28),
            (2027, 4, 30),
            (2027, 7, 31),
            (2027, 12, 31),
            (2100, 2, 28),
        ] {
            let quota = Quota::new(1, QuotaPeriod::Month).unwrap();
            let start = month_start(year, month);
            let end = start + days * DAY_SECS;
            let e = entry();
            let seen = e.commit(None, Some(quota), at(start, 0)).unwrap();
            assert_eq!(
                seen.quota,
                Some((quota, days * DAY_SECS, 0, days * DAY_SECS))
            );
            assert_eq!(
                e.check_quota(quota, at(end - 1, 0)),
                Err(Exhausted::Quota {
                    retry_after: Duration::from_secs(1)
                }),
                "{year}-{month}"
            );
            assert!(e.check_quota(quota, at(end, 0)).is_ok(), "{year}-{month}");
        }
        assert_eq!(month_start(2027, 3), 1_803_859_200); // 2027-03-01T00:00:00Z
        assert_eq!(month_start(1970, 1), 0);
    }

    #[test]
    fn a_rate_refusal_after_the_quota_unit_was_taken_gives_it_back() {
        let rate = RateLimit::new(1, 60).unwrap();
        let quota = Quota::new(10, QuotaPeriod::Day).unwrap();
        let e = entry();
        e.commit(Some(rate), Some(quota), at(1000, 0)).unwrap();
        // As if a concurrent request had passed the read-only checks too.
        let (kind, seen) = e.commit(Some(rate), Some(quota), at(1000, 0)).unwrap_err();
        assert!(matches!(kind, Exhausted::Rate { .. }));
        assert_eq!(seen.quota.map(|q| q.2), Some(9));
        assert_eq!(
            e.count(Period::of(QuotaPeriod::Day, epoch_nanos(at(1000, 0)))),
            1
        );
    }

    #[test]
    fn the_headers_are_written_as_pinned() {
        let rate = RateLimit::new(100, 60).unwrap();
        let quota = Quota::new(1000, QuotaPeriod::Day).unwrap();
        let e = entry();
        let limiter = LocalLimits::new();
        let counted = e
            .commit(Some(rate), Some(quota), at(1_800_000_000, 0))
            .unwrap();
        let mut headers = HeaderMap::new();
        limiter.seen(&e, counted).write(&mut headers);
        assert_eq!(
            headers["ratelimit-policy"],
            r#""rate";q=100;w=60, "quota";q=1000;w=86400"#
        );
        // 1_800_000_000 is 08:00:00 UTC: 16 hours left in the day.
        assert_eq!(
            headers["ratelimit"],
            r#""rate";r=99;t=1, "quota";r=999;t=57600"#
        );
    }

    #[test]
    fn the_map_sweeps_ended_and_rested_entries_when_it_has_doubled() {
        let limiter = LocalLimits::new();
        let now = at(1_800_000_000, 0);
        let rate = RateLimit::new(1, 1).unwrap();
        for i in 0..MIN_SWEEP {
            let id = KeyId::new(&format!("{i:0>16}")).unwrap();
            let e = limiter.entry(&id, now + Duration::from_secs(3600), now);
            e.commit(Some(rate), None, now).unwrap();
        }
        assert_eq!(limiter.len(), MIN_SWEEP);
        // Two seconds on, every entry's rate has recovered: the next insertion sweeps.
        let later = now + Duration::from_secs(2);
        let id = KeyId::new("zzzzzzzzzzzzzzzz").unwrap();
        limiter.entry(&id, later + Duration::from_secs(3600), later);
        assert_eq!(limiter.len(), 1);
    }

    proptest! {
        /// For any arrival sequence, GCRA's own bound holds: over any span of `d`
        /// nanoseconds, at most `N + d / T` requests are admitted.
        #[test]
        fn admitted_requests_never_exceed_the_gcra_bound(
            requests in 1u32..20,
            per_secs in 1u32..20,
            gaps in proptest::collection::vec(0u64..3_000_000_000, 1..200),
        ) {
            let rate = RateLimit::new(requests, per_secs).unwrap();
            let interval = rate.interval_nanos();
            let e = entry();
            let mut now = 1_800_000_000 * NANOS_PER_SEC;
            let mut admitted = Vec::new();
            for gap in gaps {
                now += gap;
                if admit(&e, rate, UNIX_EPOCH + Duration::from_nanos(now)) {
                    admitted.push(now);
                }
            }
            for (i, first) in admitted.iter().enumerate() {
                for (j, last) in admitted.iter().enumerate().skip(i) {
                    let count = (j - i + 1) as u64;
                    prop_assert!(count <= u64::from(requests) + (last - first) / interval);
                }
            }
        }
    }
}
