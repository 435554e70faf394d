//! `until_first_use` rotation (DESIGN §11): the old key ends a grace after the new
//! key's first proven use, which only usage tracking can see.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::key::KeyId;
use crate::manager::{CreatedKey, KeyManager, ManagerError};
use crate::store::KeyStoreAdmin;
use crate::usage::UsageTracker;

/// The grace an `until_first_use` rotation gives the old key after the new key's first
/// use when none is asked for: 5 minutes, the default of `POST /self/rotate`.
pub const DEFAULT_FIRST_USE_GRACE: Duration = Duration::from_secs(300);

/// The longest grace an `until_first_use` rotation may give: 7 days.
pub const MAX_FIRST_USE_GRACE: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The tracker that writes a manager's store's usage, if the application said which.
/// Shared by the manager's clones, so that a tracker attached after a clone was handed
/// to the admin router still counts.
pub(super) type TrackerSlot = Arc<OnceLock<UsageTracker>>;

/// What a rotation does with the old key: the choice behind
/// [`KeyManager::rotate`] and [`KeyManager::rotate_until_first_use`], as one value for an
/// admin API that reads it from a request ([`ActingAs::rotate_with`](crate::manager::ActingAs::rotate_with)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldKeyPlan {
    /// `None`: keep it until it is revoked; `Some(ZERO)`: revoke it now; `Some(d)`:
    /// end it `d` from now.
    Overlap(Option<Duration>),
    /// End it this grace after the new key's first proven use.
    UntilFirstUse(Duration),
}

impl<S: KeyStoreAdmin> KeyManager<S> {
    /// Tells the manager that `tracker` writes the usage of this manager's store, here
    /// or on another instance (an instance that serves only the admin router can hand
    /// it the tracker it builds, even one it never runs, when other instances' trackers
    /// write the same database). That is what makes
    /// [`rotate_until_first_use`](Self::rotate_until_first_use) possible, and the
    /// admin router's guard then records admin keys' uses in it by default.
    ///
    /// [`layer_with_tracker`](Self::layer_with_tracker) and
    /// `tower_apikey_admin::AdminRouter::usage_tracker` attach
    /// their tracker themselves. The first tracker attached stays.
    pub fn with_usage_tracker(self, tracker: UsageTracker) -> Self {
        self.attach_tracker(tracker);
        self
    }

    /// Whether a [`UsageTracker`] is attached ([`with_usage_tracker`](Self::with_usage_tracker),
    /// [`layer_with_tracker`](Self::layer_with_tracker)): without one,
    /// [`rotate_until_first_use`](Self::rotate_until_first_use) is refused.
    pub fn tracks_usage(&self) -> bool {
        self.tracker.get().is_some()
    }

    /// The attached tracker, if any: for an admin API's guard, so that admin keys'
    /// uses are recorded like every other key's.
    pub fn usage_tracker(&self) -> Option<&UsageTracker> {
        self.tracker.get()
    }

    #[doc(hidden)]
    pub fn attach_tracker(&self, tracker: UsageTracker) {
        // The first one stays: a second attach is the same application saying it again.
        let _ = self.tracker.set(tracker);
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
    /// Refused with [`ManagerError::UsageNotTracked`] when no tracker is attached
    /// ([`tracks_usage`](Self::tracks_usage)): the end would never come. `grace` is at
    /// most [`MAX_FIRST_USE_GRACE`] ([`ManagerError::GraceTooLong`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_apikey::{InMemoryKeyStore, KeyManager, NewKey};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let manager = KeyManager::new(InMemoryKeyStore::new());
    /// let (layer, tracker) = manager.layer_with_tracker(); // attaches the tracker
    /// let old = manager.create(NewKey::new("billing-sync", ["reports:read"])).await?;
    /// let new = manager
    ///     .rotate_until_first_use(old.record.id(), Duration::from_secs(300))
    ///     .await?;
    /// assert_eq!(new.record.predecessor_grace(), Some(Duration::from_secs(300)));
    /// // The old key has no end until the tracker writes the new key's first use.
    /// assert_eq!(manager.get(old.record.id()).await?.ends_at(), None);
    /// # drop((layer, tracker));
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
    async fn without_a_tracker_or_with_too_long_a_grace_nothing_is_stored() {
        let manager = KeyManager::new(InMemoryKeyStore::new());
        let old = manager.create(NewKey::new("sync", ["a:b"])).await.unwrap();
        let refused = manager
            .rotate_until_first_use(old.record.id(), DEFAULT_FIRST_USE_GRACE)
            .await;
        assert!(
            matches!(refused, Err(ManagerError::UsageNotTracked(id)) if id == *old.record.id()),
            "{refused:?}"
        );
        assert!(!manager.tracks_usage());

        let manager = manager.with_usage_tracker(UsageTracker::new(InMemoryKeyStore::new()));
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
    async fn a_clone_made_before_the_tracker_is_attached_sees_it() {
        let store = InMemoryKeyStore::new();
        let manager = KeyManager::new(store.clone());
        let handed_to_the_router = manager.clone();
        let (_layer, _tracker) = manager.layer_with_tracker();
        assert!(handed_to_the_router.tracks_usage());
    }
}
