//! [`ActingAs`]: a [`KeyManager`] acting for an [`Actor`], within its ceiling.

use std::fmt;
use std::time::Duration;

use super::actor::Tenancy;
use super::old_key_plan::OldKeyPlan;
use super::{Actor, CreatedKey, KeyManager, ManagerError, NewKey};
use crate::event::{EventQuery, KeyEvent};
use crate::key::KeyId;
use crate::page::Page;
use crate::record::{KeyRecord, TenantId};
use crate::store::key_query::KeyQuery;
use crate::store::{KeyStoreAdmin, Revocation};
use crate::usage::UsageDay;

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
/// # Tenants
///
/// It sees only what the actor's [`Tenancy`] sees (DESIGN §14), in every method, reads
/// included: for an actor of tenant T, a key of another tenant (or of none) is
/// [`ManagerError::NotFound`], exactly as an unknown id, and nothing changes;
/// [`list_page`](Self::list_page) and [`events`](Self::events) answer T's rows only,
/// whatever the query asked; [`create`](Self::create) makes keys in T, and refuses a
/// [`NewKey::tenant`] naming another ([`ManagerError::OtherTenant`]). An operator sees
/// every tenant.
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

    /// One key's record, as [`KeyManager::get`], if the actor sees it.
    pub async fn get(&self, id: &KeyId) -> Result<KeyRecord, ManagerError> {
        self.manager.get_as(id, Some(self.actor)).await
    }

    /// The keys revoking `id` would revoke with it, as [`KeyManager::heirs`], if the
    /// actor sees it.
    pub async fn heirs(&self, id: &KeyId) -> Result<Vec<KeyRecord>, ManagerError> {
        self.manager.heirs_as(id, Some(self.actor)).await
    }

    /// A page of keys, as [`KeyManager::list_page`], of the actor's tenant only: the
    /// tenant filter comes from the actor, never from the query. A query filtering by
    /// another tenant answers an empty page.
    pub async fn list_page(&self, query: KeyQuery) -> Result<Page<KeyRecord>, ManagerError> {
        match self.scoped(query.tenant()) {
            Scoped::Nothing => Ok(Page::new(Vec::new(), None)),
            Scoped::Any => self.manager.list_page(query).await,
            Scoped::Only(tenant) => self.manager.list_page(query.with_tenant(tenant)).await,
        }
    }

    /// A page of the audit trail, of the actor's tenant's keys only, scoped as
    /// [`list_page`](Self::list_page); an empty page where the manager keeps no event
    /// log. A query of one key the actor does not see is an empty page, as for a key
    /// that never had events: to answer 404 for it, as `GET /keys/{id}/events` does,
    /// [`get`](Self::get) the key first.
    pub async fn events(&self, query: EventQuery) -> Result<Page<KeyEvent>, ManagerError> {
        let query = match self.scoped(query.tenant()) {
            Scoped::Nothing => return Ok(Page::new(Vec::new(), None)),
            Scoped::Any => query,
            Scoped::Only(tenant) => query.with_tenant(tenant),
        };
        match self.manager.events() {
            Some(log) => Ok(log.events(&query).await?),
            None => Ok(Page::new(Vec::new(), None)),
        }
    }

    /// A key's requests per UTC day, as [`KeyManager::daily_requests`], if the actor
    /// sees it.
    pub async fn daily_requests(
        &self,
        id: &KeyId,
        days: u32,
    ) -> Result<Vec<(UsageDay, u64)>, ManagerError> {
        self.get(id).await?;
        Ok(self.manager.daily_requests(id, days).await?)
    }

    /// What a read filtered by `asked` (a tenant, or none) may show this actor.
    fn scoped(&self, asked: Option<&TenantId>) -> Scoped {
        match (self.actor.tenancy(), asked) {
            (Tenancy::Operator, _) => Scoped::Any,
            (Tenancy::Tenant(own), Some(asked)) if asked != own => Scoped::Nothing,
            (Tenancy::Tenant(own), _) => Scoped::Only(own.clone()),
        }
    }
}

/// What a read may show an actor.
enum Scoped {
    /// Whatever the query asks: an operator.
    Any,
    /// Only this tenant's rows: the actor's own tenant.
    Only(TenantId),
    /// Nothing: a tenant's actor asked for another tenant's rows.
    Nothing,
}

impl<S: KeyStoreAdmin> KeyManager<S> {
    /// Acts for `actor`: what it creates, rotates and revokes must stay within the
    /// scopes it may grant, and records name it. See [who may do what](Self#who-may-do-what)
    /// and [`ActingAs`].
    ///
    /// ```
    /// use tower_apikey::{Actor, InMemoryKeyStore, KeyManager, ManagerError, NewKey, Scopes};
    /// use tower_apikey::manager::Tenancy;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let manager = KeyManager::new(InMemoryKeyStore::new());
    /// let alice = Actor::person("alice@example.com", Scopes::new(["reports:read"])?, Tenancy::Operator)?;
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
