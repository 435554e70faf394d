//! [`InMemoryLimitBackend`]: the ledger in this process, for several layers (or routers)
//! of one process to share their limits, and for tests.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::error::BoxError;
use crate::key::KeyId;
use crate::limits::backend::{INSTANCE_TTL, InstanceId, Lease, LeaseRequest, LimitBackend};
use crate::limits::calendar::Period;
use crate::limits::ledger::LedgerState;
use crate::record::QuotaPeriod;
use crate::time::epoch_nanos;

/// The map is not swept below this many keys.
const MIN_SWEEP: usize = 1024;

/// A [`LimitBackend`] in memory, on the time each request carries. Its map holds only
/// keys that were leased, and is swept of keys whose state says nothing (rate fully
/// recovered, quota counting an earlier period or nothing) whenever it has doubled, so
/// it is bounded by the keys leased in the current quota period or rate window.
#[derive(Debug, Default)]
pub struct InMemoryLimitBackend {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Each key's state, and the quota period it was last leased with (to tell a count
    /// of a past period, which a sweep may drop).
    keys: HashMap<KeyId, (LedgerState, Option<QuotaPeriod>)>,
    instances: HashMap<InstanceId, SystemTime>,
    sweep_at: usize,
}

impl InMemoryLimitBackend {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl LimitBackend for InMemoryLimitBackend {
    async fn lease(&self, request: &LeaseRequest) -> Result<Lease, BoxError> {
        let now = request.now;
        // A poisoned lock only means another caller panicked mid-arithmetic, which
        // writes nothing until it is done: the map is consistent.
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *inner;
        if inner.keys.len() >= inner.sweep_at.max(MIN_SWEEP) {
            let now_nanos = epoch_nanos(now);
            inner.keys.retain(|_, (state, per)| {
                let counting = per.is_some_and(|per| {
                    state.spent > 0 && state.period == Period::of(per, now_nanos).index
                });
                state.tat_nanos > now_nanos || counting
            });
            inner.sweep_at = inner.keys.len() * 2;
        }
        let (state, per) = inner.keys.entry(request.key).or_default();
        let outcome = state.lease(request, now);
        *state = outcome.state;
        *per = request.quota.map(|q| q.per());
        let instances = inner.beat(request.instance, now);
        Ok(Lease::new(outcome.granted, outcome.exhausted, instances))
    }

    async fn heartbeat(&self, instance: InstanceId, now: SystemTime) -> Result<u32, BoxError> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Ok(inner.beat(instance, now))
    }
}

impl Inner {
    /// Records `instance` as live at `now`, forgets those silent for [`INSTANCE_TTL`],
    /// and counts the rest (bounded by the instances live at once).
    fn beat(&mut self, instance: InstanceId, now: SystemTime) -> u32 {
        self.instances.insert(instance, now);
        self.instances
            .retain(|_, seen| now.duration_since(*seen).unwrap_or_default() < INSTANCE_TTL);
        u32::try_from(self.instances.len()).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::key::{KeyPrefix, PlaintextKey};
    use crate::limits::backend::InstanceId;
    use crate::record::Quota;

    #[tokio::test]
    async fn counts_of_a_past_period_are_swept_once_the_map_has_doubled() {
        let backend = InMemoryLimitBackend::new();
        let me = InstanceId::random();
        let quota = Quota::new(10, QuotaPeriod::Day).unwrap();
        let day = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let lease = |at| {
            let key = *PlaintextKey::generate(&KeyPrefix::default()).id();
            LeaseRequest::new(key, me, None, Some(quota), 1, at)
        };
        for _ in 0..MIN_SWEEP {
            backend.lease(&lease(day)).await.unwrap();
        }
        // Still counting today: nothing may go.
        backend.lease(&lease(day)).await.unwrap();
        assert_eq!(backend.inner.lock().unwrap().keys.len(), MIN_SWEEP + 1);
        // Tomorrow every count is of a past period.
        let tomorrow = day + Duration::from_secs(86_400);
        for _ in 0..MIN_SWEEP {
            backend.lease(&lease(tomorrow)).await.unwrap();
        }
        assert!(backend.inner.lock().unwrap().keys.len() <= MIN_SWEEP);
    }
}
