//! [`KeyManager`] and what it takes and reports: [`NewKey`], [`CreatedKey`],
//! [`ManagerError`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::clock::Clock;
use crate::error::StoreError;
use crate::event::EventLog;
use crate::key::{KeyId, KeyPrefix, PlaintextKey};
use crate::limits::shared_limits::SharedLimits;
use crate::middleware::layer::ApiKeyV2Layer;
use crate::page::Page;
use crate::record::{
    AllowedIps, KeyName, KeyNameError, KeyRecord, KeyState, Limits, Quota, RateLimit, TenantId,
};
use crate::scope::{ScopeError, Scopes};
use crate::store::key_query::KeyQuery;
use crate::store::{KeyStoreAdmin, OldKeyEnd, Revocation, RotateOutcome};
use crate::time::whole_micros;
use crate::usage::{UsageSink, UsageTracker};

use super::actor::{Actor, ActorLog};
use super::catalogue::ScopeCatalogue;
use super::old_key_plan::OldKeyPlan;
use super::run::Run;
use super::{ChangeKind, Loosened, change_events, restrictions};

/// The longest a key may live: 365 days.
pub const MAX_LIFETIME: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Why an expiry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExpiryError {
    /// The expiry is not in the future.
    #[error("expires_at must be in the future")]
    NotInFuture,
    /// The expiry is more than 365 days away.
    #[error("a key lives at most 365 days; expires_at is further away")]
    TooFar,
}

/// Why a key-management operation failed. Nothing was stored when it fails.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// The name is invalid.
    #[error("invalid name: {0}")]
    Name(#[from] KeyNameError),
    /// A scope is invalid.
    #[error(transparent)]
    Scope(#[from] ScopeError),
    /// The requested expiry is invalid.
    #[error("invalid expiry: {0}")]
    Expiry(#[from] ExpiryError),
    /// There is no key with this id.
    #[error("no key with id {0}")]
    NotFound(KeyId),
    /// The key is revoked, so it cannot be rotated.
    #[error("key {0} is revoked; create a new key instead of rotating it")]
    Revoked(KeyId),
    /// The key has expired, so it cannot be rotated: rotation never revives a key.
    #[error("key {0} has expired; create a new key instead of rotating it")]
    Expired(KeyId),
    /// A rotation ended the key, so it cannot be rotated again: rotation never revives
    /// a key. Its successor can be rotated.
    #[error("key {0} was ended by a rotation; rotate the key that replaced it instead")]
    Ended(KeyId),
    /// The key already has a live successor (the second id), so it cannot be rotated
    /// again: a key rotates into one heir at a time, so that a leaked copy cannot mint
    /// a second one. Rotate the successor instead, or revoke it first if it was lost.
    #[error(
        "key {0} was already rotated into key {1}, which is still active; rotate {1} \
         instead, or revoke {1} first if its plaintext was lost"
    )]
    HasLiveSuccessor(KeyId, KeyId),
    /// The key is rotating itself (`POST /self/rotate`) while the key it replaced (the
    /// second id) still works. A key that rotates itself may not start a chain of live
    /// keys: otherwise a leaked copy could rotate, rotate the heir, and so on, each
    /// heir outliving the revocation of the one before.
    #[error(
        "key {0} replaced key {1}, which still works; revoke {1} (or let it end) before \
         key {0} rotates itself again"
    )]
    PredecessorActive(KeyId, KeyId),
    /// The catalogue does not declare these scopes, so no key may be created with them.
    #[error(
        "the scope catalogue does not declare {0}; choose among the declared scopes \
         (the admin router lists them at GET /scopes)"
    )]
    UndeclaredScopes(Scopes),
    /// The actor may not give a key these scopes: its own scopes do not grant them.
    /// A rotation copies the old key's scopes, so it needs them too.
    #[error(
        "the actor may not grant {0}: a key can only be given scopes the actor's own \
         scopes grant; ask an administrator who holds them"
    )]
    CannotGrant(Scopes),
    /// The actor may not revoke this key: it holds scopes the actor's own scopes do not
    /// grant, such as an administrator's key above the actor.
    #[error(
        "the actor may not revoke key {0}, which holds {1} that the actor's own scopes \
         do not grant; ask an administrator who holds them"
    )]
    CannotRevoke(KeyId, Scopes),
    /// An `until_first_use` rotation of this key was asked for, but this manager's
    /// last-used times go to a sink other than its store
    /// ([`KeyManagerBuilder::usage_sink`](crate::KeyManagerBuilder::usage_sink)), so the new key's first use, and with it the
    /// old key's end, would never reach the store. Rotate with a fixed overlap instead.
    #[error(
        "key {0} cannot rotate until the new key's first use: this manager's UsageTracker \
         writes to a sink other than its store, so that use would never be seen and the \
         old key would never end; rotate with overlap_secs instead"
    )]
    UsageNotTracked(KeyId),
    /// The grace of an `until_first_use` rotation is longer than
    /// [`MAX_FIRST_USE_GRACE`](super::MAX_FIRST_USE_GRACE).
    #[error("grace_secs is at most 604800 (7 days); {0:?} was asked for")]
    GraceTooLong(Duration),
    /// The actor may not change this key's name, limits or addresses: it holds scopes
    /// the actor's own scopes do not grant, and lifting its limits would give it power
    /// beyond the actor's.
    #[error(
        "the actor may not change key {0}, which holds {1} that the actor's own scopes \
         do not grant; ask an administrator who holds them"
    )]
    CannotChange(KeyId, Scopes),
    /// A restricted actor would leave a key less restricted than itself, or loosen its
    /// own key (DESIGN §12): the key created, the successor a rotation would make (it
    /// copies the old key's limits), or the key after a change, lacks a restriction the
    /// actor has, or has a looser one. [`Loosened`] names each.
    #[error("{0}")]
    CannotLoosen(Loosened),
    /// An actor of one tenant asked for a key in another (DESIGN §14): an actor creates
    /// keys only in its own tenant. Leave the tenant out, and the key is made in the
    /// actor's.
    #[error(
        "the actor belongs to tenant {actor} and may not create a key in tenant {asked}; \
         leave the tenant out to create the key in {actor}"
    )]
    OtherTenant {
        /// The actor's tenant.
        actor: TenantId,
        /// The tenant asked for.
        asked: TenantId,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a new key should be: a name, scopes and, optionally, an earlier expiry.
///
/// The name and scopes are checked once, when the `NewKey` is made: [`NewKey::new`]
/// checks texts and keeps the first error for [`KeyManager::create`] to return (as
/// `http::request::Builder` keeps its errors for `body`); [`NewKey::from_parts`] takes
/// values that are already checked.
#[derive(Debug, Clone)]
pub struct NewKey {
    name: Result<KeyName, KeyNameError>,
    scopes: Result<Scopes, ScopeError>,
    expiry: Option<Expiry>,
    limits: Limits,
    tenant: Option<TenantId>,
}

#[derive(Debug, Clone, Copy)]
enum Expiry {
    At(SystemTime),
    After(Duration),
}

impl NewKey {
    /// A key named `name` holding `scopes`, valid for 365 days. Both are checked here;
    /// [`KeyManager::create`] returns the error if either is invalid.
    pub fn new<I>(name: impl AsRef<str>, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Self {
            name: KeyName::new(name.as_ref()),
            scopes: Scopes::new(scopes),
            expiry: None,
            limits: Limits::default(),
            tenant: None,
        }
    }

    /// A key named `name` holding `scopes`, both already checked, valid for 365 days.
    pub fn from_parts(name: KeyName, scopes: Scopes) -> Self {
        Self {
            name: Ok(name),
            scopes: Ok(scopes),
            expiry: None,
            limits: Limits::default(),
            tenant: None,
        }
    }

    /// Expire at `at` instead: in the future and at most 365 days away.
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.expiry = Some(Expiry::At(at));
        self
    }

    /// Live for `lifetime` instead: more than zero and at most 365 days.
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.expiry = Some(Expiry::After(lifetime));
        self
    }

    /// Make the key one of `tenant`'s (DESIGN §14); rotation keeps it, and nothing
    /// changes it afterwards. Without it the key belongs to the application itself.
    ///
    /// A manager [acting](KeyManager::acting_as) for a tenant's actor creates keys in
    /// that actor's tenant, and refuses another one here.
    pub fn tenant(mut self, tenant: TenantId) -> Self {
        self.tenant = Some(tenant);
        self
    }

    /// Limit the key's request rate (DESIGN §12); rotation keeps it.
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.limits.rate_limit = Some(limit);
        self
    }

    /// Give the key a quota per UTC day or month; rotation keeps it.
    pub fn quota(mut self, quota: Quota) -> Self {
        self.limits.quota = Some(quota);
        self
    }

    /// Accept the key only from these addresses; rotation keeps them.
    pub fn allowed_ips(mut self, ips: AllowedIps) -> Self {
        self.limits.allowed_ips = Some(ips);
        self
    }
}

/// A key just created: its record and, this once, its plaintext.
///
/// `Debug` shows the record and the key's id only.
#[derive(Debug)]
pub struct CreatedKey {
    /// What the store keeps.
    pub record: KeyRecord,
    /// The key to hand to its owner. It is not kept anywhere and cannot be shown again.
    pub key: PlaintextKey,
}

/// Creates, lists, revokes and rotates keys in a [`KeyStoreAdmin`], and runs what
/// runs beside the store: the one value that owns the configuration (DESIGN §4).
///
/// Build it with [`KeyManager::builder`] (or [`KeyManager::new`] for the defaults),
/// then, in three steps:
///
/// 1. serve with [`layer`](Self::layer): it accepts this manager's keys and records
///    their last use (and counts their limits, shared if configured);
/// 2. spawn [`background`](Self::background): one future runs every loop (the usage
///    flush, the event queue and expiring pass, lease refills, the cache's feed);
/// 3. once the server has stopped, call [`shutdown`](Self::shutdown): it stops the
///    loops and writes what is pending, in a documented order.
///
/// ```
/// use tower_apikey::{InMemoryKeyStore, KeyManager, NewKey};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let manager = KeyManager::new(InMemoryKeyStore::new());
/// let created = manager.create(NewKey::new("billing-sync", ["reports:read"])).await?;
/// let layer = manager.layer(); // serve with it
/// let running = tokio::spawn(manager.background());
/// // … serve until a shutdown signal, then, after the server has stopped:
/// manager.shutdown().await?; // writes the last uses, stops the loops
/// running.await?;
/// # drop((layer, created));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
///
/// Clones share everything: the store, the tracker, the background.
///
/// Times it writes are truncated to whole microseconds, the finest precision PostgreSQL
/// keeps, so a record reads back from any shipped store exactly as it was written.
///
/// # Who may do what
///
/// `KeyManager`'s own methods are the application acting: they create, rotate and
/// revoke any key, and records show no actor (`created_by`/`revoked_by` are `None`).
/// [`KeyManager::acting_as`] acts for someone, an [`Actor`]: an admin key or a person
/// the application's login signed in. Then
///
/// - no key gets a scope the actor's own scopes do not grant (wildcards count), so an
///   actor can never mint more power than it holds: creating such a key, rotating such
///   a key (which copies its scopes) and revoking such a key (which could cut off the
///   administrators above the actor) fail with [`ManagerError::CannotGrant`] or
///   [`ManagerError::CannotRevoke`], naming the scopes, and nothing is stored;
/// - no key is left less restricted than a restricted actor (an admin key with a rate
///   limit, a quota or an allowlist): the keys it creates, rotates or changes keep its
///   restrictions, and it may not loosen its own ([`ManagerError::CannotLoosen`], naming
///   each [`Restriction`](super::Restriction); DESIGN §12);
/// - the actor's name is recorded as the new key's `created_by`, or the revoked key's
///   `revoked_by`, and logged.
///
/// With a [`ScopeCatalogue`] ([`KeyManagerBuilder::catalogue`](crate::KeyManagerBuilder::catalogue)), create also refuses any
/// scope the application did not declare. Whoever acts, rotation never revives a key:
/// rotating a revoked, expired or ended key fails (409 over HTTP).
#[derive(Clone)]
pub struct KeyManager<S> {
    pub(super) store: S,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) prefix: KeyPrefix,
    pub(super) catalogue: Option<ScopeCatalogue>,
    /// Where `created`, `rotated` and `revoked` are recorded, if anywhere.
    pub(super) events: Option<EventLog>,
    /// Where the tracker writes, kept so that a changed configuration can rebuild it.
    pub(super) usage_sink: Arc<dyn UsageSink>,
    pub(super) usage_flush: Duration,
    /// Records the uses the manager's layers prove; the background writes them.
    pub(super) tracker: UsageTracker,
    /// Whether `tracker` writes this manager's store, so that the store sees first uses.
    pub(super) tracker_writes_store: bool,
    /// Whether `tracker` was handed in (0.1's `with_usage_tracker`) rather than built.
    pub(super) tracker_given: bool,
    pub(super) limits: Option<SharedLimits>,
    /// What [`layer`](Self::layer) clones: every layer of this manager shares one
    /// tracker and one limiter, so a key's limits hold across them.
    pub(super) layer: ApiKeyV2Layer,
    /// The background and shutdown's shared state.
    pub(super) run: Arc<Run>,
}

impl<S: KeyStoreAdmin + UsageSink + Clone> KeyManager<S> {
    /// A manager over `store` with the defaults: `KeyManager::builder(store).build()`
    /// (the system clock, prefix `mkc`, no scope catalogue, no audit trail, limits kept
    /// per instance, last-used times written to `store` every five minutes). See
    /// [`KeyManagerBuilder`](crate::KeyManagerBuilder) for the rest.
    pub fn new(store: S) -> Self {
        Self::builder(store).build()
    }
}

impl<S: KeyStoreAdmin> KeyManager<S> {
    /// The scope catalogue, if the application declared one.
    pub fn catalogue(&self) -> Option<&ScopeCatalogue> {
        self.catalogue.as_ref()
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Creates a key, as the application. The plaintext is in the result, once.
    pub async fn create(&self, new: NewKey) -> Result<CreatedKey, ManagerError> {
        self.create_as(new, None).await
    }

    pub(crate) async fn create_as(
        &self,
        new: NewKey,
        actor: Option<&Actor>,
    ) -> Result<CreatedKey, ManagerError> {
        let name = new.name?;
        let scopes = new.scopes?;
        if let Some(catalogue) = &self.catalogue {
            let undeclared = catalogue.undeclared(&scopes);
            if !undeclared.is_empty() {
                return Err(ManagerError::UndeclaredScopes(undeclared));
            }
        }
        // An actor's keys are its tenant's: made there when no tenant is asked for, and
        // refused in another. An operator (or the application) makes what it asks.
        let tenant = match (actor.and_then(|a| a.tenancy().tenant()), new.tenant) {
            (Some(own), None) => Some(own.clone()),
            (Some(own), Some(asked)) if asked != *own => {
                return Err(ManagerError::OtherTenant {
                    actor: own.clone(),
                    asked,
                });
            }
            (_, asked) => asked,
        };
        if let Some(actor) = actor {
            let beyond = actor.may_grant().missing_set(&scopes);
            if !beyond.is_empty() {
                return Err(ManagerError::CannotGrant(beyond));
            }
            restrictions::check(actor, None, ChangeKind::Create, &new.limits)
                .map_err(ManagerError::CannotLoosen)?;
        }
        let now = self.now();
        let expires_at = match new.expiry {
            None => now + MAX_LIFETIME,
            Some(Expiry::At(at)) => self.check_expires_at(at)?,
            Some(Expiry::After(lifetime)) => {
                if lifetime.is_zero() {
                    return Err(ExpiryError::NotInFuture.into());
                }
                if lifetime > MAX_LIFETIME {
                    return Err(ExpiryError::TooFar.into());
                }
                now + lifetime
            }
        };
        let key = PlaintextKey::generate(&self.prefix);
        let record = KeyRecord::new(*key.id(), name, scopes, key.digest(), now, expires_at)
            .with_created_by(actor.map(|a| a.name().clone()))
            .with_tenant(tenant)
            .with_limits(new.limits);
        let events = self.audit(|| vec![change_events::created(&record)]);
        let stored = self.store.insert_with_events(&record, &events).await?;
        self.forward(&stored);
        tracing::info!(
            key_id = %record.id(),
            name = %record.name(),
            by = %ActorLog(actor),
            "API key created"
        );
        Ok(CreatedKey { record, key })
    }

    /// One key's record.
    pub async fn get(&self, id: &KeyId) -> Result<KeyRecord, ManagerError> {
        self.get_as(id, None).await
    }

    /// One key's record, as `actor` may see it: another tenant's key is
    /// [`ManagerError::NotFound`], exactly as an unknown id (DESIGN §14). Every call that
    /// acts for an actor on a key by its id reads the key through here first, and a
    /// key's tenant never changes, so the answer still holds when the call's change
    /// lands.
    pub(crate) async fn get_as(
        &self,
        id: &KeyId,
        actor: Option<&Actor>,
    ) -> Result<KeyRecord, ManagerError> {
        match self.store.get(id).await? {
            Some(record) if actor.is_none_or(|a| a.tenancy().sees(&record)) => Ok(record),
            _ => Err(ManagerError::NotFound(*id)),
        }
    }

    /// Every key, newest first.
    pub async fn list(&self) -> Result<Vec<KeyRecord>, ManagerError> {
        Ok(self.store.list().await?)
    }

    /// A query for the first page of every key, newest first, at this manager's clock:
    /// add filters, a sort and a cursor, then pass it to [`list_page`](Self::list_page).
    pub fn key_query(&self) -> KeyQuery {
        KeyQuery::new(self.clock.now())
    }

    /// One page of keys, as `query` asks (see [`KeyQuery`]). States are judged at this
    /// manager's clock, whatever time the query was built with, so that every instance
    /// gives the same answer whatever the store's own clock says.
    ///
    /// ```
    /// use tower_apikey::{InMemoryKeyStore, KeyManager, NewKey};
    /// use tower_apikey::store::{KeyFilter, PageLimit};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let manager = KeyManager::new(InMemoryKeyStore::new());
    /// for name in ["a", "b", "c"] {
    ///     manager.create(NewKey::new(name, ["reports:read"])).await?;
    /// }
    /// let query = manager.key_query().with_state(KeyFilter::Active);
    /// let first = manager.list_page(query.clone().with_limit(PageLimit::new(2)?)).await?;
    /// assert_eq!(first.items.len(), 2);
    /// let next = first.next.expect("a third key follows");
    /// let rest = manager.list_page(query.after(&next)?).await?;
    /// assert_eq!(rest.items.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn list_page(&self, query: KeyQuery) -> Result<Page<KeyRecord>, ManagerError> {
        let query = query.at(self.clock.now());
        Ok(self.store.list_page(&query).await?)
    }

    /// Revokes a key at once, as the application, and the keys it minted for itself
    /// (DESIGN §10, heirs): if the key still worked, every live key minted from it by
    /// self-rotation (`POST /self/rotate`), and theirs in turn, is revoked in the same
    /// step, so that a thief who rotated a leaked key keeps nothing once the owner
    /// revokes it. A key that had already ended (by its rotation) or expired revokes
    /// nothing more: the integration's new key survives when the old one is tidied up.
    /// [`heirs`](Self::heirs) says beforehand which keys go with it.
    ///
    /// Revoking a revoked key succeeds, keeps the first time (and actor) and revokes
    /// nothing more ([`Revocation::revoked_now`] is `false`).
    ///
    /// The key is refused from the moment the store has the revocation, on every clock:
    /// the time recorded (this manager's clock) is for people, not a condition.
    pub async fn revoke(&self, id: &KeyId) -> Result<Revocation, ManagerError> {
        self.revoke_as(id, None).await
    }

    /// The keys that revoking `id` now would revoke with it: its live heirs if it
    /// still works (see [`revoke`](Self::revoke)), oldest first; none if it no longer
    /// works.
    pub async fn heirs(&self, id: &KeyId) -> Result<Vec<KeyRecord>, ManagerError> {
        self.heirs_as(id, None).await
    }

    pub(crate) async fn heirs_as(
        &self,
        id: &KeyId,
        actor: Option<&Actor>,
    ) -> Result<Vec<KeyRecord>, ManagerError> {
        let now = self.clock.now();
        let key = self.get_as(id, actor).await?;
        if key.state_at(now) != KeyState::Active {
            return Ok(Vec::new());
        }
        Ok(self.store.live_heirs(id, now).await?)
    }

    pub(crate) async fn revoke_as(
        &self,
        id: &KeyId,
        actor: Option<&Actor>,
    ) -> Result<Revocation, ManagerError> {
        if let Some(actor) = actor {
            // A key's scopes never change, and its heirs hold the same ones (rotation
            // copies them), so checking them before the revocation holds for the
            // revocation and its heirs too. Its heirs are of its tenant.
            let target = self.get_as(id, Some(actor)).await?;
            let beyond = actor.may_grant().missing_set(target.scopes());
            if !beyond.is_empty() {
                return Err(ManagerError::CannotRevoke(*id, beyond));
            }
        }
        let now = self.now();
        let by = actor.map(Actor::name);
        // The store keeps these only if this call revokes the key, and tells each heir
        // its own.
        let events = self.audit(|| vec![change_events::revoked(*id, now, by)]);
        let revocation = self
            .store
            .revoke_with_heirs(id, now, by, &events)
            .await?
            .ok_or(ManagerError::NotFound(*id))?;
        self.forward(&revocation.events);
        // A repeated revocation keeps the first time: log only the one that took effect.
        if revocation.revoked_now {
            tracing::info!(key_id = %id, heirs = revocation.heirs.len(), by = %ActorLog(actor), "API key revoked");
            for heir in &revocation.heirs {
                tracing::info!(
                    key_id = %heir.id(),
                    revoked_with = %id,
                    by = %ActorLog(actor),
                    "API key revoked with the key it was minted from by self-rotation"
                );
            }
        }
        Ok(revocation)
    }

    /// Rotates a key, as the application: a new key with the same name and scopes,
    /// recording `rotated_from`. Rotation never grows a key's power or life:
    ///
    /// - the new key lives as long as the old key was created to live
    ///   (`expires_at - created_at`, at most 365 days), from now: a one-hour key rotates
    ///   into a one-hour key;
    /// - a key that already has a live successor (a key rotated from it and still
    ///   active) cannot be rotated again, [`ManagerError::HasLiveSuccessor`], so a
    ///   leaked copy cannot mint a second heir. The store checks this in the same step
    ///   as it stores the new key, so two concurrent rotations make one successor.
    ///
    /// What happens to the old key:
    ///
    /// - `overlap: None` leaves the old key working until it is revoked, so the
    ///   integration can switch and verify (by the new key's last-used time) first.
    /// - `Some(d)` ends the old key at now + `d`: its `ends_at` is set (unless it ends or
    ///   expires sooner anyway) and its `expires_at` is kept. The key is refused at and
    ///   after that time, as "ended by rotation".
    /// - `Some(Duration::ZERO)` revokes the old key at once, for a leaked key.
    ///
    /// To end the old key only once the new one has been seen working, use
    /// [`rotate_until_first_use`](Self::rotate_until_first_use).
    ///
    /// Rotation never revives a key: a revoked, expired or ended key cannot be rotated
    /// ([`ManagerError::Revoked`], [`Expired`](ManagerError::Expired),
    /// [`Ended`](ManagerError::Ended)). The new key keeps the old key's scopes even if
    /// the catalogue no longer declares them.
    pub async fn rotate(
        &self,
        id: &KeyId,
        overlap: Option<Duration>,
    ) -> Result<CreatedKey, ManagerError> {
        self.rotate_as(id, OldKeyPlan::Overlap(overlap), None).await
    }

    /// Refuses a self-rotation of `id` while the key it replaced is still active at the
    /// manager's clock ([`ManagerError::PredecessorActive`]): at most two live keys per
    /// self-rotating integration, the one in use and the one it is switching from.
    ///
    /// An admin API that lets keys rotate themselves calls this before
    /// [`ActingAs::rotate_with`](crate::manager::ActingAs::rotate_with).
    pub async fn check_self_rotation(&self, id: &KeyId) -> Result<(), ManagerError> {
        let key = self.get(id).await?;
        let Some(predecessor) = key.rotated_from() else {
            return Ok(());
        };
        match self.store.get(predecessor).await? {
            Some(old) if old.state_at(self.clock.now()) == KeyState::Active => {
                Err(ManagerError::PredecessorActive(*id, *predecessor))
            }
            _ => Ok(()),
        }
    }

    pub(crate) async fn rotate_as(
        &self,
        id: &KeyId,
        plan: OldKeyPlan,
        actor: Option<&Actor>,
    ) -> Result<CreatedKey, ManagerError> {
        if let OldKeyPlan::UntilFirstUse(grace) = plan {
            self.check_until_first_use(id, grace)?;
        }
        let old = self.get_as(id, actor).await?;
        if let Some(actor) = actor {
            let beyond = actor.may_grant().missing_set(old.scopes());
            if !beyond.is_empty() {
                return Err(ManagerError::CannotGrant(beyond));
            }
            // The successor copies these limits, and the actor gets its plaintext.
            restrictions::check(actor, Some(*id), ChangeKind::Rotate, old.limits())
                .map_err(ManagerError::CannotLoosen)?;
        }
        match old.state_at(self.clock.now()) {
            KeyState::Active => {}
            KeyState::Revoked => return Err(ManagerError::Revoked(*id)),
            KeyState::Expired => return Err(ManagerError::Expired(*id)),
            KeyState::Ended => return Err(ManagerError::Ended(*id)),
        }
        let now = self.now();
        let key = PlaintextKey::generate(&self.prefix);
        let record = KeyRecord::new(
            *key.id(),
            old.name().clone(),
            old.scopes().clone(),
            key.digest(),
            now,
            now + successor_lifetime(&old),
        )
        .with_rotated_from(Some(*id))
        .with_created_by(actor.map(|a| a.name().clone()))
        // The successor belongs to the same tenant: rotation never moves a key.
        .with_tenant(old.tenant().cloned())
        // The successor answers to the same limits and addresses.
        .with_limits(old.limits().clone());
        let end = match plan {
            OldKeyPlan::Overlap(None) => OldKeyEnd::Keep,
            OldKeyPlan::Overlap(Some(d)) if d.is_zero() => OldKeyEnd::Revoke(now),
            OldKeyPlan::Overlap(Some(d)) => OldKeyEnd::EndAt(whole_micros(now + d)),
            OldKeyPlan::UntilFirstUse(grace) => OldKeyEnd::UntilFirstUse(grace),
        };
        // As the store keeps it, so that the answer shows what was stored.
        let record = match end {
            OldKeyEnd::UntilFirstUse(grace) => record.with_predecessor_grace(Some(grace)),
            _ => record,
        };
        let events = self.audit(|| change_events::rotated(&old, &record, end));
        let (outcome, stored) = self
            .store
            .rotate_with_events(id, &record, end, &events)
            .await?;
        match outcome {
            RotateOutcome::Rotated(_) => {
                self.forward(&stored);
                tracing::info!(
                    old_key_id = %id,
                    key_id = %record.id(),
                    by = %ActorLog(actor),
                    "API key rotated"
                );
                Ok(CreatedKey { record, key })
            }
            RotateOutcome::NotFound => Err(ManagerError::NotFound(*id)),
            RotateOutcome::Revoked => Err(ManagerError::Revoked(*id)),
            RotateOutcome::HasLiveSuccessor(heir) => Err(ManagerError::HasLiveSuccessor(*id, heir)),
        }
    }

    /// Active keys that stop working within `within` from now (they expire, or a
    /// rotation ends them: [`KeyRecord::stops_at`]), soonest first.
    pub async fn expiring_within(&self, within: Duration) -> Result<Vec<KeyRecord>, ManagerError> {
        let now = self.clock.now();
        let horizon = now + within;
        let mut keys: Vec<_> = self
            .list()
            .await?
            .into_iter()
            .filter(|r| r.state_at(now) == KeyState::Active && r.stops_at() <= horizon)
            .collect();
        keys.sort_by_key(KeyRecord::stops_at);
        Ok(keys)
    }

    /// Dormant keys: active keys created before `since` with no recorded use at or after
    /// it (never used counts as unused). Last-used times are written periodically, so a
    /// use in the last flush period may not show yet.
    pub async fn unused_since(&self, since: SystemTime) -> Result<Vec<KeyRecord>, ManagerError> {
        let now = self.clock.now();
        Ok(self
            .list()
            .await?
            .into_iter()
            .filter(|r| {
                r.state_at(now) == KeyState::Active
                    && r.created_at() < since
                    && r.last_used_at().is_none_or(|used| used < since)
            })
            .collect())
    }

    /// Checks an explicit expiry as [`create`](Self::create) would: in the future and at
    /// most 365 days away. Returns it truncated to whole microseconds.
    ///
    /// Lets a caller (an admin API) report every invalid field of a request at once
    /// instead of the first one `create` stops at.
    pub fn check_expires_at(&self, at: SystemTime) -> Result<SystemTime, ExpiryError> {
        let now = self.now();
        let at = whole_micros(at);
        if at <= now {
            return Err(ExpiryError::NotInFuture);
        }
        if at > now + MAX_LIFETIME {
            return Err(ExpiryError::TooFar);
        }
        Ok(at)
    }

    pub(super) fn now(&self) -> SystemTime {
        whole_micros(self.clock.now())
    }
}

impl<S: KeyStoreAdmin + Clone> KeyManager<S> {
    /// The layer that accepts the keys this manager issues: it looks them up in the same
    /// store, with the same prefix and clock, records each proven use for the
    /// [background](Self::background) to write (with the `first_used` and
    /// `ended_key_used` events, given [events](crate::KeyManagerBuilder::events)), and holds
    /// keys to their limits, shared with other instances given
    /// [shared limits](crate::KeyManagerBuilder::shared_limits).
    ///
    /// Every layer it returns shares one tracker and one count of each key's limits, so
    /// call it for each router or service that needs one; set the realm, required
    /// scopes, failure throttle or trusted proxies on what it returns. For a read-only
    /// integration that tracks nothing, [`ApiKeyV2Layer::new`] takes a store alone.
    pub fn layer(&self) -> ApiKeyV2Layer {
        self.layer.clone()
    }

    /// The tracker this manager's layers record uses in: for its
    /// [`stats`](UsageTracker::stats), or a [`flush`](UsageTracker::flush) before a
    /// period ends. The [background](Self::background) runs its loop and
    /// [`shutdown`](Self::shutdown) writes its last batch.
    pub fn tracker(&self) -> &UsageTracker {
        &self.tracker
    }

    /// Rebuilds the layer from the configuration, after a 0.1 setter changed it.
    pub(super) fn rewire(&mut self) {
        if !self.tracker_given {
            self.tracker = tracker_for(&self.usage_sink, self.usage_flush, self.events.as_ref());
        }
        self.layer = layer_for(
            &self.store,
            &self.prefix,
            &self.clock,
            &self.tracker,
            self.limits.as_ref(),
        );
    }
}

impl<S: fmt::Debug> fmt::Debug for KeyManager<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyManager")
            .field("store", &self.store)
            .field("clock", &self.clock)
            .field("prefix", &self.prefix)
            .field("catalogue", &self.catalogue)
            .field("events", &self.events)
            .field("tracker", &self.tracker)
            .field("tracks_usage", &self.tracker_writes_store)
            .field("shared_limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// The tracker a manager writes last-used times with: to `sink`, every `period`, with
/// `first_used` and `ended_key_used` going where the manager's events go.
pub(super) fn tracker_for(
    sink: &Arc<dyn UsageSink>,
    period: Duration,
    events: Option<&EventLog>,
) -> UsageTracker {
    let builder = UsageTracker::builder(Arc::clone(sink)).period(period);
    match events {
        Some(events) => builder.events(events.clone()),
        None => builder,
    }
    .build()
}

/// The layer a manager's [`layer`](KeyManager::layer) clones.
pub(super) fn layer_for<S: KeyStoreAdmin + Clone>(
    store: &S,
    prefix: &KeyPrefix,
    clock: &Arc<dyn Clock>,
    tracker: &UsageTracker,
    limits: Option<&SharedLimits>,
) -> ApiKeyV2Layer {
    let layer = ApiKeyV2Layer::new(store.clone())
        .prefix(prefix.clone())
        .clock(Arc::clone(clock))
        .usage_tracker(tracker.clone());
    match limits {
        Some(limits) => layer.shared_limits(limits),
        None => layer,
    }
}

/// How long the successor of `old` lives: as long as `old` was created to live, at
/// most [`MAX_LIFETIME`] (a record written by another tool could claim more).
fn successor_lifetime(old: &KeyRecord) -> Duration {
    old.expires_at()
        .duration_since(old.created_at())
        .unwrap_or(Duration::ZERO)
        .min(MAX_LIFETIME)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::manager::{NewKey, Tenancy};
    use crate::store::memory::InMemoryKeyStore;

    fn scopes(list: &[&str]) -> Scopes {
        Scopes::new(list).unwrap()
    }

    fn person(may_grant: &[&str]) -> Actor {
        Actor::person("alice@example.com", scopes(may_grant), Tenancy::Operator).unwrap()
    }

    #[tokio::test]
    async fn an_actor_grants_only_what_its_scopes_grant_and_nothing_is_stored_otherwise() {
        let store = InMemoryKeyStore::new();
        let manager = KeyManager::new(store.clone());
        let admin_only = person(&["admin:keys"]);
        let as_admin = manager.acting_as(&admin_only);
        match as_admin
            .create(NewKey::new("export", ["reports:read"]))
            .await
        {
            Err(ManagerError::CannotGrant(beyond)) => {
                assert_eq!(beyond.to_string(), "reports:read")
            }
            other => panic!("expected CannotGrant, got {other:?}"),
        }
        match as_admin
            .create(NewKey::new(
                "root",
                ["admin:keys", "admin:keys:all", "reports:*"],
            ))
            .await
        {
            Err(ManagerError::CannotGrant(beyond)) => {
                assert_eq!(beyond.to_string(), "admin:keys:all reports:*")
            }
            other => panic!("expected CannotGrant, got {other:?}"),
        }
        assert!(store.is_empty(), "a refused create stores nothing");
        // Within the ceiling: its own scope, or nothing at all.
        as_admin
            .create(NewKey::new("peer", ["admin:keys"]))
            .await
            .unwrap();
        as_admin
            .create(NewKey::new("ping", [] as [&str; 0]))
            .await
            .unwrap();
        // Wildcards count.
        let reporter = person(&["reports:*"]);
        let made = manager
            .acting_as(&reporter)
            .create(NewKey::new("r", ["reports:read", "reports:eu:write"]))
            .await
            .unwrap();
        assert_eq!(
            made.record.created_by().unwrap().as_str(),
            "alice@example.com"
        );
    }

    #[tokio::test]
    async fn rotating_or_revoking_a_key_beyond_the_ceiling_is_refused() {
        let manager = KeyManager::new(InMemoryKeyStore::new());
        let powerful = manager
            .create(NewKey::new("billing", ["billing:write", "reports:read"]))
            .await
            .unwrap();
        let id = *powerful.record.id();
        let reader = person(&["reports:read", "admin:keys"]);
        match manager.acting_as(&reader).rotate(&id, None).await {
            Err(ManagerError::CannotGrant(beyond)) => {
                assert_eq!(beyond.to_string(), "billing:write")
            }
            other => panic!("rotating copies the scopes, so needs them: {other:?}"),
        }
        match manager.acting_as(&reader).revoke(&id).await {
            Err(ManagerError::CannotRevoke(refused, beyond)) => {
                assert_eq!(
                    (refused, beyond.to_string()),
                    (id, "billing:write".to_owned())
                );
            }
            other => panic!("expected CannotRevoke, got {other:?}"),
        }
        assert_eq!(manager.list().await.unwrap().len(), 1, "nothing rotated");
        assert!(manager.get(&id).await.unwrap().revoked_at().is_none());

        let billing = Actor::person(
            "bob@example.com",
            scopes(&["billing:*", "reports:read"]),
            Tenancy::Operator,
        )
        .unwrap();
        let heir = manager
            .acting_as(&billing)
            .rotate(&id, Some(Duration::ZERO))
            .await
            .unwrap();
        assert_eq!(heir.record.created_by(), Some(billing.name()));
        let old = manager.get(&id).await.unwrap();
        assert_eq!(
            old.revoked_by(),
            Some(billing.name()),
            "revoked by the rotation"
        );
        let revoked = manager
            .acting_as(&billing)
            .revoke(heir.record.id())
            .await
            .unwrap();
        assert_eq!(revoked.record.revoked_by(), Some(billing.name()));
        // The application acting records no actor.
        let plain = manager.create(NewKey::new("p", ["x:y"])).await.unwrap();
        assert_eq!(
            manager
                .revoke(plain.record.id())
                .await
                .unwrap()
                .record
                .revoked_by(),
            None
        );
    }

    #[tokio::test]
    async fn a_catalogue_refuses_undeclared_scopes_and_rotation_keeps_older_ones() {
        let store = InMemoryKeyStore::new();
        let legacy = KeyManager::new(store.clone())
            .create(NewKey::new("legacy", ["legacy:sync"]))
            .await
            .unwrap();
        let catalogue = ScopeCatalogue::new([("reports:read", "Read reports")]).unwrap();
        let manager = KeyManager::builder(store.clone())
            .catalogue(catalogue)
            .build();
        match manager
            .create(NewKey::new("n", ["reports:read", "legacy:sync"]))
            .await
        {
            Err(ManagerError::UndeclaredScopes(undeclared)) => {
                assert_eq!(undeclared.to_string(), "legacy:sync")
            }
            other => panic!("expected UndeclaredScopes, got {other:?}"),
        }
        // Even an actor who could grant it cannot create it.
        let root = person(&["legacy:*", "reports:*"]);
        assert!(matches!(
            manager
                .acting_as(&root)
                .create(NewKey::new("n", ["legacy:sync"]))
                .await,
            Err(ManagerError::UndeclaredScopes(_))
        ));
        let rotated = manager
            .acting_as(&root)
            .rotate(legacy.record.id(), None)
            .await
            .unwrap();
        assert_eq!(rotated.record.scopes().to_string(), "legacy:sync");
    }

    #[tokio::test]
    async fn rotation_never_revives_a_key() {
        let clock = ManualClock::starting_now();
        let manager = KeyManager::builder(InMemoryKeyStore::new())
            .clock(clock.clone())
            .build();
        let hour = Duration::from_secs(3_600);
        let short = manager
            .create(NewKey::new("short", ["a:b"]).lifetime(hour))
            .await
            .unwrap();
        let ending = manager
            .create(NewKey::new("ending", ["a:b"]))
            .await
            .unwrap();
        manager
            .rotate(ending.record.id(), Some(hour / 2))
            .await
            .unwrap();
        let revoked = manager
            .create(NewKey::new("revoked", ["a:b"]))
            .await
            .unwrap();
        manager.revoke(revoked.record.id()).await.unwrap();
        clock.advance(hour);
        let before = manager.list().await.unwrap().len();
        assert!(matches!(
            manager.rotate(short.record.id(), None).await,
            Err(ManagerError::Expired(_))
        ));
        assert!(matches!(
            manager.rotate(ending.record.id(), None).await,
            Err(ManagerError::Ended(_))
        ));
        assert!(matches!(
            manager.rotate(revoked.record.id(), None).await,
            Err(ManagerError::Revoked(_))
        ));
        assert_eq!(
            manager.list().await.unwrap().len(),
            before,
            "nothing stored"
        );
    }

    #[tokio::test]
    async fn a_successor_lives_as_long_as_the_old_key_was_created_to_live() {
        let clock = ManualClock::starting_now();
        let manager = KeyManager::builder(InMemoryKeyStore::new())
            .clock(clock.clone())
            .build();
        let hour = Duration::from_secs(3_600);
        let short = manager
            .create(NewKey::new("short", ["a:b"]).lifetime(hour))
            .await
            .unwrap();
        clock.advance(hour / 2);
        let heir = manager.rotate(short.record.id(), None).await.unwrap();
        assert_eq!(
            heir.record
                .expires_at()
                .duration_since(heir.record.created_at())
                .unwrap(),
            hour,
            "a one-hour key rotates into a one-hour key, not a 365-day one"
        );
        assert_eq!(heir.record.created_at(), whole_micros(clock.now()));
        let long = manager.create(NewKey::new("long", ["a:b"])).await.unwrap();
        let heir = manager.rotate(long.record.id(), None).await.unwrap();
        assert_eq!(
            heir.record
                .expires_at()
                .duration_since(heir.record.created_at())
                .unwrap(),
            MAX_LIFETIME
        );
    }

    #[tokio::test]
    async fn a_key_with_a_live_successor_cannot_be_rotated_again() {
        let clock = ManualClock::starting_now();
        let store = InMemoryKeyStore::new();
        let manager = KeyManager::builder(store.clone())
            .clock(clock.clone())
            .build();
        let hour = Duration::from_secs(3_600);
        let old = manager
            .create(NewKey::new("k", ["a:b"]).lifetime(4 * hour))
            .await
            .unwrap();
        let id = *old.record.id();
        let heir = manager.rotate(&id, None).await.unwrap();
        let heir_id = *heir.record.id();
        for overlap in [None, Some(Duration::ZERO), Some(hour)] {
            match manager.rotate(&id, overlap).await {
                Err(ManagerError::HasLiveSuccessor(key, successor)) => {
                    assert_eq!((key, successor), (id, heir_id))
                }
                other => panic!("expected HasLiveSuccessor, got {other:?}"),
            }
        }
        assert_eq!(store.len(), 2, "nothing stored");
        assert!(manager.get(&id).await.unwrap().revoked_at().is_none());
        // The successor itself may rotate; its own heir then blocks it in turn.
        let grandchild = manager.rotate(&heir_id, None).await.unwrap();
        assert!(matches!(
            manager.rotate(&heir_id, None).await,
            Err(ManagerError::HasLiveSuccessor(_, g)) if g == *grandchild.record.id()
        ));
        // Once the successor is revoked (its key was lost), the old key may rotate again.
        manager.revoke(&heir_id).await.unwrap();
        let again = manager.rotate(&id, None).await.unwrap();
        assert_eq!(again.record.rotated_from(), Some(&id));
    }

    #[tokio::test]
    async fn a_new_key_is_checked_once_when_it_is_made() {
        let manager = KeyManager::new(InMemoryKeyStore::new());
        assert!(matches!(
            manager.create(NewKey::new("a\u{202E}b", ["x:y"])).await,
            Err(ManagerError::Name(KeyNameError::HiddenCharacter(
                '\u{202E}'
            )))
        ));
        assert!(matches!(
            manager.create(NewKey::new("a", ["X"])).await,
            Err(ManagerError::Scope(_))
        ));
        let parts = NewKey::from_parts(KeyName::new("a").unwrap(), scopes(&["x:y"]));
        assert_eq!(
            manager.create(parts).await.unwrap().record.name().as_str(),
            "a"
        );
    }

    #[tokio::test]
    async fn expiring_within_counts_the_end_a_rotation_scheduled() {
        let clock = ManualClock::starting_now();
        let manager = KeyManager::builder(InMemoryKeyStore::new())
            .clock(clock.clone())
            .build();
        let day = Duration::from_secs(86_400);
        let short = manager
            .create(NewKey::new("short", ["a:b"]).lifetime(10 * day))
            .await
            .unwrap();
        let rotated = manager
            .create(NewKey::new("rotated", ["a:b"]))
            .await
            .unwrap();
        let heir = manager
            .rotate(rotated.record.id(), Some(2 * day))
            .await
            .unwrap();
        let ids = |keys: Vec<KeyRecord>| keys.iter().map(|r| *r.id()).collect::<Vec<_>>();
        assert_eq!(
            ids(manager.expiring_within(30 * day).await.unwrap()),
            [*rotated.record.id(), *short.record.id()],
            "soonest end first; the new key is not expiring"
        );
        assert!(!ids(manager.expiring_within(30 * day).await.unwrap()).contains(heir.record.id()));
        clock.advance(2 * day);
        assert_eq!(
            ids(manager.expiring_within(30 * day).await.unwrap()),
            [*short.record.id()],
            "an ended key is no longer active"
        );
    }
}
