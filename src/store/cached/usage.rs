//! A [`CachedKeyStore`] writes last-used times and usage counts to the store it wraps,
//! and reads the counts back from it: nothing of usage is cached.

use std::time::SystemTime;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::key::KeyId;
use crate::store::cached::CachedKeyStore;
use crate::usage::{
    KeyUsage, UsageBatch, UsageCounts, UsageDay, UsageOutcome, UsageSink, UsageSinkError,
};

#[async_trait]
impl<S: UsageSink> UsageSink for CachedKeyStore<S> {
    /// Forwards to the wrapped store. Cached records keep their old `last_used_at`: the
    /// middleware never reads it, and [`KeyStoreAdmin::get`](crate::KeyStoreAdmin::get) bypasses the cache.
    async fn record_usage(&self, batch: &[KeyUsage]) -> Result<(), UsageSinkError> {
        self.store.record_usage(batch).await
    }

    /// Forwards to the wrapped store, then evicts the old keys the write ended (the
    /// first use of an `until_first_use` rotation's new key), so that this instance
    /// refuses them from their end on; other instances hear of it through the store's
    /// feed, as of a revocation.
    async fn record_usage_batch(
        &self,
        batch: &UsageBatch<'_>,
    ) -> Result<UsageOutcome, UsageSinkError> {
        let outcome = self.store.record_usage_batch(batch).await?;
        for end in &outcome.ended {
            self.cache.invalidate(&end.key_id);
        }
        Ok(outcome)
    }

    fn counts(&self) -> Option<&dyn UsageCounts> {
        // Counts are where the wrapped store keeps them, if it does.
        self.store.counts()
    }
}

#[async_trait]
impl<S: UsageCounts> UsageCounts for CachedKeyStore<S> {
    async fn daily_requests(
        &self,
        key_id: &KeyId,
        from: UsageDay,
        to: UsageDay,
    ) -> Result<Vec<(UsageDay, u64)>, StoreError> {
        self.store.daily_requests(key_id, from, to).await
    }

    async fn prune_usage(&self, before: SystemTime) -> Result<(), StoreError> {
        self.store.prune_usage(before).await
    }
}
