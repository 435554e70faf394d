//! [`ActingAs`]: a [`KeyManager`] acting for an [`Actor`], within its ceiling.

use std::fmt;
use std::time::Duration;

use super::old_key_plan::OldKeyPlan;
use super::{Actor, CreatedKey, KeyManager, ManagerError, NewKey};
use crate::key::KeyId;
use crate::store::{KeyStoreAdmin, Revocation};

/// A [`KeyManager`] acting for an [`Actor`]; made by [`KeyManager::acting_as`].
///
/// Every change it makes stays within what the actor may grant, and records the actor:
///
/// | method | refused (nothing stored) when | records |
/// |---|---|---|
/// | [`create`](Self::create) | the actor's scopes do not grant every scope asked for: [`ManagerError::CannotGrant`]; the new key is less restricted than the actor: [`ManagerError::CannotLoosen`] | `created_by` |
/// | [`rotate`](Self::rotate) | they do not grant every scope of the old key, which the new key copies: [`ManagerError::CannotGrant`]; its limits, which the new key copies too, are less restricted than the actor: [`ManagerError::CannotLoosen`] | the new key's `created_by`; the old key's `revoked_by` if the rotation revokes it |
/// | [`revoke`](Self::revoke) | they do not grant every scope of the key: [`ManagerError::CannotRevoke`] | `revoked_by`, on the key and the heirs revoked with it |
/// | [`update`](Self::update) | they do not grant every scope of the key: [`ManagerError::CannotChange`]; the key after the change is less restricted than the actor, or than itself before when it is the actor's own: [`ManagerError::CannotLoosen`] | the log line only |
///
/// "Less restricted" is DESIGN §12's order, per [`Restriction`](crate::manager::Restriction): an
/// actor with a rate limit, a quota or an allowlist (an admin key that has them; a
/// person has none) passes each on as a bound. A restricted actor may therefore not
/// rotate or change a key that is looser than itself without bringing it within.
///
/// Everything else is as the [`KeyManager`] method of the same name does it.
pub struct ActingAs<'a, S> {
    // `pub(super)`: the methods of an optional store trait (`update`) are beside it.
    pub(super) manager: &'a KeyManager<S>,
    pub(super) actor: &'a Actor,
}

impl<'a, S: KeyStoreAdmin> ActingAs<'a, S> {
    fn new(manager: &'a KeyManager<S>, actor: &'a Actor) -> Self {
        Self { manager, actor }
    }

    /// Who is acting.
    pub fn actor(&self) -> &Actor {
        self.actor
    }

    /// Creates a key, as [`KeyManager::create`], if the actor may grant its scopes.
    pub async fn create(&self, new: NewKey) -> Result<CreatedKey, ManagerError> {
        self.manager.create_as(new, Some(self.actor)).await
    }

    /// Rotates a key, as [`KeyManager::rotate`], if the actor may grant its scopes.
    pub async fn rotate(
        &self,
        id: &KeyId,
        overlap: Option<Duration>,
    ) -> Result<CreatedKey, ManagerError> {
        self.manager
            .rotate_as(id, OldKeyPlan::Overlap(overlap), Some(self.actor))
            .await
    }

    /// Rotates a key, as [`KeyManager::rotate_until_first_use`], if the actor may grant
    /// its scopes.
    pub async fn rotate_until_first_use(
        &self,
        id: &KeyId,
        grace: Duration,
    ) -> Result<CreatedKey, ManagerError> {
        self.manager
            .rotate_as(id, OldKeyPlan::UntilFirstUse(grace), Some(self.actor))
            .await
    }

    /// Rotates a key with the old key's end given as one value, as an admin API reads
    /// it from a request: [`OldKeyPlan::Overlap`] is [`rotate`](Self::rotate),
    /// [`OldKeyPlan::UntilFirstUse`] is [`rotate_until_first_use`](Self::rotate_until_first_use).
    pub async fn rotate_with(
        &self,
        id: &KeyId,
        plan: OldKeyPlan,
    ) -> Result<CreatedKey, ManagerError> {
        self.manager.rotate_as(id, plan, Some(self.actor)).await
    }

    /// Revokes a key and its heirs, as [`KeyManager::revoke`], if the actor may grant
    /// its scopes (its heirs hold the same ones).
    pub async fn revoke(&self, id: &KeyId) -> Result<Revocation, ManagerError> {
        self.manager.revoke_as(id, Some(self.actor)).await
    }
}

impl<S: KeyStoreAdmin> KeyManager<S> {
    /// Acts for `actor`: what it creates, rotates and revokes must stay within the
    /// scopes it may grant, and records name it. See [who may do what](Self#who-may-do-what)
    /// and [`ActingAs`].
    ///
    /// ```
    /// use tower_apikey::{Actor, InMemoryKeyStore, KeyManager, ManagerError, NewKey, Scopes};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let manager = KeyManager::new(InMemoryKeyStore::new());
    /// let alice = Actor::person("alice@example.com", Scopes::new(["reports:read"])?)?;
    /// let as_alice = manager.acting_as(&alice);
    ///
    /// let made = as_alice.create(NewKey::new("export", ["reports:read"])).await?;
    /// assert_eq!(made.record.created_by(), Some(alice.name()));
    ///
    /// let refused = as_alice.create(NewKey::new("root", ["admin:keys"])).await;
    /// assert!(matches!(refused, Err(ManagerError::CannotGrant(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn acting_as<'a>(&'a self, actor: &'a Actor) -> ActingAs<'a, S> {
        ActingAs::new(self, actor)
    }
}

impl<S: fmt::Debug> fmt::Debug for ActingAs<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActingAs")
            .field("manager", self.manager)
            .field("actor", self.actor)
            .finish()
    }
}
