//! The in-memory state of per-key rate limits and quotas (DESIGN §12), and the
//! `RateLimit-Policy` / `RateLimit` headers that report it.
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
//! [`Limiter::commit`] takes one quota unit, then moves the TAT; if a concurrent request
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
//!
//! # The headers
//!
//! On every answer to a limited key after the limits were applied (accepted, refused
//! for its scopes, or refused at a limit), in the syntax of
//! draft-ietf-httpapi-ratelimit-headers:
//!
//! - `RateLimit-Policy: "rate";q=N;w=S, "quota";q=N;w=<seconds in the current period>`
//! - `RateLimit: "rate";r=R;t=T, "quota";r=R;t=T`
//!
//! with an item only for the limits the key has. For the rate, `r` is how many requests
//! would be admitted right now and `t` the seconds (rounded up) until one more would
//! be; on a refusal `r` is 0 and `t` is the wait, the answer's `Retry-After`. For the
//! quota, `r` is what is left of the period and `t` the seconds until the period ends
//! (when the quota resets); a `quota_exceeded` answer's `Retry-After` is that `t`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::key::KeyId;
use crate::limits::lease_slot::LeaseSlot;
use crate::limits::shared_limits::{Shared, batch_cap, secs as epoch_secs};
use crate::middleware::rejection::RejectionKind;
use crate::record::{Quota, QuotaPeriod, RateLimit};

/// `RateLimit-Policy`.
pub(crate) static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`.
pub(crate) static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

const NANOS: u64 = 1_000_000_000;
const DAY_SECS: u64 = 86_400;
/// The map is not swept below this size: sweeping a small map would cost more than it
/// frees.
const MIN_SWEEP: usize = 1024;

type Hasher = foldhash::fast::RandomState;

/// The limits' state of one layer, shared by all its clones.
pub(crate) struct Limiter {
    entries: papaya::HashMap<KeyId, Arc<Entry>, Hasher>,
    /// The `RateLimit-Policy` values in use, formatted once each, so that an accepted
    /// request formats and allocates only its `RateLimit` value. Cleared when the
    /// entries are swept, so that it stays as small as the set of limits in use.
    policies: papaya::HashMap<PolicyKey, HeaderValue, Hasher>,
    /// The size at which the next insertion sweeps.
    sweep_at: AtomicUsize,
    /// Set when the layers share their limits with other instances
    /// ([`SharedLimits`](crate::limits::SharedLimits)).
    shared: Option<Arc<Shared>>,
}

/// One key's state.
pub(crate) struct Entry {
    /// GCRA's theoretical arrival time, in nanoseconds since the Unix epoch.
    tat: AtomicU64,
    /// `period << 32 | count`: the quota's count in the period it counts.
    quota: AtomicU64,
    /// When the key stops working (seconds since the epoch): after that the entry can go.
    stops_at: u64,
    /// This key's `RateLimit-Policy` value, first formatted or found: read without
    /// hashing while the key's limits (and its quota's period length) stay the same.
    policy: std::sync::OnceLock<(PolicyKey, HeaderValue)>,
    /// The leased tokens, when the limits are shared.
    pub(crate) lease: LeaseSlot,
}

/// What the limits of a key looked like when they were applied: what the headers say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    /// The `r` and `t` of the rate item, and of the quota item: small, because this
    /// travels in every limited request's future.
    rate: Option<(u32, u32)>,
    quota: Option<(u32, u32)>,
    /// `RateLimit-Policy`, shared from the limiter's cache (see [`Limiter::seen`]).
    policy: HeaderValue,
}

/// [`Seen`] before its policy value is attached.
#[derive(Debug)]
pub(crate) struct Counted {
    rate: Option<(RateLimit, u32, u64)>,
    quota: Option<(Quota, u64, u32, u64)>,
}

impl Counted {
    /// The state as a refusal by the shared limits reports it: nothing left of the limit
    /// that ran out, until its `Retry-After`.
    fn exhausted(mut self, kind: &RejectionKind) -> Self {
        match kind {
            RejectionKind::QuotaExceeded { retry_after } => {
                if let Some(q) = &mut self.quota {
                    q.2 = 0;
                    q.3 = retry_after.as_secs();
                }
            }
            RejectionKind::RateLimited { retry_after } => {
                if let Some(r) = &mut self.rate {
                    r.1 = 0;
                    r.2 = retry_after.as_secs();
                }
            }
            _ => {}
        }
        self
    }
}

impl Limiter {
    pub(crate) fn new() -> Self {
        Self {
            entries: papaya::HashMap::builder().hasher(Hasher::default()).build(),
            policies: papaya::HashMap::builder().hasher(Hasher::default()).build(),
            sweep_at: AtomicUsize::new(MIN_SWEEP),
            shared: None,
        }
    }

    /// A limiter whose decisions lease from `shared`'s backend.
    pub(crate) fn shared(shared: Arc<Shared>) -> Self {
        Self {
            shared: Some(shared),
            ..Self::new()
        }
    }

    /// The limits that decide locally now: the key's own, or, while the shared limits'
    /// backend fails, its local share (the limits divided by the instances the backend
    /// last reported).
    #[inline]
    pub(crate) fn local_limits(
        &self,
        rate: Option<RateLimit>,
        quota: Option<Quota>,
    ) -> (Option<RateLimit>, Option<Quota>) {
        match &self.shared {
            Some(shared) if !shared.is_healthy() => local_share(rate, quota, shared.instances()),
            _ => (rate, quota),
        }
    }

    /// Consumes one request of `entry`'s limits (`limits` as
    /// [`local_limits`](Self::local_limits) gave them, `own` the key's) and, when the
    /// limits are shared, a leased token, or owes the request (see
    /// [`SharedLimits`](crate::limits::SharedLimits)); the headers' state after.
    #[inline]
    pub(crate) fn consume(
        &self,
        id: &KeyId,
        entry: &Arc<Entry>,
        limits: (Option<RateLimit>, Option<Quota>),
        own: (Option<RateLimit>, Option<Quota>),
        now: SystemTime,
    ) -> Result<Seen, (RejectionKind, Seen)> {
        let (rate, quota) = limits;
        let Some(shared) = &self.shared else {
            // One instance: the fast path, with nothing else to do.
            return match entry.commit(rate, quota, now) {
                Ok(counted) => Ok(self.seen(entry, counted)),
                Err((kind, counted)) => Err((kind, self.seen(entry, counted))),
            };
        };
        self.consume_shared(shared, id, entry, limits, own, now)
    }

    /// [`consume`](Self::consume) when the limits are shared: kept out of line, so that
    /// one instance's path stays as small as it was.
    #[inline(never)]
    fn consume_shared(
        &self,
        shared: &Shared,
        id: &KeyId,
        entry: &Arc<Entry>,
        limits: (Option<RateLimit>, Option<Quota>),
        own: (Option<RateLimit>, Option<Quota>),
        now: SystemTime,
    ) -> Result<Seen, (RejectionKind, Seen)> {
        let (rate, quota) = limits;
        let commit = |undo: &dyn Fn()| match entry.commit(rate, quota, now) {
            Ok(counted) => Ok(self.seen(entry, counted)),
            Err((kind, counted)) => {
                undo();
                Err((kind, self.seen(entry, counted)))
            }
        };
        let ask = || shared.ask(id, entry, own.0, own.1);
        if !shared.is_healthy() {
            // The local share decides; the backend hears of it when it is back.
            let admitted = commit(&|| {});
            if admitted.is_ok() && entry.lease.owe() {
                ask();
            }
            return admitted;
        }
        let now_secs = epoch_secs(now);
        match entry.lease.take(now_secs) {
            Ok(refill) => {
                let admitted = commit(&|| entry.lease.untake());
                if refill {
                    ask();
                }
                admitted
            }
            Err(Some((kind, again, current))) => {
                if again {
                    ask();
                }
                if !current {
                    shared.refused_awaiting_lease();
                }
                let counted = entry.peek(rate, quota, now).exhausted(&kind);
                Err((kind, self.seen(entry, counted)))
            }
            // No token, and the backend did not say the limit ran out (the key is new
            // here, or its refill is in flight): up to one batch is owed.
            Err(None) => match entry.lease.owe_within(batch_cap(own.0, own.1)) {
                Some(first) => {
                    let admitted = commit(&|| entry.lease.unowe());
                    if first {
                        ask();
                    }
                    admitted
                }
                None => {
                    shared.refused_awaiting_lease();
                    let kind = RejectionKind::RateLimited {
                        retry_after: Duration::from_secs(1),
                    };
                    let counted = entry.peek(rate, quota, now).exhausted(&kind);
                    Err((kind, self.seen(entry, counted)))
                }
            },
        }
    }

    /// The entry of key `id`, made if it has none (the one allocation, per key).
    pub(crate) fn entry(&self, id: &KeyId, stops_at: SystemTime, now: SystemTime) -> Arc<Entry> {
        let entries = self.entries.pin();
        if let Some(entry) = entries.get(id) {
            return Arc::clone(entry);
        }
        if entries.len() >= self.sweep_at.load(Ordering::Relaxed) {
            let now = nanos(now);
            // An entry a request in flight still holds stays: removing it would let that
            // request commit into a copy no later request sees.
            entries.retain(|_, entry| !entry.is_stale(now) || Arc::strong_count(entry) > 1);
            self.policies.pin().clear();
            self.sweep_at
                .store((entries.len() * 2).max(MIN_SWEEP), Ordering::Relaxed);
        }
        let stops_at = secs(stops_at);
        Arc::clone(entries.get_or_insert_with(*id, || {
            Arc::new(Entry {
                tat: AtomicU64::new(0),
                quota: AtomicU64::new(0),
                stops_at,
                policy: std::sync::OnceLock::new(),
                lease: LeaseSlot::default(),
            })
        }))
    }

    /// `counted` with its `RateLimit-Policy` value, from the cache.
    pub(crate) fn seen(&self, entry: &Entry, counted: Counted) -> Seen {
        let key: PolicyKey = (counted.rate.map(|r| r.0), counted.quota.map(|q| (q.0, q.1)));
        let policy = match entry.policy.get() {
            Some((cached, policy)) if *cached == key => policy.clone(),
            _ => {
                let policies = self.policies.pin();
                let policy = match policies.get(&key) {
                    Some(policy) => policy.clone(),
                    None => policies
                        .get_or_insert_with(key, || policy_value(&key))
                        .clone(),
                };
                // The first set of limits the key is seen with stays cached in it.
                let _ = entry.policy.set((key, policy.clone()));
                policy
            }
        };
        // `t` is at most a day (rate) or a month (quota): it fits.
        let short = |t: u64| u32::try_from(t).unwrap_or(u32::MAX);
        Seen {
            rate: counted.rate.map(|(_, r, t)| (r, short(t))),
            quota: counted.quota.map(|(_, _, r, t)| (r, short(t))),
            policy,
        }
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
        let ended = self.stops_at <= now / NANOS;
        let rested = self.tat.load(Ordering::Relaxed) <= now;
        let (period, count) = unpack(self.quota.load(Ordering::Relaxed));
        let counting = count > 0
            && [QuotaPeriod::Day, QuotaPeriod::Month]
                .into_iter()
                .any(|per| period == Period::of(per, now).index);
        // Leased tokens and owed requests must reach the ledger first.
        (ended || (rested && !counting)) && self.lease.is_settled()
    }

    /// The rate check, reading only: `Err(wait)` if the request would be over the limit.
    pub(crate) fn check_rate(&self, limit: RateLimit, now: SystemTime) -> Result<(), Duration> {
        let now = nanos(now);
        let (_, wait) = gcra(self.tat.load(Ordering::Acquire), limit, now);
        match wait {
            0 => Ok(()),
            wait => Err(Duration::from_secs(ceil_secs(wait))),
        }
    }

    /// The quota check, reading only: `Err(until the period ends)` if it is used up.
    pub(crate) fn check_quota(&self, quota: Quota, now: SystemTime) -> Result<(), Duration> {
        let now = nanos(now);
        let period = Period::of(quota.per(), now);
        if self.count(period) < quota.requests() {
            Ok(())
        } else {
            Err(Duration::from_secs(period.secs_left(now)))
        }
    }

    fn count(&self, period: Period) -> u32 {
        let (counted, count) = unpack(self.quota.load(Ordering::Acquire));
        if counted == period.index { count } else { 0 }
    }

    /// Consumes one request of each limit, or neither (see the module docs); the state
    /// after, for the headers.
    pub(crate) fn commit(
        &self,
        rate: Option<RateLimit>,
        quota: Option<Quota>,
        now: SystemTime,
    ) -> Result<Counted, (RejectionKind, Counted)> {
        let now = nanos(now);
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
                    return Err((RejectionKind::QuotaExceeded { retry_after }, seen));
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
                return Err((RejectionKind::RateLimited { retry_after }, seen));
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
        let now = nanos(now);
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

impl Seen {
    /// Writes `RateLimit-Policy` and `RateLimit` into `headers`.
    pub(crate) fn write(&self, headers: &mut HeaderMap) {
        let mut state = Buf::default();
        if let Some((r, t)) = self.rate {
            state.item("\"rate\";r=", u64::from(r), ";t=", u64::from(t));
        }
        if let Some((r, t)) = self.quota {
            let name = if self.rate.is_some() {
                ", \"quota\";r="
            } else {
                "\"quota\";r="
            };
            state.item(name, u64::from(r), ";t=", u64::from(t));
        }
        // Digits, quotes, letters and separators: always a valid header value.
        if let Ok(state) = HeaderValue::from_bytes(state.as_bytes()) {
            headers.insert(RATELIMIT_POLICY.clone(), self.policy.clone());
            headers.insert(RATELIMIT.clone(), state);
        }
    }
}

/// What `RateLimit-Policy` depends on: the limits, and the length of the quota's
/// current period.
type PolicyKey = (Option<RateLimit>, Option<(Quota, u64)>);

/// The `RateLimit-Policy` value of `key`.
fn policy_value(key: &PolicyKey) -> HeaderValue {
    let mut policy = Buf::default();
    if let Some(limit) = key.0 {
        policy.item(
            "\"rate\";q=",
            u64::from(limit.requests()),
            ";w=",
            u64::from(limit.per_secs()),
        );
    }
    if let Some((quota, w)) = key.1 {
        let name = if key.0.is_some() {
            ", \"quota\";q="
        } else {
            "\"quota\";q="
        };
        policy.item(name, u64::from(quota.requests()), ";w=", w);
    }
    HeaderValue::from_bytes(policy.as_bytes()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A header value being formatted on the stack, so that the only allocation is the
/// value's own. 96 bytes hold the longest (two items of ten-digit numbers).
struct Buf {
    bytes: [u8; 96],
    len: usize,
}

impl Default for Buf {
    fn default() -> Self {
        Self {
            bytes: [0; 96],
            len: 0,
        }
    }
}

impl Buf {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// `<a><x><b><y>`: an item's name and two parameters. Written by hand rather than
    /// with `core::fmt`, which cost most of a limited answer's instructions.
    fn item(&mut self, a: &str, x: u64, b: &str, y: u64) {
        self.text(a);
        self.number(x);
        self.text(b);
        self.number(y);
    }

    fn text(&mut self, s: &str) {
        self.bytes_in(s.as_bytes());
    }

    /// Appends `bytes`; what does not fit is dropped (nothing written here comes close).
    fn bytes_in(&mut self, bytes: &[u8]) {
        let end = (self.len + bytes.len()).min(self.bytes.len());
        let n = end - self.len;
        self.bytes[self.len..end].copy_from_slice(&bytes[..n]);
        self.len = end;
    }

    fn number(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.bytes_in(&digits[i..]);
    }
}

/// `rate` and `quota` divided among `instances` (each at least 1 request).
#[cold]
fn local_share(
    rate: Option<RateLimit>,
    quota: Option<Quota>,
    instances: u32,
) -> (Option<RateLimit>, Option<Quota>) {
    (
        rate.map(|r| RateLimit::new((r.requests() / instances).max(1), r.per_secs()).unwrap_or(r)),
        quota.map(|q| Quota::new((q.requests() / instances).max(1), q.per()).unwrap_or(q)),
    )
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

/// The month last worked out: its first day (20 bits), the day after its last (20 bits)
/// and its number (24 bits), packed so that one load reads them together; 0 for none.
static MONTH: AtomicU64 = AtomicU64::new(0);

/// A UTC day or month: its number and its bounds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Period {
    pub(crate) index: u32,
    /// The end, in seconds since the epoch.
    end_secs: u64,
    len_secs: u64,
}

impl Period {
    pub(crate) fn of(per: QuotaPeriod, now: u64) -> Self {
        let day = now / NANOS / DAY_SECS;
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
    pub(crate) fn secs_left(&self, now: u64) -> u64 {
        ceil_secs((self.end_secs * NANOS).saturating_sub(now))
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
fn days_from_civil(year: u64, month: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let yoe = year - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}

fn pack(period: u32, count: u32) -> u64 {
    (u64::from(period) << 32) | u64::from(count)
}

fn unpack(packed: u64) -> (u32, u32) {
    ((packed >> 32) as u32, packed as u32)
}

pub(crate) fn nanos(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn secs(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub(crate) fn ceil_secs(nanos: u64) -> u64 {
    nanos.div_ceil(NANOS)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn at(secs: u64, nanos: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(nanos)
    }

    fn entry() -> Entry {
        Entry {
            tat: AtomicU64::new(0),
            quota: AtomicU64::new(0),
            stops_at: u64::MAX,
            policy: std::sync::OnceLock::new(),
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
            Err(Duration::from_secs(3))
        );
        assert_eq!(e.check_rate(rate, at(102, 1)), Err(Duration::from_secs(1)));
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
            RejectionKind::RateLimited {
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
            Err(Duration::from_secs(1))
        );
        let (kind, seen) = e.commit(None, Some(quota), at(day_end, 0)).unwrap_err();
        assert_eq!(
            kind,
            RejectionKind::QuotaExceeded {
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
                Err(Duration::from_secs(1)),
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
        assert!(matches!(kind, RejectionKind::RateLimited { .. }));
        assert_eq!(seen.quota.map(|q| q.2), Some(9));
        assert_eq!(e.count(Period::of(QuotaPeriod::Day, nanos(at(1000, 0)))), 1);
    }

    #[test]
    fn the_headers_are_written_as_pinned() {
        let rate = RateLimit::new(100, 60).unwrap();
        let quota = Quota::new(1000, QuotaPeriod::Day).unwrap();
        let e = entry();
        let limiter = Limiter::new();
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
        let limiter = Limiter::new();
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
            let mut now = 1_800_000_000 * NANOS;
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
