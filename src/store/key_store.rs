//! The contract of a key store: [`KeyStore`], [`KeyStoreAdmin`], what they answer and how they fail, as [`store`](super) documents.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::error::StoreError;
use crate::event::{KeyEvent, NewEvent};
use crate::key::KeyId;
use crate::page::Page;
use crate::record::{ActorName, KeyRecord, KeyState};
use crate::store::key_query::KeyQuery;
use crate::store::revocation::{self, Revocation};

/// The lookup the middleware needs: a record by key id.
///
/// Implement [`lookup`](KeyStore::lookup) for your own backend. Stores that hold their
/// records in memory also implement [`lookup_ready`](KeyStore::lookup_ready), which
/// saves the middleware a boxed future per request.
#[async_trait]
pub trait KeyStore: fmt::Debug + Send + Sync + 'static {
    /// The record for `id`, or `None` if there is none.
    ///
    /// Return revoked and expired records too: the middleware decides, and says
    /// "revoked" or "expired" only to a caller who proved the secret. Return an error,
    /// never `Ok(None)`, when the backend cannot answer.
    async fn lookup(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError>;

    /// The same answer as [`lookup`](KeyStore::lookup), given at once, if this store can
    /// answer without waiting (an in-memory map, a cache hit); `None` to say "ask
    /// `lookup`". The default always says `None`.
    ///
    /// The middleware calls this first, so a store that can answer here costs no
    /// allocation and no task wake-up on the request path.
    fn lookup_ready(&self, id: &KeyId) -> Option<Result<Option<KeyRecord>, StoreError>> {
        let _ = id;
        None
    }
}

/// What happens to the old key when a key is rotated.
///
/// `#[non_exhaustive]`: rotation may learn new ends. A store that meets one it does not
/// know should answer with an error rather than guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OldKeyEnd {
    /// It keeps working until it is revoked (the default rotation).
    Keep,
    /// It ends at this time: the store sets its `ends_at`, unless the key already ends or
    /// expires by then (a rotation never lengthens a key's life). `expires_at` is kept.
    EndAt(SystemTime),
    /// It is revoked at once (a leaked key), exactly as [`KeyStoreAdmin::revoke`] does;
    /// the time is what `revoked_at` records, not when the revocation takes effect, and
    /// the new key's `created_by` is what `revoked_by` records.
    Revoke(SystemTime),
    /// It keeps working until this long after the new key's first proven use, then
    /// ends (DESIGN §11, `until_first_use`). The store stores the new record with this
    /// [`predecessor_grace`](KeyRecord::predecessor_grace), whatever `new` says, and
    /// leaves the old key as it is; when it later records the new key's first use
    /// ([`UsageSink::record_usage_batch`](crate::UsageSink::record_usage_batch)), it
    /// sets the old key's `ends_at` to that use plus the grace, as
    /// [`EndAt`](Self::EndAt) would, in the same write as the use, and reports it in
    /// [`UsageOutcome::ended`](crate::usage::UsageOutcome::ended). A new key that is never
    /// used leaves the old one to its own end.
    UntilFirstUse(Duration),
}

/// The result of [`KeyStoreAdmin::rotate`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RotateOutcome {
    /// The new key was stored; this is the old record as it now stands.
    Rotated(KeyRecord),
    /// There is no key with the old id; nothing was stored.
    NotFound,
    /// The old key is revoked; nothing was stored.
    Revoked,
    /// The old key already has a live successor, this one: a record whose
    /// `rotated_from` is the old key and that is active at the new record's
    /// `created_at`. Nothing was stored. A key rotates into one heir at a time, so that a
    /// leaked copy cannot mint a second one.
    HasLiveSuccessor(KeyId),
}

/// The management operations behind [`KeyManager`](crate::KeyManager).
#[async_trait]
pub trait KeyStoreAdmin: KeyStore {
    /// Stores a new record. An existing id gives [`StoreError::Duplicate`].
    async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError>;

    /// One record, fresh from the backend (bypassing any cache).
    async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.lookup(id).await
    }

    /// Every record, newest (`created_at`) first.
    async fn list(&self) -> Result<Vec<KeyRecord>, StoreError>;

    /// One page of the records `query` asks for: filtered, searched and sorted as it
    /// says, starting after its position, with the next page's cursor if more follow
    /// (see [`KeyQuery`] for the order and the rules).
    ///
    /// The default reads [`list`](Self::list) and pages it in memory
    /// ([`KeyQuery::page_from`]), so a store written before paging keeps compiling and
    /// answers correctly; override it to page in the backend when there are many keys.
    /// The [conformance suite](crate::store#conformance) checks either way.
    async fn list_page(&self, query: &KeyQuery) -> Result<Page<KeyRecord>, StoreError> {
        Ok(query.page_from(self.list().await?))
    }

    /// Revokes `id`, recording `at` (the application's clock) as its `revoked_at` and
    /// `by` (who revoked it: an admin key's id or a person's name; `None` when the
    /// application did) as its `revoked_by`, in one write.
    ///
    /// The revocation takes effect as soon as it is stored, whatever `at` is: a key with
    /// any `revoked_at` is refused. Store `at` as given, never the backend's own clock.
    /// Revoking a revoked key keeps its first revocation, time and actor. Returns the
    /// record as it now stands, or `None` if there is no such key. The default
    /// [`revoke_with_heirs`](Self::revoke_with_heirs) revokes through this method.
    async fn revoke(
        &self,
        id: &KeyId,
        at: SystemTime,
        by: Option<&ActorName>,
    ) -> Result<Option<KeyRecord>, StoreError>;

    /// Atomically: if `old` exists, is not revoked and has no live successor, stores
    /// `new` and ends `old` as `end` says. Otherwise stores nothing. For
    /// [`OldKeyEnd::Revoke`], the old key's `revoked_by` becomes `new`'s `created_by`:
    /// whoever rotated it.
    ///
    /// A live successor is a record whose `rotated_from` is `old` and that is active
    /// ([`KeyState::Active`](crate::record::KeyState::Active)) at `new.created_at()`, the
    /// rotating application's now: then answer [`RotateOutcome::HasLiveSuccessor`].
    /// The check and the insert must be one step: two concurrent rotations of one key
    /// store exactly one successor (the [conformance suite](crate::store#conformance)
    /// checks it).
    ///
    /// For [`OldKeyEnd::EndAt`], `ends_at` becomes that time only if it is before both
    /// the old key's current `ends_at` (if any) and its `expires_at`; `expires_at` never
    /// changes. For [`OldKeyEnd::UntilFirstUse`], see there: the end comes with the
    /// usage write of the new key's first use.
    async fn rotate(
        &self,
        old: &KeyId,
        new: &KeyRecord,
        end: OldKeyEnd,
    ) -> Result<RotateOutcome, StoreError>;

    /// Stores `record` as [`insert`](Self::insert) does and `events` with it, in one
    /// write: both or neither, whatever fails and whenever the caller gives up
    /// (DESIGN §10: no change without its event). Returns the events as stored.
    ///
    /// [`KeyManager`](crate::KeyManager) creates keys through this method, with the
    /// `created` event when it keeps an audit trail
    /// ([`KeyManagerBuilder::events`](crate::KeyManagerBuilder::events)) and no events otherwise. The
    /// events go where [`EventStore`](crate::event::EventStore) keeps them, with the next ids.
    ///
    /// The default inserts with `insert` when `events` is empty, and otherwise refuses
    /// with [`StoreError::Unsupported`], storing nothing: a store written before
    /// changes carried their events keeps working without an audit trail, and refuses
    /// the changes it could not record. The [event conformance
    /// suite](crate::store#conformance) fails until it is implemented.
    async fn insert_with_events(
        &self,
        record: &KeyRecord,
        events: &[NewEvent],
    ) -> Result<Vec<KeyEvent>, StoreError> {
        if !events.is_empty() {
            return Err(StoreError::Unsupported("KeyStoreAdmin::insert_with_events"));
        }
        self.insert(record).await.map(|()| Vec::new())
    }

    /// Rotates as [`rotate`](Self::rotate) does and stores `events` with the rotation,
    /// in one write, if and only if it answers [`RotateOutcome::Rotated`]: a refused
    /// rotation stores no event. Returns the outcome and the events as stored.
    ///
    /// The default is as for [`insert_with_events`](Self::insert_with_events): `rotate`
    /// when `events` is empty, [`StoreError::Unsupported`] otherwise.
    async fn rotate_with_events(
        &self,
        old: &KeyId,
        new: &KeyRecord,
        end: OldKeyEnd,
        events: &[NewEvent],
    ) -> Result<(RotateOutcome, Vec<KeyEvent>), StoreError> {
        if !events.is_empty() {
            return Err(StoreError::Unsupported("KeyStoreAdmin::rotate_with_events"));
        }
        Ok((self.rotate(old, new, end).await?, Vec::new()))
    }

    /// The keys that revoking `id` at `at` would revoke with it, if `id` still works
    /// then: its heirs (records whose `rotated_from` is `id` and whose `created_by` is
    /// `id` itself: keys it minted by rotating itself, and theirs in turn, at any
    /// depth) that are active at `at`, oldest first (by `created_at`, then id). An heir
    /// that no longer works is looked through. See [`Revocation`] and DESIGN §10.
    ///
    /// The default scans [`list`](Self::list); override it to ask the backend.
    async fn live_heirs(&self, id: &KeyId, at: SystemTime) -> Result<Vec<KeyRecord>, StoreError> {
        Ok(revocation::live_heirs_in(&self.list().await?, id, at))
    }

    /// Revokes `id` as [`revoke`](Self::revoke) does and, if the key was active
    /// at `at` until now, its [live heirs](Self::live_heirs) with it, as of `at` and
    /// `by` too; stores `events` for the key and, for each heir, each of them told of
    /// the heir ([`NewEvent::for_heir`]): all in one write (DESIGN §10).
    ///
    /// A key that was revoked already keeps its first revocation, and nothing is
    /// stored: [`Revocation::repeated`]. A key that had expired or ended (by its
    /// rotation) is revoked, but its heirs are not: the integration's new key survives
    /// when the old one is tidied up. Returns `None` if there is no such key.
    ///
    /// The heirs must be found in the same step as they are revoked, so that an heir
    /// rotating itself meanwhile cannot leave a live key behind: a store that cannot
    /// lock, search again until no live heir is left. [`KeyManager`](crate::KeyManager)
    /// revokes through this method; the [conformance suite](crate::store#conformance)
    /// checks it.
    ///
    /// The default, for stores written before heirs were revoked, refuses with
    /// [`StoreError::Unsupported`] when `events` is not empty; otherwise it reads the key,
    /// revokes it with `revoke`, and revokes each live heir the same way until
    /// [`live_heirs`](Self::live_heirs) finds none: not one step, but no live heir is
    /// left once it returns. Override it to do it all in one transaction.
    async fn revoke_with_heirs(
        &self,
        id: &KeyId,
        at: SystemTime,
        by: Option<&ActorName>,
        events: &[NewEvent],
    ) -> Result<Option<Revocation>, StoreError> {
        if !events.is_empty() {
            return Err(StoreError::Unsupported("KeyStoreAdmin::revoke_with_heirs"));
        }
        let Some(before) = self.get(id).await? else {
            return Ok(None);
        };
        let Some(record) = self.revoke(id, at, by).await? else {
            return Ok(None);
        };
        if before.revoked_at().is_some() {
            return Ok(Some(Revocation::repeated(record)));
        }
        let mut heirs = Vec::new();
        if before.state_at(at) == KeyState::Active {
            // Again until none is left: an heir may rotate itself while this runs. Each
            // heir once, so that a store that keeps one active cannot loop this forever.
            let mut done = std::collections::HashSet::new();
            loop {
                let live: Vec<KeyRecord> = self
                    .live_heirs(id, at)
                    .await?
                    .into_iter()
                    .filter(|heir| done.insert(*heir.id()))
                    .collect();
                if live.is_empty() {
                    break;
                }
                for heir in live {
                    if let Some(revoked) = self.revoke(heir.id(), at, by).await? {
                        heirs.push(revoked);
                    }
                }
            }
        }
        Ok(Some(Revocation::first(record).with_heirs(heirs)))
    }
}

#[async_trait]
impl<T: KeyStore + ?Sized> KeyStore for Arc<T> {
    async fn lookup(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        (**self).lookup(id).await
    }

    fn lookup_ready(&self, id: &KeyId) -> Option<Result<Option<KeyRecord>, StoreError>> {
        (**self).lookup_ready(id)
    }
}

#[async_trait]
impl<T: KeyStoreAdmin + ?Sized> KeyStoreAdmin for Arc<T> {
    async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError> {
        (**self).insert(record).await
    }

    async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        (**self).get(id).await
    }

    async fn list(&self) -> Result<Vec<KeyRecord>, StoreError> {
        (**self).list().await
    }

    async fn list_page(&self, query: &KeyQuery) -> Result<Page<KeyRecord>, StoreError> {
        (**self).list_page(query).await
    }

    async fn revoke(
        &self,
        id: &KeyId,
        at: SystemTime,
        by: Option<&ActorName>,
    ) -> Result<Option<KeyRecord>, StoreError> {
        (**self).revoke(id, at, by).await
    }

    async fn rotate(
        &self,
        old: &KeyId,
        new: &KeyRecord,
        end: OldKeyEnd,
    ) -> Result<RotateOutcome, StoreError> {
        (**self).rotate(old, new, end).await
    }

    async fn insert_with_events(
        &self,
        record: &KeyRecord,
        events: &[NewEvent],
    ) -> Result<Vec<KeyEvent>, StoreError> {
        (**self).insert_with_events(record, events).await
    }

    async fn rotate_with_events(
        &self,
        old: &KeyId,
        new: &KeyRecord,
        end: OldKeyEnd,
        events: &[NewEvent],
    ) -> Result<(RotateOutcome, Vec<KeyEvent>), StoreError> {
        (**self).rotate_with_events(old, new, end, events).await
    }

    async fn live_heirs(&self, id: &KeyId, at: SystemTime) -> Result<Vec<KeyRecord>, StoreError> {
        (**self).live_heirs(id, at).await
    }

    async fn revoke_with_heirs(
        &self,
        id: &KeyId,
        at: SystemTime,
        by: Option<&ActorName>,
        events: &[NewEvent],
    ) -> Result<Option<Revocation>, StoreError> {
        (**self).revoke_with_heirs(id, at, by, events).await
    }
}
