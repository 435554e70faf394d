//! [`KeyStoreUpdate`]: the optional capability of changing a key's name, limits or
//! addresses in place.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::event::{KeyEvent, NewEvent};
use crate::key::KeyId;
use crate::record::KeyRecord;
use crate::store::key_store::KeyStoreAdmin;
use crate::store::key_update::KeyUpdate;

/// A store that can change a key's name, limits or allowed addresses: what
/// [`KeyManager::update`](crate::KeyManager::update) and the admin router's
/// `PATCH /keys/{id}` need, and nothing else does.
///
/// An optional trait rather than a method with a default, so that a store without it
/// still manages keys (create, list, revoke, rotate), and asking it to change one does
/// not compile, instead of failing at run time:
///
/// ```compile_fail
/// # use async_trait::async_trait;
/// # use std::time::SystemTime;
/// # use tower_apikey::store::{KeyUpdate, OldKeyEnd, RotateOutcome};
/// # use tower_apikey::record::ActorName;
/// # use tower_apikey::{InMemoryKeyStore, KeyId, KeyManager, KeyRecord, KeyStore, KeyStoreAdmin, StoreError};
/// #[derive(Debug, Clone, Default)]
/// struct NoUpdates(InMemoryKeyStore);
/// # #[async_trait]
/// # impl KeyStore for NoUpdates {
/// #     async fn lookup(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> { self.0.lookup(id).await }
/// # }
/// # #[async_trait]
/// # impl KeyStoreAdmin for NoUpdates {
/// #     async fn insert(&self, r: &KeyRecord) -> Result<(), StoreError> { self.0.insert(r).await }
/// #     async fn list(&self) -> Result<Vec<KeyRecord>, StoreError> { self.0.list().await }
/// #     async fn revoke(&self, id: &KeyId, at: SystemTime, by: Option<&ActorName>) -> Result<Option<KeyRecord>, StoreError> { self.0.revoke(id, at, by).await }
/// #     async fn rotate(&self, old: &KeyId, new: &KeyRecord, end: OldKeyEnd) -> Result<RotateOutcome, StoreError> { self.0.rotate(old, new, end).await }
/// # }
/// // A `KeyStoreAdmin`, but no `KeyStoreUpdate`:
/// # async fn run(id: KeyId) {
/// let manager = KeyManager::builder(NoUpdates::default())
///     .usage_sink(tower_apikey::usage::TracingUsageSink)
///     .build();
/// manager.update(&id, KeyUpdate::new().rate_limit(None)).await; // does not compile
/// # }
/// ```
///
/// The three shipped stores implement it; the
/// update conformance suite (`testing::update_conformance_tests!`, feature
/// `test-util`) checks a store's own implementation.
#[async_trait]
pub trait KeyStoreUpdate: KeyStoreAdmin {
    /// Changes the name, limits or addresses of `id` as `update` says, in one step
    /// (no change made meanwhile may be lost), leaving every other field as it is.
    /// Returns the record as it now stands, or `None` if there is no such key. Any
    /// key may change, revoked and expired ones too. [`KeyUpdate::apply_to`] builds
    /// the record to write back.
    ///
    /// Like a revocation, the change must reach every instance within the store's
    /// revocation bound: a store with a cache or a `KeyIdFeed` (feature `cache`)
    /// announces the id as changed (`KeyChange::Changed`), so that other instances drop
    /// the stale record and enforce the new limits.
    async fn update(&self, id: &KeyId, update: &KeyUpdate)
    -> Result<Option<KeyRecord>, StoreError>;

    /// Changes `id` as [`update`](Self::update) does and stores `events` with the
    /// change, in one write. When there is no such key, stores nothing and returns
    /// `None`. Otherwise returns the record as it now stands and the events as stored.
    ///
    /// The default is as for
    /// [`KeyStoreAdmin::insert_with_events`]: `update` when `events` is empty,
    /// [`StoreError::Unsupported`] otherwise.
    async fn update_with_events(
        &self,
        id: &KeyId,
        update: &KeyUpdate,
        events: &[NewEvent],
    ) -> Result<Option<(KeyRecord, Vec<KeyEvent>)>, StoreError> {
        if !events.is_empty() {
            return Err(StoreError::Unsupported(
                "KeyStoreUpdate::update_with_events",
            ));
        }
        Ok(self
            .update(id, update)
            .await?
            .map(|record| (record, Vec::new())))
    }
}

#[async_trait]
impl<T: KeyStoreUpdate + ?Sized> KeyStoreUpdate for Arc<T> {
    async fn update(
        &self,
        id: &KeyId,
        update: &KeyUpdate,
    ) -> Result<Option<KeyRecord>, StoreError> {
        (**self).update(id, update).await
    }

    async fn update_with_events(
        &self,
        id: &KeyId,
        update: &KeyUpdate,
        events: &[NewEvent],
    ) -> Result<Option<(KeyRecord, Vec<KeyEvent>)>, StoreError> {
        (**self).update_with_events(id, update, events).await
    }
}
