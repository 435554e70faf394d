//! `until_first_use` rotation (DESIGN §11): the old key ends a grace after the new
//! key's first proven use, which only usage tracking can see.

use std::time::Duration;

use super::old_key_plan::OldKeyPlan;
use crate::key::KeyId;
use crate::manager::{CreatedKey, KeyManager, ManagerError};
use crate::store::KeyStoreAdmin;

/// The grace an `until_first_use` rotation gives the old key after the new key's first
/// use when none is asked for: 5 minutes, the default of `POST /self/rotate`.
pub const DEFAULT_FIRST_USE_GRACE: Duration = Duration::from_secs(300);

/// The longest grace an `until_first_use` rotation may give: 7 days.
pub const MAX_FIRST_USE_GRACE: Duration = Duration::from_secs(7 * 24 * 60 * 60);

impl<S: KeyStoreAdmin> KeyManager<S> {
    /// Whether the store sees each key's first use, which
    /// [`rotate_until_first_use`](Self::rotate_until_first_use) needs: true unless
    /// last-used times go to a sink other than the store
    /// ([`KeyManagerBuilder::usage_sink`](crate::KeyManagerBuilder::usage_sink)).
    pub fn tracks_usage(&self) -> bool {
        self.tracker_writes_store
    }

    /// Rotates a key, as the application, so that the old key keeps working until
    /// `grace` after the new key's first proven use, then ends (its `ends_at` is set).
    /// The integration switches when it likes; the old key goes only once the new one
    /// has been seen to work, so that rotation cannot cause an outage.
    ///
    /// Everything else is as [`rotate`](Self::rotate): the same successor, the same
    /// refusals. The first use is what last-used tracking records, so it is known when
    /// the tracker flushes: on one instance the old key ends within one flush period of
    /// the new key's first use plus `grace`; with several instances behind a cache,
    /// within that plus the cache's revocation bound (see
    /// the crate `tower-apikey-postgres`). A new key that is never used leaves the
    /// old one to its own end.
    ///
    /// Refused with [`ManagerError::UsageNotTracked`] when last-used times do not reach
    /// the store ([`tracks_usage`](Self::tracks_usage)): the end would never come. `grace` is at
    /// most [`MAX_FIRST_USE_GRACE`] ([`ManagerError::GraceTooLong`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_apikey::{InMemoryKeyStore, KeyManager, NewKey};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let manager = KeyManager::new(InMemoryKeyStore::new());
    /// let old = manager.create(NewKey::new("billing-sync", ["reports:read"])).await?;
    /// let new = manager
    ///     .rotate_until_first_use(old.record.id(), Duration::from_secs(300))
    ///     .await?;
    /// assert_eq!(new.record.predecessor_grace(), Some(Duration::from_secs(300)));
    /// // The old key has no end until the background writes the new key's first use.
    /// assert_eq!(manager.get(old.record.id()).await?.ends_at(), None);
    /// # Ok::<(), tower_apikey::ManagerError>(())
    /// # }).unwrap();
    /// ```
    pub async fn rotate_until_first_use(
        &self,
        id: &KeyId,
        grace: Duration,
    ) -> Result<CreatedKey, ManagerError> {
        self.rotate_as(id, OldKeyPlan::UntilFirstUse(grace), None)
            .await
    }

    /// Refuses an `until_first_use` rotation that could never end the old key, or
    /// whose grace is too long.
    pub(super) fn check_until_first_use(
        &self,
        id: &KeyId,
        grace: Duration,
    ) -> Result<(), ManagerError> {
        if grace > MAX_FIRST_USE_GRACE {
            return Err(ManagerError::GraceTooLong(grace));
        }
        if !self.tracks_usage() {
            return Err(ManagerError::UsageNotTracked(*id));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::NewKey;
    use crate::store::memory::InMemoryKeyStore;

    #[tokio::test]
    async fn without_usage_reaching_the_store_or_with_too_long_a_grace_nothing_is_stored() {
        let store = InMemoryKeyStore::new();
        let untracked = KeyManager::builder(store.clone())
            .usage_sink(crate::usage::TracingUsageSink)
            .build();
        let old = untracked
            .create(NewKey::new("sync", ["a:b"]))
            .await
            .unwrap();
        let refused = untracked
            .rotate_until_first_use(old.record.id(), DEFAULT_FIRST_USE_GRACE)
            .await;
        assert!(
            matches!(refused, Err(ManagerError::UsageNotTracked(id)) if id == *old.record.id()),
            "{refused:?}"
        );
        assert!(!untracked.tracks_usage());

        let manager = KeyManager::new(store);
        assert!(manager.tracks_usage());
        let too_long = manager
            .rotate_until_first_use(
                old.record.id(),
                MAX_FIRST_USE_GRACE + Duration::from_secs(1),
            )
            .await;
        assert!(
            matches!(too_long, Err(ManagerError::GraceTooLong(_))),
            "{too_long:?}"
        );
        assert_eq!(manager.list().await.unwrap().len(), 1, "nothing rotated");

        let rotated = manager
            .rotate_until_first_use(old.record.id(), MAX_FIRST_USE_GRACE)
            .await
            .unwrap();
        assert_eq!(
            rotated.record.predecessor_grace(),
            Some(MAX_FIRST_USE_GRACE)
        );
    }

    #[tokio::test]
    async fn a_clone_shares_the_tracker_its_layers_record_in() {
        let manager = KeyManager::new(InMemoryKeyStore::new());
        let handed_to_the_router = manager.clone();
        let created = manager.create(NewKey::new("k", ["a:b"])).await.unwrap();
        manager
            .tracker()
            .record(created.record.id(), std::time::SystemTime::now());
        assert_eq!(handed_to_the_router.tracker().stats().tracked_keys, 1);
        assert!(handed_to_the_router.tracks_usage());
    }
}
