//! Changing a key's name, limits and addresses: [`KeyManager::update`] (DESIGN §12).

use super::acting_as::ActingAs;
use super::actor::{Actor, ActorLog};
use super::{KeyManager, ManagerError, change_events};
use crate::key::KeyId;
use crate::record::KeyRecord;
use crate::store::{KeyStoreUpdate, KeyUpdate};

impl<S: KeyStoreUpdate> KeyManager<S> {
    /// Changes a key's name, rate limit, quota or allowlist, as the application, and
    /// returns the record as it now stands. Scopes never change (rotate into a new key
    /// for that); neither do times or actors.
    ///
    /// The store announces the change like a revocation, so every instance enforces
    /// the new limits within the store's revocation bound (in memory: at once).
    ///
    /// ```
    /// use tower_apikey::{InMemoryKeyStore, KeyManager, NewKey};
    /// use tower_apikey::record::{Quota, QuotaPeriod};
    /// use tower_apikey::store::KeyUpdate;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let manager = KeyManager::new(InMemoryKeyStore::new());
    /// let created = manager.create(NewKey::new("export", ["reports:read"])).await?;
    /// let quota = Quota::new(10_000, QuotaPeriod::Day)?;
    /// let changed = manager
    ///     .update(created.record.id(), KeyUpdate::new().quota(Some(quota)))
    ///     .await?;
    /// assert_eq!(changed.quota(), Some(quota));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn update(&self, id: &KeyId, update: KeyUpdate) -> Result<KeyRecord, ManagerError> {
        self.update_as(id, update, None).await
    }

    pub(crate) async fn update_as(
        &self,
        id: &KeyId,
        update: KeyUpdate,
        actor: Option<&Actor>,
    ) -> Result<KeyRecord, ManagerError> {
        if let Some(actor) = actor {
            // Lifting a key's limits gives it power, as granting it scopes would: only
            // an actor who could grant every scope of the key may change it. A key's
            // scopes (and tenant) never change, so the check still holds when the
            // update lands.
            let target = self.get_as(id, Some(actor)).await?;
            let beyond = actor.may_grant().missing_set(target.scopes());
            if !beyond.is_empty() {
                return Err(ManagerError::CannotChange(*id, beyond));
            }
            // And the key as changed must be at least as restricted as the actor (and
            // as itself, if it is the actor's own). The fields the update sets are
            // exactly as checked when it lands; the others are whatever a concurrent
            // change, itself checked, left.
            super::restrictions::check_update(actor, &target, &update.apply_to(&target))
                .map_err(ManagerError::CannotLoosen)?;
        }
        let events = self.audit(|| {
            if update.is_empty() {
                Vec::new()
            } else {
                vec![change_events::changed(
                    *id,
                    self.now(),
                    actor.map(Actor::name),
                )]
            }
        });
        // The change and its event in one write (DESIGN §10).
        let (record, stored) = self
            .store
            .update_with_events(id, &update, &events)
            .await?
            .ok_or(ManagerError::NotFound(*id))?;
        self.forward(&stored);
        if !update.is_empty() {
            tracing::info!(
                key_id = %id,
                renamed = update.name_change().is_some(),
                rate_limit = ?update.rate_limit_change(),
                quota = ?update.quota_change(),
                allowed_ips = ?update.allowed_ips_change(),
                by = %ActorLog(actor),
                "API key changed"
            );
        }
        Ok(record)
    }
}

impl<S: KeyStoreUpdate> ActingAs<'_, S> {
    /// Changes a key's name, limits or addresses, as [`KeyManager::update`], if the
    /// actor may grant its scopes.
    pub async fn update(&self, id: &KeyId, update: KeyUpdate) -> Result<KeyRecord, ManagerError> {
        self.manager.update_as(id, update, Some(self.actor)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::{NewKey, Tenancy};
    use crate::record::{AllowedIps, KeyName, RateLimit};
    use crate::scope::Scopes;
    use crate::store::memory::InMemoryKeyStore;

    #[tokio::test]
    async fn an_update_changes_name_and_limits_and_keeps_the_rest() {
        let manager = KeyManager::new(InMemoryKeyStore::new());
        let rate = RateLimit::new(5, 1).unwrap();
        let created = manager
            .create(NewKey::new("old", ["reports:read"]).rate_limit(rate))
            .await
            .unwrap();
        let id = *created.record.id();
        let ips = AllowedIps::new(["192.0.2.0/24"]).unwrap();
        let changed = manager
            .update(
                &id,
                KeyUpdate::new()
                    .name(KeyName::new("new").unwrap())
                    .rate_limit(None)
                    .allowed_ips(Some(ips.clone())),
            )
            .await
            .unwrap();
        assert_eq!(changed.name().as_str(), "new");
        assert_eq!(changed.rate_limit(), None);
        assert_eq!(changed.allowed_ips(), Some(&ips));
        assert_eq!(changed.scopes(), created.record.scopes());
        assert_eq!(changed.expires_at(), created.record.expires_at());
        let stored = manager.get(&id).await.unwrap();
        assert_eq!(stored.name().as_str(), "new");
        let unknown = KeyId::new("0000000000000000").unwrap();
        assert!(matches!(
            manager.update(&unknown, KeyUpdate::new()).await,
            Err(ManagerError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn an_actor_changes_only_keys_whose_scopes_it_may_grant() {
        let manager = KeyManager::new(InMemoryKeyStore::new());
        let billing = manager
            .create(
                NewKey::new("billing", ["billing:write", "reports:read"])
                    .rate_limit(RateLimit::new(1, 60).unwrap()),
            )
            .await
            .unwrap();
        let id = *billing.record.id();
        let reader = Actor::person(
            "r@example.com",
            Scopes::new(["reports:*"]).unwrap(),
            Tenancy::Operator,
        )
        .unwrap();
        match manager
            .acting_as(&reader)
            .update(&id, KeyUpdate::new().rate_limit(None))
            .await
        {
            Err(ManagerError::CannotChange(key, beyond)) => {
                assert_eq!((key, beyond.to_string()), (id, "billing:write".to_owned()))
            }
            other => panic!("expected CannotChange, got {other:?}"),
        }
        assert!(
            manager.get(&id).await.unwrap().rate_limit().is_some(),
            "nothing changed"
        );
        let owner = Actor::person(
            "o@example.com",
            Scopes::new(["billing:*", "reports:read"]).unwrap(),
            Tenancy::Operator,
        )
        .unwrap();
        let changed = manager
            .acting_as(&owner)
            .update(&id, KeyUpdate::new().rate_limit(None))
            .await
            .unwrap();
        assert_eq!(changed.rate_limit(), None);
    }
}
