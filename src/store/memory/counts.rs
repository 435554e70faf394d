//! The in-memory store's daily request counts.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::key::KeyId;
use crate::store::memory::InMemoryKeyStore;
use crate::usage::{KeyUsage, UsageBatchId, UsageCounts, UsageDay};

/// Batch ids remembered, to apply a retried batch's counts once. A retry follows its
/// failure within a flush period, while thousands of batches cannot.
const MAX_SEEN_BATCHES: usize = 1024;

/// Counts per key per day, bounded by the keys in the store times the days of the
/// retention (pruned by the expiring pass).
#[derive(Default)]
pub(super) struct Counts(Mutex<State>);

#[derive(Default)]
struct State {
    by_key: HashMap<KeyId, BTreeMap<UsageDay, u64>, foldhash::fast::RandomState>,
    seen: VecDeque<UsageBatchId>,
    seen_set: HashSet<UsageBatchId, foldhash::fast::RandomState>,
}

impl Counts {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds the batch's counts, unless batch `id` was applied already.
    pub(super) fn add(&self, id: Option<UsageBatchId>, usages: &[KeyUsage]) {
        let mut state = self.state();
        if let Some(id) = id {
            if !state.seen_set.insert(id) {
                return;
            }
            state.seen.push_back(id);
            if state.seen.len() > MAX_SEEN_BATCHES
                && let Some(old) = state.seen.pop_front()
            {
                state.seen_set.remove(&old);
            }
        }
        for usage in usages {
            for (day, n) in usage.requests() {
                let days = state.by_key.entry(usage.key_id).or_default();
                *days.entry(day).or_default() += n;
            }
        }
    }

    pub(super) fn range(&self, id: &KeyId, from: UsageDay, to: UsageDay) -> Vec<(UsageDay, u64)> {
        self.state()
            .by_key
            .get(id)
            .map(|days| days.range(from..=to).map(|(d, n)| (*d, *n)).collect())
            .unwrap_or_default()
    }

    pub(super) fn prune(&self, before: UsageDay) {
        self.state().by_key.retain(|_, days| {
            days.retain(|d, _| *d >= before);
            !days.is_empty()
        });
    }
}

#[async_trait]
impl UsageCounts for InMemoryKeyStore {
    async fn daily_requests(
        &self,
        key_id: &KeyId,
        from: UsageDay,
        to: UsageDay,
    ) -> Result<Vec<(UsageDay, u64)>, StoreError> {
        Ok(self.inner.counts.range(key_id, from, to))
    }

    async fn prune_usage(&self, before: SystemTime) -> Result<(), StoreError> {
        self.inner.counts.prune(UsageDay::of(before));
        Ok(())
    }
}
