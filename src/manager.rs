//! [`KeyManager`]: creating, listing, revoking and rotating keys.
//!
//! ```
//! use std::time::Duration;
//! use tower_apikey::{InMemoryKeyStore, KeyManager, NewKey};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let manager = KeyManager::new(InMemoryKeyStore::new());
//!
//! // Create: the plaintext is in `created.key`, once. Store only what `record` holds.
//! let created = manager.create(NewKey::new("billing-sync", ["reports:read"])).await?;
//! let old_id = *created.record.id();
//!
//! // Rotate: a new key with the same name and scopes; the old one keeps working
//! // until it is revoked, so the integration can switch and verify first.
//! let rotated = manager.rotate(&old_id, None).await?;
//! assert_eq!(rotated.record.rotated_from(), Some(&old_id));
//!
//! // Revoke the old key once the new one shows a last-used time.
//! manager.revoke(&old_id).await?;
//! # Ok::<(), tower_apikey::ManagerError>(())
//! # }).unwrap();
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::middleware::layer::ApiKeyV2Layer;
use crate::store::{KeyStoreAdmin, OldKeyEnd, RotateOutcome, StoreError};
use crate::usage::{UsageSink, UsageTracker};
use crate::{
    Clock, KeyId, KeyName, KeyPrefix, KeyRecord, KeyState, NameError, PlaintextKey, ScopeError,
    Scopes, SystemClock,
};

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
    Name(#[from] NameError),
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
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a new key should be: a name, scopes and, optionally, an earlier expiry.
#[derive(Debug, Clone)]
pub struct NewKey {
    name: String,
    scopes: Vec<String>,
    expiry: Option<Expiry>,
}

#[derive(Debug, Clone, Copy)]
enum Expiry {
    At(SystemTime),
    After(Duration),
}

impl NewKey {
    /// A key named `name` holding `scopes`, valid for 365 days. Both are checked by
    /// [`KeyManager::create`].
    pub fn new<I>(name: impl Into<String>, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self {
            name: name.into(),
            scopes: scopes.into_iter().map(Into::into).collect(),
            expiry: None,
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

/// Creates, lists, revokes and rotates keys in a [`KeyStoreAdmin`].
///
/// Times it writes are truncated to whole microseconds, the finest precision PostgreSQL
/// keeps, so a record reads back from any shipped store exactly as it was written.
#[derive(Clone)]
pub struct KeyManager<S> {
    store: S,
    clock: Arc<dyn Clock>,
    prefix: KeyPrefix,
}

impl<S: KeyStoreAdmin> KeyManager<S> {
    /// A manager over `store` with the system clock and prefix `mkc`.
    pub fn new(store: S) -> Self {
        Self {
            store,
            clock: Arc::new(SystemClock),
            prefix: KeyPrefix::default(),
        }
    }

    /// Uses `clock` for creation, expiry and revocation times.
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Issues keys with `prefix`; give the middleware the same one.
    pub fn with_prefix(mut self, prefix: KeyPrefix) -> Self {
        self.prefix = prefix;
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Creates a key. The plaintext is in the result, once.
    pub async fn create(&self, new: NewKey) -> Result<CreatedKey, ManagerError> {
        let name = KeyName::new(&new.name)?;
        let scopes = Scopes::new(&new.scopes)?;
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
        let record = KeyRecord::new(*key.id(), name, scopes, key.digest(), now, expires_at);
        self.store.insert(&record).await?;
        tracing::info!(key_id = %record.id(), name = %record.name(), "API key created");
        Ok(CreatedKey { record, key })
    }

    /// One key's record.
    pub async fn get(&self, id: &KeyId) -> Result<KeyRecord, ManagerError> {
        self.store.get(id).await?.ok_or(ManagerError::NotFound(*id))
    }

    /// Every key, newest first.
    pub async fn list(&self) -> Result<Vec<KeyRecord>, ManagerError> {
        Ok(self.store.list().await?)
    }

    /// Revokes a key at once. Revoking a revoked key succeeds and keeps the first time.
    ///
    /// The key is refused from the moment the store has the revocation, on every clock:
    /// the time recorded (this manager's clock) is for people, not a condition.
    pub async fn revoke(&self, id: &KeyId) -> Result<KeyRecord, ManagerError> {
        let now = self.now();
        let record = self
            .store
            .revoke(id, now)
            .await?
            .ok_or(ManagerError::NotFound(*id))?;
        // A repeated revocation keeps the first time: log only the one that took effect.
        if record.revoked_at() == Some(now) {
            tracing::info!(key_id = %id, "API key revoked");
        }
        Ok(record)
    }

    /// Rotates a key: a new key with the same name and scopes and a fresh 365-day
    /// lifetime, recording `rotated_from`.
    ///
    /// - `overlap: None` leaves the old key working until it is revoked, so the
    ///   integration can switch and verify (by the new key's last-used time) first.
    /// - `Some(d)` ends the old key at now + `d`: its `ends_at` is set (unless it ends or
    ///   expires sooner anyway) and its `expires_at` is kept. The key is refused at and
    ///   after that time, as "ended by rotation".
    /// - `Some(Duration::ZERO)` revokes the old key at once, for a leaked key.
    ///
    /// An expired key can be rotated; a revoked one cannot.
    pub async fn rotate(
        &self,
        id: &KeyId,
        overlap: Option<Duration>,
    ) -> Result<CreatedKey, ManagerError> {
        let old = self.get(id).await?;
        if old.revoked_at().is_some() {
            return Err(ManagerError::Revoked(*id));
        }
        let now = self.now();
        let key = PlaintextKey::generate(&self.prefix);
        let record = KeyRecord::new(
            *key.id(),
            old.name().clone(),
            old.scopes().clone(),
            key.digest(),
            now,
            now + MAX_LIFETIME,
        )
        .with_rotated_from(Some(*id));
        let end = match overlap {
            None => OldKeyEnd::Keep,
            Some(d) if d.is_zero() => OldKeyEnd::Revoke(now),
            Some(d) => OldKeyEnd::EndAt(whole_micros(now + d)),
        };
        match self.store.rotate(id, &record, end).await? {
            RotateOutcome::Rotated(_) => {
                tracing::info!(old_key_id = %id, key_id = %record.id(), "API key rotated");
                Ok(CreatedKey { record, key })
            }
            RotateOutcome::NotFound => Err(ManagerError::NotFound(*id)),
            RotateOutcome::Revoked => Err(ManagerError::Revoked(*id)),
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
    /// Lets a caller (the admin router) report every invalid field of a request at once
    /// instead of the first one `create` stops at.
    pub(crate) fn check_expires_at(&self, at: SystemTime) -> Result<SystemTime, ExpiryError> {
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

    fn now(&self) -> SystemTime {
        whole_micros(self.clock.now())
    }
}

impl<S: KeyStoreAdmin + Clone> KeyManager<S> {
    /// A layer that accepts the keys this manager issues: it looks them up in the same
    /// store, with the same prefix and clock. Without last-used tracking; see
    /// [`layer_with_tracker`](Self::layer_with_tracker) for the layer most applications
    /// want.
    pub fn layer(&self) -> ApiKeyV2Layer {
        ApiKeyV2Layer::new(self.store.clone())
            .prefix(self.prefix.clone())
            .clock(Arc::clone(&self.clock))
    }
}

impl<S: KeyStoreAdmin + UsageSink + Clone> KeyManager<S> {
    /// [`layer`](Self::layer) with last-used tracking wired to this manager's store, and
    /// the tracker behind it (default period, 5 minutes).
    ///
    /// Spawn the tracker's [`run`](UsageTracker::run), and call its
    /// [`shutdown`](UsageTracker::shutdown) after the server stops, so that the uses of
    /// the last minutes are written:
    ///
    /// ```
    /// use tower_apikey::{InMemoryKeyStore, KeyManager};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let manager = KeyManager::new(InMemoryKeyStore::new());
    /// let (layer, tracker) = manager.layer_with_tracker();
    /// let flushing = tokio::spawn(tracker.run());
    /// // … serve with `layer`, until a shutdown signal …
    /// tracker.shutdown().await?; // writes what is pending; `run` then returns
    /// flushing.await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn layer_with_tracker(&self) -> (ApiKeyV2Layer, UsageTracker) {
        let tracker = UsageTracker::new(self.store.clone());
        (self.layer().usage_tracker(tracker.clone()), tracker)
    }
}

impl<S: fmt::Debug> fmt::Debug for KeyManager<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyManager")
            .field("store", &self.store)
            .field("clock", &self.clock)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// Truncates to whole microseconds.
fn whole_micros(time: SystemTime) -> SystemTime {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => UNIX_EPOCH + Duration::new(since.as_secs(), since.subsec_micros() * 1_000),
        Err(_) => time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InMemoryKeyStore, ManualClock, NewKey};

    #[tokio::test]
    async fn expiring_within_counts_the_end_a_rotation_scheduled() {
        let clock = ManualClock::starting_now();
        let manager = KeyManager::new(InMemoryKeyStore::new()).with_clock(clock.clone());
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
