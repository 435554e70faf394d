//! A [`CachedKeyStore`] keeps events where the store it wraps keeps them.

use std::time::SystemTime;

use async_trait::async_trait;

use crate::event::{EventQuery, EventStore, KeyEvent, NewEvent};
use crate::page::Page;
use crate::store::StoreError;
use crate::store::cached::CachedKeyStore;

#[async_trait]
impl<S: EventStore + crate::store::KeyStore> EventStore for CachedKeyStore<S> {
    /// Forwards to the wrapped store: events are never cached.
    async fn record_event(&self, event: &NewEvent) -> Result<Option<KeyEvent>, StoreError> {
        self.get_ref().record_event(event).await
    }

    async fn events(&self, query: &EventQuery) -> Result<Page<KeyEvent>, StoreError> {
        self.get_ref().events(query).await
    }

    async fn prune_events(&self, before: SystemTime) -> Result<u64, StoreError> {
        self.get_ref().prune_events(before).await
    }

    async fn daily_requests(
        &self,
        key_id: &crate::key::KeyId,
        from: crate::usage::UsageDay,
        to: crate::usage::UsageDay,
    ) -> Result<Vec<(crate::usage::UsageDay, u64)>, StoreError> {
        self.get_ref().daily_requests(key_id, from, to).await
    }
}
