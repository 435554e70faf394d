//! [`UsageCounts`]: where the daily request counts a [`UsageSink`](crate::UsageSink)
//! wrote are read back and pruned.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::key::KeyId;
use crate::usage::counts::UsageDay;

/// The daily request counts a store keeps: an optional capability, like
/// [`EventStore`](crate::event::EventStore). The three shipped stores implement it
/// ([`InMemoryKeyStore`](crate::InMemoryKeyStore), a `CachedKeyStore` over one that
/// does, and `tower_apikey_postgres::PgKeyStore`).
///
/// The counts arrive through the store's [`UsageSink`](crate::UsageSink) (each
/// [`KeyUsage::requests`](crate::usage::KeyUsage::requests), once per batch id); this
/// trait reads them back ([`requests_per_day`] fills the days without requests) and
/// prunes them. A sink that keeps counts says so with
/// [`UsageSink::counts`](crate::UsageSink::counts): the manager then reads them
/// ([`KeyManager::daily_requests`](crate::KeyManager::daily_requests)) and its
/// [background](crate::KeyManager::background) prunes them under the event log's
/// retention.
#[async_trait]
pub trait UsageCounts: fmt::Debug + Send + Sync + 'static {
    /// The requests counted for `key_id` on each UTC day from `from` to `to`
    /// (inclusive), oldest first; days without requests may be left out.
    async fn daily_requests(
        &self,
        key_id: &KeyId,
        from: UsageDay,
        to: UsageDay,
    ) -> Result<Vec<(UsageDay, u64)>, StoreError>;

    /// Deletes the counts of days before the UTC day of `before` (and whatever the
    /// store keeps to count each batch once, from before `before`).
    async fn prune_usage(&self, before: SystemTime) -> Result<(), StoreError>;
}

#[async_trait]
impl<T: UsageCounts + ?Sized> UsageCounts for Arc<T> {
    async fn daily_requests(
        &self,
        key_id: &KeyId,
        from: UsageDay,
        to: UsageDay,
    ) -> Result<Vec<(UsageDay, u64)>, StoreError> {
        (**self).daily_requests(key_id, from, to).await
    }

    async fn prune_usage(&self, before: SystemTime) -> Result<(), StoreError> {
        (**self).prune_usage(before).await
    }
}

/// The requests of `key_id` on each of the `days` UTC days up to and including the day
/// of `now`, oldest first, days without requests as zero: what `GET /keys/{id}/usage`
/// answers ([`KeyManager::daily_requests`](crate::KeyManager::daily_requests) reads
/// them from the manager's counts).
///
/// # Errors
///
/// The store's error.
pub async fn requests_per_day(
    counts: &(impl UsageCounts + ?Sized),
    key_id: &KeyId,
    now: SystemTime,
    days: u32,
) -> Result<Vec<(UsageDay, u64)>, StoreError> {
    let (from, to) = last_days(now, days);
    let stored = counts.daily_requests(key_id, from, to).await?;
    Ok(every_day(&stored, from, to))
}

/// The first and last of the `days` UTC days up to and including the day of `now`.
pub(crate) fn last_days(now: SystemTime, days: u32) -> (UsageDay, UsageDay) {
    let to = UsageDay::of(now);
    let from = UsageDay::from_days_since_epoch(
        to.days_since_epoch().saturating_sub(days.saturating_sub(1)),
    );
    (from, to)
}

/// Each day from `from` to `to`, with its count in `stored` or zero.
pub(crate) fn every_day(
    stored: &[(UsageDay, u64)],
    from: UsageDay,
    to: UsageDay,
) -> Vec<(UsageDay, u64)> {
    let mut out = Vec::new();
    let mut day = from;
    loop {
        let n = stored
            .iter()
            .find(|(d, _)| *d == day)
            .map_or(0, |&(_, n)| n);
        out.push((day, n));
        if day >= to {
            return out;
        }
        day = day.next();
    }
}
