//! A [`CachedKeyStore`] keeps events where the store it wraps keeps them.

use std::time::SystemTime;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::event::{EventQuery, EventStore, KeyEvent, NewEvent};
use crate::page::Page;
use crate::store::cached::CachedKeyStore;

#[async_trait]
impl<S: EventStore> EventStore for CachedKeyStore<S> {
    /// Forwards to the wrapped store: events are never cached.
    async fn record_event(&self, event: &NewEvent) -> Result<Option<KeyEvent>, StoreError> {
        self.store.record_event(event).await
    }

    async fn events(&self, query: &EventQuery) -> Result<Page<KeyEvent>, StoreError> {
        self.store.events(query).await
    }

    async fn prune_events(&self, before: SystemTime) -> Result<u64, StoreError> {
        self.store.prune_events(before).await
    }
}
