//! [`MemoryLimitBackend`]: the ledger in this process, for several layers (or routers)
//! of one process to share their limits, and for tests.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::error::BoxError;
use crate::key::KeyId;
use crate::limits::backend::{InstanceId, Lease, LeaseRequest, LimitBackend};
use crate::limits::ledger::LedgerState;
use crate::middleware::limiter::nanos;

/// How long an instance counts as live after its last call.
pub(crate) const INSTANCE_TTL: Duration = Duration::from_secs(30);

/// The map is not swept below this many keys.
const MIN_SWEEP: usize = 1024;

/// A [`LimitBackend`] in memory, on the time each request carries. Its map holds only
/// keys that were leased, and is swept of keys whose state says nothing (rate fully
/// recovered, quota counting an earlier period or nothing) whenever it has doubled.
#[derive(Debug, Default)]
pub struct MemoryLimitBackend {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    keys: HashMap<KeyId, LedgerState>,
    instances: HashMap<InstanceId, SystemTime>,
    sweep_at: usize,
}

impl MemoryLimitBackend {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl LimitBackend for MemoryLimitBackend {
    async fn lease(&self, request: &LeaseRequest) -> Result<Lease, BoxError> {
        let now = request.now;
        // A poisoned lock only means another caller panicked mid-arithmetic, which
        // writes nothing until it is done: the map is consistent.
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *inner;
        if inner.keys.len() >= inner.sweep_at.max(MIN_SWEEP) {
            let now_nanos = nanos(now);
            inner
                .keys
                .retain(|_, state| state.tat_nanos > now_nanos || state.spent > 0);
            inner.sweep_at = inner.keys.len() * 2;
        }
        let state = inner.keys.entry(request.key).or_default();
        let outcome = state.lease(request, now);
        *state = outcome.state;
        inner.instances.insert(request.instance, now);
        inner
            .instances
            .retain(|_, seen| now.duration_since(*seen).unwrap_or_default() < INSTANCE_TTL);
        let instances = u32::try_from(inner.instances.len()).unwrap_or(u32::MAX);
        Ok(Lease::new(outcome.granted, outcome.exhausted, instances))
    }
}
