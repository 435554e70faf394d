//! The embedded store: records in a lock-free concurrent map.

mod counts;
mod events;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::event::{KeyEvent, NewEvent};
use crate::key::KeyId;
use crate::page::Page;
use crate::record::{ActorName, KeyRecord, KeyState, TenantId};
use crate::store::key_query::KeyQuery;
use crate::store::revocation::live_heirs_in;
use crate::store::{
    KeyStore, KeyStoreAdmin, KeyStoreUpdate, KeyUpdate, OldKeyEnd, Revocation, RotateOutcome,
};
use crate::time::whole_micros;
use crate::usage::{
    KeyUsage, RotationEnd, UsageBatch, UsageCounts, UsageOutcome, UsageSink, UsageSinkError,
};

/// Keys held in process memory: the default store, and the one for tests and single
/// instances.
///
/// Clones are handles to the same records. Lookups never take a lock (the map is
/// [`papaya`]'s lock-free hash map), so concurrent requests never queue behind each
/// other or behind a write; management writes are serialised among themselves so that
/// a rotation is atomic, and each change stores its events under the same lock, in one
/// step without an await point, so that no change is ever kept without its event.
/// Revocation takes effect at once for every request that looks the key up afterwards.
/// Nothing is persisted: a restart forgets every key.
///
/// ```
/// use tower_apikey::{InMemoryKeyStore, KeyManager, NewKey};
///
/// # tokio_test_block_on(async {
/// let store = InMemoryKeyStore::new();
/// let manager = KeyManager::new(store.clone());
/// let created = manager.create(NewKey::new("billing", ["reports:read"])).await?;
/// assert_eq!(store.len(), 1);
/// # Ok::<(), tower_apikey::ManagerError>(())
/// # }).unwrap();
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f) }
/// ```
#[derive(Clone, Default)]
pub struct InMemoryKeyStore {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    keys: papaya::HashMap<KeyId, KeyRecord, foldhash::fast::RandomState>,
    /// Serialises management writes (never lookups), so that a rotation's check,
    /// insert and update happen as one step.
    writes: Mutex<()>,
    /// The audit trail ([`EventStore`](crate::event::EventStore)), bounded.
    events: events::Events,
    /// Daily request counts, from the usage writes.
    counts: counts::Counts,
}

impl InMemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many records the store holds, revoked and expired ones included.
    pub fn len(&self) -> usize {
        self.inner.keys.len()
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.inner.keys.is_empty()
    }

    fn write_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // The guarded data is `()`, so a panic while holding the lock cannot have left
        // anything half-written: recover from poisoning.
        self.inner
            .writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The tenant of `id`'s key, which the events of the key carry.
    fn tenant_of(&self, id: &KeyId) -> Option<TenantId> {
        self.inner
            .keys
            .pin()
            .get(id)
            .and_then(|r| r.tenant().cloned())
    }

    /// Applies `update` to the record of `id`, returning the new record.
    fn update_record(
        &self,
        id: &KeyId,
        update: impl Fn(&KeyRecord) -> KeyRecord,
    ) -> Option<KeyRecord> {
        self.inner.keys.pin().update(*id, update).cloned()
    }
}

#[async_trait]
impl UsageSink for InMemoryKeyStore {
    /// Raises each record's `last_used_at`, never lowering it; unknown ids are skipped.
    async fn record_usage(&self, batch: &[KeyUsage]) -> Result<(), UsageSinkError> {
        // Counts are kept by `record_usage_batch`, whose id makes a retry count once.
        self.raise_last_used(batch, None);
        Ok(())
    }

    /// As `record_usage`, reporting the keys whose `last_used_at` was unset, and
    /// storing their events with the write when the batch wants them.
    async fn record_usage_batch(
        &self,
        batch: &UsageBatch<'_>,
    ) -> Result<UsageOutcome, UsageSinkError> {
        let (first, ended, events) = self.raise_last_used(batch.usages(), Some(batch));
        // A retried batch (same id) adds its counts once.
        self.inner.counts.add(Some(batch.id()), batch.usages());
        Ok(UsageOutcome::new(first)
            .with_ended(ended)
            .with_events(events))
    }

    fn counts(&self) -> Option<&dyn UsageCounts> {
        Some(self)
    }
}

impl InMemoryKeyStore {
    /// Raises `last_used_at` of each key in `batch` and puts its newer addresses in front
    /// of its `recent_ips`; returns the keys that had no `last_used_at`, and the ends
    /// their first uses set for the keys they replaced (`until_first_use`). Under the
    /// write lock, so that of two concurrent writes only one sees a key's first use,
    /// and the end is applied with it, and their events (if `events` wants them) are
    /// stored in the same step.
    fn raise_last_used(
        &self,
        batch: &[KeyUsage],
        events: Option<&UsageBatch<'_>>,
    ) -> (Vec<KeyId>, Vec<RotationEnd>, Vec<KeyEvent>) {
        let _write = self.write_lock();
        let keys = self.inner.keys.pin();
        let mut first = Vec::new();
        let mut firsts = Vec::new();
        for usage in batch {
            let at = usage.last_used_at;
            // Skip the copy-on-write when the stored time is already as new.
            let newer = |r: &KeyRecord| r.last_used_at().is_none_or(|last| last < at);
            let ips = usage.recent_ips();
            let Some(record) = keys.get(&usage.key_id) else {
                continue;
            };
            if record.last_used_at().is_none() {
                first.push(usage.key_id);
                if let (Some(old), Some(grace)) =
                    (record.rotated_from(), record.predecessor_grace())
                {
                    firsts.push((*old, usage.key_id, at + grace));
                }
            }
            if newer(record) || !ips.is_empty() {
                keys.update(usage.key_id, |r| {
                    let mut r = r.clone();
                    if newer(&r) {
                        r = r.with_last_used_at(Some(at));
                    }
                    if !ips.is_empty() {
                        let merged = ips.and_older(r.recent_ips());
                        r = r.with_recent_ips(merged);
                    }
                    r
                });
            }
        }
        // After the loop: the old key may be in this batch too, and its own use must
        // not overwrite the end.
        let ended = firsts
            .into_iter()
            .filter_map(|(old, successor, end)| {
                let end = whole_micros(end);
                let ends = |r: &KeyRecord| r.revoked_at().is_none() && end < r.stops_at();
                if !keys.get(&old).is_some_and(ends) {
                    return None;
                }
                keys.update(old, |r| {
                    if ends(r) {
                        r.clone().with_ends_at(Some(end))
                    } else {
                        r.clone()
                    }
                });
                Some(RotationEnd::new(old, successor, end))
            })
            .collect::<Vec<_>>();
        let stored = match events {
            Some(batch) if batch.wants_events() => self
                .inner
                .events
                .push_all(&batch.events_of(&first, &ended), |id| self.tenant_of(id)),
            _ => Vec::new(),
        };
        (first, ended, stored)
    }
}

impl fmt::Debug for InMemoryKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryKeyStore")
            .field("keys", &self.len())
            .finish()
    }
}

#[async_trait]
impl KeyStore for InMemoryKeyStore {
    async fn lookup(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self.inner.keys.pin().get(id).cloned())
    }

    fn lookup_ready(&self, id: &KeyId) -> Option<Result<Option<KeyRecord>, StoreError>> {
        Some(Ok(self.inner.keys.pin().get(id).cloned()))
    }
}

#[async_trait]
impl KeyStoreAdmin for InMemoryKeyStore {
    async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError> {
        let _write = self.write_lock();
        self.insert_locked(record)
    }

    async fn list(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let mut records: Vec<KeyRecord> = self.inner.keys.pin().values().cloned().collect();
        records.sort_by(|a, b| {
            b.created_at()
                .cmp(&a.created_at())
                .then_with(|| a.id().cmp(b.id()))
        });
        Ok(records)
    }

    /// One pass over the map, without copying it: only the page is cloned.
    async fn list_page(&self, query: &KeyQuery) -> Result<Page<KeyRecord>, StoreError> {
        let keys = self.inner.keys.pin();
        let page = query.page_from(keys.values());
        Ok(Page::new(
            page.items.into_iter().cloned().collect(),
            page.next,
        ))
    }

    async fn revoke(
        &self,
        id: &KeyId,
        at: SystemTime,
        by: Option<&ActorName>,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let _write = self.write_lock();
        Ok(self.revoke_locked(id, at, by).map(|(_, after)| after))
    }

    async fn rotate(
        &self,
        old: &KeyId,
        new: &KeyRecord,
        end: OldKeyEnd,
    ) -> Result<RotateOutcome, StoreError> {
        let _write = self.write_lock();
        self.rotate_locked(old, new, end)
    }

    async fn insert_with_events(
        &self,
        record: &KeyRecord,
        events: &[NewEvent],
    ) -> Result<Vec<KeyEvent>, StoreError> {
        let _write = self.write_lock();
        self.insert_locked(record)?;
        Ok(self.inner.events.push_all(events, |id| self.tenant_of(id)))
    }

    async fn rotate_with_events(
        &self,
        old: &KeyId,
        new: &KeyRecord,
        end: OldKeyEnd,
        events: &[NewEvent],
    ) -> Result<(RotateOutcome, Vec<KeyEvent>), StoreError> {
        let _write = self.write_lock();
        let outcome = self.rotate_locked(old, new, end)?;
        let stored = match outcome {
            RotateOutcome::Rotated(_) => {
                self.inner.events.push_all(events, |id| self.tenant_of(id))
            }
            _ => Vec::new(),
        };
        Ok((outcome, stored))
    }

    /// One pass over the map.
    async fn live_heirs(&self, id: &KeyId, at: SystemTime) -> Result<Vec<KeyRecord>, StoreError> {
        Ok(live_heirs_in(self.inner.keys.pin().values(), id, at))
    }

    /// Under the write lock: no heir can rotate itself between the search and the
    /// revocations, and the events are stored in the same step.
    async fn revoke_with_heirs(
        &self,
        id: &KeyId,
        at: SystemTime,
        by: Option<&ActorName>,
        events: &[NewEvent],
    ) -> Result<Option<Revocation>, StoreError> {
        let _write = self.write_lock();
        let Some((before, record)) = self.revoke_locked(id, at, by) else {
            return Ok(None);
        };
        if before.revoked_at().is_some() {
            return Ok(Some(Revocation::repeated(record)));
        }
        let heirs = if before.state_at(at) == KeyState::Active {
            live_heirs_in(self.inner.keys.pin().values(), id, at)
                .iter()
                .filter_map(|heir| self.revoke_locked(heir.id(), at, by))
                .map(|(_, after)| after)
                .collect()
        } else {
            Vec::new()
        };
        let heir_events: Vec<NewEvent> = heirs
            .iter()
            .flat_map(|heir: &KeyRecord| events.iter().map(|e| e.for_heir(*heir.id())))
            .collect();
        let stored = self
            .inner
            .events
            .push_all(events.iter().chain(&heir_events), |id| self.tenant_of(id));
        Ok(Some(
            Revocation::first(record)
                .with_heirs(heirs)
                .with_events(stored),
        ))
    }
}

#[async_trait]
impl KeyStoreUpdate for InMemoryKeyStore {
    /// Under the write lock, so that it cannot interleave with a rotation or a usage
    /// write; lookups after it see the new record at once.
    async fn update(
        &self,
        id: &KeyId,
        update: &KeyUpdate,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let _write = self.write_lock();
        Ok(self.update_record(id, |r| update.apply_to(r)))
    }

    async fn update_with_events(
        &self,
        id: &KeyId,
        update: &KeyUpdate,
        events: &[NewEvent],
    ) -> Result<Option<(KeyRecord, Vec<KeyEvent>)>, StoreError> {
        let _write = self.write_lock();
        let Some(record) = self.update_record(id, |r| update.apply_to(r)) else {
            return Ok(None);
        };
        Ok(Some((
            record,
            self.inner.events.push_all(events, |id| self.tenant_of(id)),
        )))
    }
}

impl InMemoryKeyStore {
    /// Inserts `record`; the caller holds the write lock.
    fn insert_locked(&self, record: &KeyRecord) -> Result<(), StoreError> {
        self.inner
            .keys
            .pin()
            .try_insert(*record.id(), record.clone())
            .map(|_| ())
            .map_err(|_| StoreError::Duplicate(*record.id()))
    }

    /// Revokes `id` unless it is revoked already; returns the record before and after.
    /// The caller holds the write lock, so a record read here is still current.
    fn revoke_locked(
        &self,
        id: &KeyId,
        at: SystemTime,
        by: Option<&ActorName>,
    ) -> Option<(KeyRecord, KeyRecord)> {
        let before = self.inner.keys.pin().get(id).cloned()?;
        if before.revoked_at().is_some() {
            return Some((before.clone(), before));
        }
        let after = self.update_record(id, |r| revoked(r, at, by))?;
        Some((before, after))
    }

    /// Rotates; the caller holds the write lock, so no other rotation can add a
    /// successor meanwhile.
    fn rotate_locked(
        &self,
        old: &KeyId,
        new: &KeyRecord,
        end: OldKeyEnd,
    ) -> Result<RotateOutcome, StoreError> {
        let keys = self.inner.keys.pin();
        match keys.get(old) {
            None => return Ok(RotateOutcome::NotFound),
            Some(r) if r.revoked_at().is_some() => return Ok(RotateOutcome::Revoked),
            Some(_) => {}
        }
        // A scan: the embedded store holds few keys, and rotations are rare.
        let now = new.created_at();
        let heir = keys
            .values()
            .find(|r| r.rotated_from() == Some(old) && r.state_at(now) == KeyState::Active);
        if let Some(heir) = heir {
            return Ok(RotateOutcome::HasLiveSuccessor(*heir.id()));
        }
        let new = match end {
            OldKeyEnd::UntilFirstUse(grace) => new.clone().with_predecessor_grace(Some(grace)),
            _ => new.clone(),
        };
        if keys.try_insert(*new.id(), new.clone()).is_err() {
            return Err(StoreError::Duplicate(*new.id()));
        }
        let ended = keys
            .update(*old, |r| match end {
                OldKeyEnd::Keep => r.clone(),
                OldKeyEnd::EndAt(at) if at < r.stops_at() => r.clone().with_ends_at(Some(at)),
                OldKeyEnd::EndAt(_) => r.clone(),
                OldKeyEnd::Revoke(at) => revoked(r, at, new.created_by()),
                // The end comes with the new key's first use (`raise_last_used`).
                OldKeyEnd::UntilFirstUse(_) => r.clone(),
            })
            .cloned();
        // Writers are serialised and nothing removes records, so the old record is
        // still there.
        Ok(ended.map_or(RotateOutcome::NotFound, RotateOutcome::Rotated))
    }
}

/// `record`, revoked at `at` by `by`.
fn revoked(record: &KeyRecord, at: SystemTime, by: Option<&ActorName>) -> KeyRecord {
    record
        .clone()
        .with_revoked_at(Some(at))
        .with_revoked_by(by.cloned())
}
