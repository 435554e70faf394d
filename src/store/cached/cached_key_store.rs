//! [`CachedKeyStore`] and its builder, as [`cached`](super) documents.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::{Notify, OnceCell};

use super::cache_map::{self, CacheMap};
use super::{
    ANNOUNCE_WAIT, DEFAULT_FILTER_PASSES, DEFAULT_HIT_TTL, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_LOADS,
    DEFAULT_MISS_TTL, DEFAULT_STALE_HIT_TTL, DEFAULT_UNFOLLOWED_HIT_TTL, ECHO_WAIT,
    MAX_ANNOUNCE_WAITERS,
};
use crate::error::StoreError;
use crate::key::KeyId;
use crate::metrics::{self, FilterRefusal};
use crate::record::{ActorName, KeyRecord};
use crate::store::id_filter::{Admission, IdFilter};
use crate::store::{KeyStore, KeyStoreAdmin, KeyStoreUpdate, OldKeyEnd, Revocation, RotateOutcome};

/// What the wrapped store said about an id: the record, or `None` for "no such key".
type Answer = Option<KeyRecord>;
/// An answer as the callers waiting on one load share it.
type SharedAnswer = Result<Answer, Arc<StoreError>>;
type Hasher = foldhash::fast::RandomState;
type Loads = HashMap<KeyId, Arc<OnceCell<SharedAnswer>>, Hasher>;

/// A bounded, expiring cache in front of a [`KeyStore`], with coalesced misses.
///
/// See the [module documentation](crate::store::cached) for what is cached and for how
/// long. Clones are handles to the same cache and the same wrapped store.
///
/// When the wrapped store is a [`KeyStoreAdmin`] or a [`UsageSink`](crate::UsageSink), so is the cache:
/// management calls go to the wrapped store ([`get`](KeyStoreAdmin::get) and
/// [`list`](KeyStoreAdmin::list) bypass the cache) and every write evicts the ids it
/// touched, whether it succeeded or not (a write that failed late may still have
/// committed). Wrap a store once and use the wrapper everywhere.
///
/// ```
/// use tower_apikey::{InMemoryKeyStore, KeyManager, NewKey};
/// use tower_apikey::store::cached::CachedKeyStore;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = CachedKeyStore::new(InMemoryKeyStore::new());
/// let manager = KeyManager::new(store.clone());
/// let created = manager.create(NewKey::new("ci", ["reports:read"])).await?;
/// manager.revoke(created.key.id()).await?; // evicted here, refused at once
/// # Ok::<(), tower_apikey::ManagerError>(())
/// # }).unwrap();
/// ```
pub struct CachedKeyStore<S> {
    // `pub(super)`: the cache's other impls (usage, events, its feed) are its siblings.
    pub(super) store: Arc<S>,
    pub(super) cache: Arc<Cache>,
}

impl<S> Clone for CachedKeyStore<S> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            cache: Arc::clone(&self.cache),
        }
    }
}

impl<S> CachedKeyStore<S> {
    /// The handle a feed listener applies changes through.
    pub(crate) fn cache_handle(&self) -> Arc<Cache> {
        Arc::clone(&self.cache)
    }
}

impl<S: fmt::Debug> fmt::Debug for CachedKeyStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Settings only: never the cached records.
        f.debug_struct("CachedKeyStore")
            .field("store", &self.store)
            .field("max_entries", &self.cache.max_entries)
            .field("hit_ttl", &self.cache.ttl.hit)
            .field("stale_hit_ttl", &self.cache.ttl.stale_hit)
            .field("unfollowed_hit_ttl", &self.cache.ttl.unfollowed_hit)
            .field("miss_ttl", &self.cache.ttl.miss)
            .field("max_loads", &self.cache.max_loads)
            .finish()
    }
}

impl<S: KeyStore> CachedKeyStore<S> {
    /// A cache over `store` with the defaults: [`DEFAULT_MAX_ENTRIES`],
    /// [`DEFAULT_HIT_TTL`], [`DEFAULT_MISS_TTL`].
    pub fn new(store: S) -> Self {
        Self::builder(store).build()
    }

    /// A builder to choose the size and the TTLs.
    pub fn builder(store: S) -> CachedKeyStoreBuilder<S> {
        CachedKeyStoreBuilder {
            store,
            max_entries: DEFAULT_MAX_ENTRIES,
            hit_ttl: DEFAULT_HIT_TTL,
            stale_hit_ttl: DEFAULT_STALE_HIT_TTL,
            unfollowed_hit_ttl: DEFAULT_UNFOLLOWED_HIT_TTL,
            miss_ttl: DEFAULT_MISS_TTL,
            max_loads: DEFAULT_MAX_LOADS,
            filter_passes: DEFAULT_FILTER_PASSES,
        }
    }

    /// The wrapped store.
    pub fn get_ref(&self) -> &S {
        &self.store
    }

    /// Forgets what is cached about `id`, so the next lookup asks the wrapped store.
    ///
    /// A load of `id` already under way when this is called does not put its answer
    /// into the cache (it may predate the change that caused this call), and lookups
    /// after this call do not wait for it.
    pub fn invalidate(&self, id: &KeyId) {
        self.cache.invalidate(id);
    }

    /// Forgets everything cached, with the same guarantee as
    /// [`invalidate`](Self::invalidate) for loads under way.
    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }

    /// Whether the cache holds an answer for `id` (a record or "no such key") that has
    /// not expired.
    pub fn contains(&self, id: &KeyId) -> bool {
        self.cache.entries.contains(id, cache_map::now())
    }

    /// What the cache holds now: entries, lookups in flight and the id filter.
    ///
    /// Counting the entries visits each of them (and drops the expired ones): for
    /// monitoring and tests, not for every request.
    pub fn stats(&self) -> CachedKeyStoreStats {
        self.cache.stats()
    }

    /// Asks the wrapped store, once for all concurrent callers of this id.
    async fn load_coalesced(&self, id: &KeyId) -> Result<Answer, StoreError> {
        let ticket = self.cache.join_load(id)?;
        let cell = ticket.cell();
        let shared = cell.get_or_init(|| self.load(id, cell)).await;
        match shared {
            Ok(answer) => Ok(answer.clone()),
            Err(error) => Err(share_error(error)),
        }
    }

    /// The one query behind a coalesced miss.
    async fn load(&self, id: &KeyId, cell: &Arc<OnceCell<SharedAnswer>>) -> SharedAnswer {
        let result = self.store.lookup(id).await;
        if let Ok(answer) = &result {
            self.cache.loaded(*id, answer, cell);
        }
        self.cache.leave_load(id, cell);
        result.map_err(Arc::new)
    }
}

#[async_trait]
impl<S: KeyStore> KeyStore for CachedKeyStore<S> {
    async fn lookup(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        // The middleware asked `lookup_ready` first: a pass of the id filter it took
        // there still holds.
        let ruled_out = match self.cache.answer_at_once(id, true) {
            // A key created elsewhere a moment ago may be announced any time now.
            Some(Err(StoreError::RuledOut)) if self.cache.is_following() => true,
            Some(answer @ Err(StoreError::RuledOut)) => {
                metrics::id_filter_refused(FilterRefusal::Absent);
                return answer;
            }
            Some(answer) => return answer,
            None => false,
        };
        if ruled_out && !self.cache.announcement_of(id).await {
            metrics::id_filter_refused(FilterRefusal::Absent);
            return Err(StoreError::RuledOut);
        }
        // A miss is counted where the wrapped store is asked, here or below: the
        // middleware tries `lookup_ready` first, and one request must count once.
        metrics::cache_miss();
        self.load_coalesced(id).await
    }

    fn lookup_ready(&self, id: &KeyId) -> Option<Result<Option<KeyRecord>, StoreError>> {
        match self.cache.answer_at_once(id, false) {
            // Ruled out while the feed is up: `lookup` waits a moment for its
            // announcement (a key created elsewhere whose notification is on its way).
            Some(Err(StoreError::RuledOut)) if self.cache.is_following() => return None,
            Some(answer @ Err(StoreError::RuledOut)) => {
                metrics::id_filter_refused(FilterRefusal::Absent);
                return Some(answer);
            }
            Some(answer) => return Some(answer),
            None => {}
        }
        // A wrapped store that answers at once (in memory) needs no coalescing.
        let seen = self.cache.generation();
        let ready = self.store.lookup_ready(id)?;
        metrics::cache_miss();
        if let Ok(answer) = &ready {
            self.cache.found(*id, answer, seen);
        }
        Some(ready)
    }
}

#[async_trait]
impl<S: KeyStoreAdmin> KeyStoreAdmin for CachedKeyStore<S> {
    /// As [`insert_with_events`](KeyStoreAdmin::insert_with_events) with no events:
    /// one path, so that the filter, the echo and the eviction are the same for both.
    async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError> {
        self.insert_with_events(record, &[]).await.map(|_| ())
    }

    async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.store.get(id).await
    }

    async fn list(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.store.list().await
    }

    /// Straight to the wrapped store: lists are for people, and must be fresh.
    async fn list_page(
        &self,
        query: &crate::store::key_query::KeyQuery,
    ) -> Result<crate::page::Page<KeyRecord>, StoreError> {
        self.store.list_page(query).await
    }

    async fn revoke(
        &self,
        id: &KeyId,
        at: SystemTime,
        by: Option<&ActorName>,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let result = self.store.revoke(id, at, by).await;
        self.invalidate(id);
        result
    }

    /// As [`rotate_with_events`](KeyStoreAdmin::rotate_with_events) with no events.
    async fn rotate(
        &self,
        old: &KeyId,
        new: &KeyRecord,
        end: OldKeyEnd,
    ) -> Result<RotateOutcome, StoreError> {
        Ok(self.rotate_with_events(old, new, end, &[]).await?.0)
    }

    // The changes that carry their events (DESIGN §10): to the wrapped store, which
    // stores each change with its events in one write, and evicted here as above.

    async fn insert_with_events(
        &self,
        record: &KeyRecord,
        events: &[crate::event::NewEvent],
    ) -> Result<Vec<crate::event::KeyEvent>, StoreError> {
        // Into the filter first, so that the key is never refused by this instance once
        // it is stored; an insert that then fails leaves one harmless false positive.
        self.cache.ids.insert(record.id());
        // A "no such key" may be cached for this id (someone tried it before it existed).
        let inserting = self.store.insert_with_events(record, events);
        let result = self.cache.echo_of(record.id(), inserting, |_| true).await;
        self.invalidate(record.id());
        result
    }

    async fn rotate_with_events(
        &self,
        old: &KeyId,
        new: &KeyRecord,
        end: OldKeyEnd,
        events: &[crate::event::NewEvent],
    ) -> Result<(RotateOutcome, Vec<crate::event::KeyEvent>), StoreError> {
        self.cache.ids.insert(new.id());
        let rotating = self.store.rotate_with_events(old, new, end, events);
        let result = self
            .cache
            .echo_of(new.id(), rotating, |(outcome, _)| {
                matches!(outcome, RotateOutcome::Rotated(_))
            })
            .await;
        self.invalidate(old);
        self.invalidate(new.id());
        result
    }

    async fn live_heirs(&self, id: &KeyId, at: SystemTime) -> Result<Vec<KeyRecord>, StoreError> {
        self.store.live_heirs(id, at).await
    }

    /// Evicts the key and every heir revoked with it here; other instances learn of
    /// them from the wrapped store's feed.
    async fn revoke_with_heirs(
        &self,
        id: &KeyId,
        at: SystemTime,
        by: Option<&ActorName>,
        events: &[crate::event::NewEvent],
    ) -> Result<Option<Revocation>, StoreError> {
        let result = self.store.revoke_with_heirs(id, at, by, events).await;
        self.invalidate(id);
        if let Ok(Some(revocation)) = &result {
            for heir in &revocation.heirs {
                self.invalidate(heir.id());
            }
        }
        result
    }
}

#[async_trait]
impl<S: KeyStoreUpdate> KeyStoreUpdate for CachedKeyStore<S> {
    /// Evicts the id here; other instances learn of it from the wrapped store's feed.
    async fn update(
        &self,
        id: &KeyId,
        update: &crate::store::KeyUpdate,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let result = self.store.update(id, update).await;
        self.invalidate(id);
        result
    }

    async fn update_with_events(
        &self,
        id: &KeyId,
        update: &crate::store::KeyUpdate,
        events: &[crate::event::NewEvent],
    ) -> Result<Option<(KeyRecord, Vec<crate::event::KeyEvent>)>, StoreError> {
        let result = self.store.update_with_events(id, update, events).await;
        self.invalidate(id);
        result
    }
}

/// Builds a [`CachedKeyStore`]; from [`CachedKeyStore::builder`].
#[derive(Debug)]
pub struct CachedKeyStoreBuilder<S> {
    store: S,
    max_entries: u64,
    hit_ttl: Duration,
    stale_hit_ttl: Duration,
    unfollowed_hit_ttl: Duration,
    miss_ttl: Duration,
    max_loads: usize,
    filter_passes: u32,
}

impl<S: KeyStore> CachedKeyStoreBuilder<S> {
    /// How many ids the cache holds at most (default [`DEFAULT_MAX_ENTRIES`]). Each
    /// entry is a few hundred bytes (a record) or under a hundred ("no such key"); the
    /// bound also caps what a flood of random ids can make the cache hold. When an
    /// answer would take the cache past it, answers that expired or were not read
    /// since the last such sweep make room for an eighth of it. Zero caches nothing.
    pub fn max_entries(mut self, max_entries: u64) -> Self {
        self.max_entries = max_entries;
        self
    }

    /// How long a found record is served from the cache while a
    /// [`KeyFeedListener`](crate::store::feed::KeyFeedListener) follows the store and its feed is up
    /// (default [`DEFAULT_HIT_TTL`]). Revocations then evict at once; this bounds how
    /// long a change stays unseen if its notification is lost. Zero disables caching of
    /// found records in that state.
    pub fn hit_ttl(mut self, ttl: Duration) -> Self {
        self.hit_ttl = ttl;
        self
    }

    /// How long a found record is served while the listener's feed is down (default
    /// [`DEFAULT_STALE_HIT_TTL`]): the bound on how long a revocation made on another
    /// instance can go unseen while notifications cannot arrive.
    pub fn stale_hit_ttl(mut self, ttl: Duration) -> Self {
        self.stale_hit_ttl = ttl;
        self
    }

    /// How long a found record is served when no listener runs (default
    /// [`DEFAULT_UNFOLLOWED_HIT_TTL`]): the bound on how long a change made elsewhere
    /// (another instance) can go unseen. Writes made through this cache evict at once.
    pub fn unfollowed_hit_ttl(mut self, ttl: Duration) -> Self {
        self.unfollowed_hit_ttl = ttl;
        self
    }

    /// How long "no such key" is served from the cache (default [`DEFAULT_MISS_TTL`]).
    /// Zero disables caching of misses.
    pub fn miss_ttl(mut self, ttl: Duration) -> Self {
        self.miss_ttl = ttl;
        self
    }

    /// How many distinct ids may be looked up in the wrapped store at once (default
    /// [`DEFAULT_MAX_LOADS`], at least 1). Lookups of an id already being loaded wait for
    /// that load and do not count. Past the cap a lookup fails at once with
    /// [`StoreError::Overloaded`] (the request gets 503 and `Retry-After`), so that a
    /// flood of unknown ids cannot queue real keys behind it. Size it to what the store
    /// serves at once: for PostgreSQL, a few times the pool's connections.
    pub fn max_loads(mut self, max_loads: usize) -> Self {
        self.max_loads = max_loads.max(1);
        self
    }

    /// How many ids the id filter does not hold may still be looked up each second
    /// (default [`DEFAULT_FILTER_PASSES`]): a key created on another instance a moment
    /// ago, whose notification has not arrived yet, or while this one's feed was down,
    /// costs one query and then joins the filter. Past that, such ids get
    /// [`StoreError::RuledOut`] (401) while the feed is up, and
    /// [`StoreError::Overloaded`] (503, try again) while it is down. Zero trusts the
    /// filter entirely.
    pub fn filter_passes_per_sec(mut self, passes: u32) -> Self {
        self.filter_passes = passes;
        self
    }

    /// The cache.
    pub fn build(self) -> CachedKeyStore<S> {
        let ttl = Ttl {
            hit: self.hit_ttl,
            stale_hit: self.stale_hit_ttl,
            unfollowed_hit: self.unfollowed_hit_ttl,
            miss: self.miss_ttl,
            follow: AtomicU8::new(Follow::Unfollowed as u8),
        };
        let bound = usize::try_from(self.max_entries).unwrap_or(usize::MAX);
        CachedKeyStore {
            store: Arc::new(self.store),
            cache: Arc::new(Cache {
                entries: CacheMap::new(bound),
                loads: Mutex::default(),
                max_loads: self.max_loads,
                ids: IdFilter::new(self.filter_passes),
                generation: AtomicU64::new(0),
                ttl,
                max_entries: self.max_entries,
                echoes: Mutex::default(),
                announcements: Notify::new(),
                announce_waiters: AtomicUsize::new(0),
            }),
        }
    }
}

/// The part of a [`CachedKeyStore`] that does not depend on the wrapped store, so that
/// one listener can evict from caches over different stores.
pub(crate) struct Cache {
    entries: CacheMap<Answer>,
    /// Loads under way, one per id, at most `max_loads`. Every `Arc` of a cell in it is
    /// cloned and dropped under its lock, so its strong count tells how many callers
    /// still wait on a load (see [`LoadTicket`]).
    loads: Mutex<Loads>,
    max_loads: usize,
    /// Which ids certainly do not exist; empty (asks for everything) without a feed.
    pub(crate) ids: IdFilter,
    /// Bumped by every invalidation. An answer read at once from a wrapped store that
    /// answers without waiting (`lookup_ready`) notes it first and is kept only if no
    /// invalidation happened meanwhile, so a revocation that lands during the read is
    /// not undone by its older answer. Loads that wait check their own entry in `loads`
    /// instead, which an invalidation of their id removes.
    generation: AtomicU64,
    ttl: Ttl,
    max_entries: u64,
    /// Inserts through this cache waiting for the feed to announce their key back, by
    /// id; one entry per insert in flight.
    echoes: Mutex<HashMap<KeyId, Arc<Notify>, Hasher>>,
    /// Woken by every announcement, for lookups of ruled-out ids waiting for theirs.
    announcements: Notify,
    /// How many lookups wait for an announcement.
    announce_waiters: AtomicUsize,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("max_entries", &self.max_entries)
            .finish_non_exhaustive()
    }
}

impl Cache {
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn loads(&self) -> MutexGuard<'_, Loads> {
        // Every critical section is a single map operation: nothing can be left
        // half-done by a panic, so a poisoned lock is safe to use.
        self.loads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The answer that needs no load: a cached one, [`StoreError::RuledOut`] for an id
    /// the filter rules out, or a shed lookup. `None`: ask the store. `again`: see
    /// [`IdFilter::admit`].
    fn answer_at_once(&self, id: &KeyId, again: bool) -> Option<Result<Answer, StoreError>> {
        if let Some(answer) = self.entries.get(id, cache_map::now()) {
            metrics::cache_hit();
            return Some(Ok(answer));
        }
        match self.ids.admit(id, again) {
            Admission::Ask => None,
            // Not cached: the cache would fill with the flood.
            Admission::Absent => Some(Err(StoreError::RuledOut)),
            Admission::Shed => Some(Err(StoreError::Overloaded)),
        }
    }

    /// A ticket for the load of `id`, started by this caller or an earlier one, unless
    /// `max_loads` other ids are being loaded.
    fn join_load(&self, id: &KeyId) -> Result<LoadTicket<'_>, StoreError> {
        let mut loads = self.loads();
        if let Some(cell) = loads.get(id) {
            let cell = Arc::clone(cell);
            return Ok(LoadTicket {
                cache: self,
                id: *id,
                cell: Some(cell),
            });
        }
        if loads.len() >= self.max_loads {
            return Err(StoreError::Overloaded);
        }
        let cell = Arc::clone(loads.entry(*id).or_default());
        Ok(LoadTicket {
            cache: self,
            id: *id,
            cell: Some(cell),
        })
    }

    /// Removes the finished load `cell` of `id`, unless an invalidation already
    /// replaced it by a newer one.
    fn leave_load(&self, id: &KeyId, cell: &Arc<OnceCell<SharedAnswer>>) {
        let mut loads = self.loads();
        if loads
            .get(id)
            .is_some_and(|current| Arc::ptr_eq(current, cell))
        {
            loads.remove(id);
        }
    }

    /// Caches the store's answer about `id`, read when the generation was `seen`; an
    /// id that exists also joins the filter (it may be one the filter missed while its
    /// feed was down).
    fn found(&self, id: KeyId, answer: &Answer, seen: u64) {
        if answer.is_some() {
            self.ids.insert(&id);
        }
        let now = cache_map::now();
        let deadline = now.saturating_add(cache_map::ticks(self.ttl.of(answer)));
        self.entries.insert(id, answer.clone(), deadline, now);
        // Insert first, then check: an invalidation either bumped the generation
        // before this check (and the entry is dropped here) or removes the entry itself
        // after its bump. The fences (here and in `invalidate`) order the map's write
        // and the generation's read, which are different atomics.
        fence(Ordering::SeqCst);
        if self.generation() != seen {
            self.entries.remove(&id);
        }
        self.drop_miss_of_a_known_id(&id, answer);
    }

    /// Drops a just-cached "no such key" for an id announced or in the filter: it was
    /// read before the key's creation committed (see `announced`).
    fn drop_miss_of_a_known_id(&self, id: &KeyId, answer: &Answer) {
        if answer.is_none() && self.ids.knows(id) {
            self.entries.remove(id);
        }
    }

    /// Caches the answer of the load `cell` of `id`, unless an invalidation of `id` (or
    /// of everything) replaced or removed that load meanwhile: its answer may predate
    /// the change. Per id, so that a change to one key never drops another's answer.
    fn loaded(&self, id: KeyId, answer: &Answer, cell: &Arc<OnceCell<SharedAnswer>>) {
        if answer.is_some() {
            self.ids.insert(&id);
        }
        let now = cache_map::now();
        let deadline = now.saturating_add(cache_map::ticks(self.ttl.of(answer)));
        self.entries.insert(id, answer.clone(), deadline, now);
        // Insert first, then check under the loads' lock: an invalidation either removed
        // the load before this check (and the entry is dropped here) or removes the
        // entry itself after, since `invalidate` removes the load first, then the entry.
        let current = self
            .loads()
            .get(&id)
            .is_some_and(|current| Arc::ptr_eq(current, cell));
        if !current {
            self.entries.remove(&id);
        }
        fence(Ordering::SeqCst);
        self.drop_miss_of_a_known_id(&id, answer);
    }

    pub(crate) fn invalidate(&self, id: &KeyId) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        // The load first, then the entry: see `loaded`.
        self.loads().remove(id);
        fence(Ordering::SeqCst);
        self.entries.remove(id);
    }

    pub(crate) fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.loads().clear();
        fence(Ordering::SeqCst);
        self.entries.clear();
    }

    /// A feed (re)subscribed: `ids` is every id that exists. Anything cached may have
    /// changed while no one was listening.
    pub(crate) fn resync(&self, ids: &[KeyId]) {
        self.ttl.set(Follow::Up);
        self.ids.replace(ids);
        self.invalidate_all();
    }

    /// A new snapshot taken while the feed was followed without a gap (the filter was
    /// full): a larger filter, and the cache stays, since no change was missed.
    pub(crate) fn regrow(&self, ids: &[KeyId]) {
        self.ids.regrow(ids);
    }

    /// The feed is down: notifications may be lost, so cached records are dropped and
    /// new ones kept for the stale hit TTL only; the filter is kept, but stale.
    pub(crate) fn feed_down(&self) {
        self.ttl.set(Follow::Down);
        self.ids.mark_stale();
        self.invalidate_all();
    }

    /// No listener follows the feed any more: no filter, and the unfollowed hit TTL.
    pub(crate) fn unfollowed(&self) {
        self.ttl.set(Follow::Unfollowed);
        self.ids.clear();
        self.invalidate_all();
    }

    /// Keys were announced as created (by any instance, this one included), not yet
    /// confirmed by the store: ask for them at once, and forget a cached "no such key".
    pub(crate) fn announced(&self, ids: &[KeyId]) {
        // Only a cached "no such key" goes: a record found for this id (through a pass,
        // before the notification came) is the key itself, and stays.
        // A load under way is left alone: if it finds nothing (it read before the
        // commit), it drops its own "no such key" once it sees the announcement (see
        // `drop_miss_of_a_known_id`); the fence orders the two sides.
        self.ids.announce(ids);
        fence(Ordering::SeqCst);
        for id in ids {
            self.entries.remove_if(id, Option::is_none);
        }
        self.announcements.notify_waiters();
    }

    /// Whether a feed listener follows the store and its feed is up.
    fn is_following(&self) -> bool {
        self.ttl.follow.load(Ordering::SeqCst) == Follow::Up as u8
    }

    /// Waits, at most [`ANNOUNCE_WAIT`], for `id` to be announced; whether it was. A key
    /// used on this instance as soon as another one created it can arrive before its
    /// notification does. At most [`MAX_ANNOUNCE_WAITERS`] wait at once (past that, an
    /// id is ruled out at once): a flood of forged ids holds no more than that.
    async fn announcement_of(&self, id: &KeyId) -> bool {
        let Some(_slot) = AnnounceWaiter::take(&self.announce_waiters) else {
            return false;
        };
        let deadline = tokio::time::Instant::now() + ANNOUNCE_WAIT;
        loop {
            let notified = self.announcements.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.ids.holds(id) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.ids.holds(id);
            }
        }
    }

    /// A key was created (the store confirmed an announcement): into the filter, and
    /// an insert through this cache waiting for its echo may answer.
    pub(crate) fn created(&self, id: &KeyId) {
        self.ids.insert(id);
        self.announcements.notify_waiters();
        if let Some(echo) = self.echoes().get(id) {
            echo.notify_one();
        }
    }

    /// The announced `ids` were answered for; see [`IdFilter::settle`].
    pub(crate) fn settled(&self, ids: &[KeyId]) {
        self.ids.settle(ids);
    }

    fn echoes(&self) -> MutexGuard<'_, HashMap<KeyId, Arc<Notify>, Hasher>> {
        // One map operation per critical section: a panic cannot leave it half-done.
        self.echoes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits, at most [`ECHO_WAIT`], until the feed this cache follows has announced
    /// `id` back, if it follows one: every other instance following the same store
    /// hears of the key at about the same time, so a key used elsewhere at once after
    /// its creation answered finds their filters ready. Dropping it halfway leaves no
    /// waiter behind.
    /// `write` stores the key; `stored` says from its answer whether it did.
    async fn echo_of<T>(
        &self,
        id: &KeyId,
        write: impl Future<Output = Result<T, StoreError>>,
        stored: impl FnOnce(&T) -> bool,
    ) -> Result<T, StoreError> {
        if self.ttl.follow.load(Ordering::SeqCst) != Follow::Up as u8 {
            return write.await;
        }
        let echo = Arc::new(Notify::new());
        self.echoes().insert(*id, Arc::clone(&echo));
        let _waiting = EchoWaiter {
            cache: self,
            id: *id,
        };
        let answer = write.await?;
        if stored(&answer) {
            // Past the wait the key works all the same: other instances then find it
            // through their filter's passes.
            let _ = tokio::time::timeout(ECHO_WAIT, echo.notified()).await;
        }
        Ok(answer)
    }

    fn stats(&self) -> CachedKeyStoreStats {
        let filter = self.ids.stats();
        CachedKeyStoreStats {
            entries: self.entries.purge_and_count(cache_map::now()) as u64,
            loads_in_flight: self.loads().len(),
            filter: match filter {
                None => FilterState::Off,
                Some(f) if f.fresh => FilterState::Fresh,
                Some(_) => FilterState::Stale,
            },
            filter_ids: filter.map_or(0, |f| f.ids),
            filter_capacity: filter.map_or(0, |f| f.capacity),
            filter_bytes: filter.map_or(0, |f| f.bytes),
        }
    }
}

/// One of the [`MAX_ANNOUNCE_WAITERS`] slots, given back however its future ends.
struct AnnounceWaiter<'a>(&'a AtomicUsize);

impl<'a> AnnounceWaiter<'a> {
    fn take(waiters: &'a AtomicUsize) -> Option<Self> {
        waiters
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_ANNOUNCE_WAITERS).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(waiters))
    }
}

impl Drop for AnnounceWaiter<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Removes an insert's echo waiter however its future ends.
struct EchoWaiter<'a> {
    cache: &'a Cache,
    id: KeyId,
}

impl Drop for EchoWaiter<'_> {
    fn drop(&mut self) {
        self.cache.echoes().remove(&self.id);
    }
}

/// One caller's hold on a load in flight. Dropping it, whether the load finished or the
/// caller was cancelled, removes the load if no one else waits on it: a lookup whose
/// future is dropped halfway leaves nothing behind.
struct LoadTicket<'a> {
    cache: &'a Cache,
    id: KeyId,
    /// Always `Some` until `drop` takes it, under the map's lock, so that the strong
    /// count the next ticket reads there is exact.
    cell: Option<Arc<OnceCell<SharedAnswer>>>,
}

impl LoadTicket<'_> {
    fn cell(&self) -> &Arc<OnceCell<SharedAnswer>> {
        self.cell
            .as_ref()
            .expect("a ticket's cell is only taken by its drop")
    }
}

impl Drop for LoadTicket<'_> {
    fn drop(&mut self) {
        let mut loads = self.cache.loads();
        let Some(cell) = self.cell.take() else { return };
        // Two holders, the map and this ticket: no one else waits on the load.
        if Arc::strong_count(&cell) == 2
            && loads
                .get(&self.id)
                .is_some_and(|current| Arc::ptr_eq(current, &cell))
        {
            loads.remove(&self.id);
        }
        drop(cell);
        drop(loads);
    }
}

/// What a [`CachedKeyStore`] holds, from [`CachedKeyStore::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CachedKeyStoreStats {
    /// Cached answers (records and "no such key"), at most the configured
    /// `max_entries`.
    pub entries: u64,
    /// Distinct ids being looked up in the wrapped store now, at most `max_loads`.
    pub loads_in_flight: usize,
    /// Whether the id filter is in use.
    pub filter: FilterState,
    /// Ids put in the filter (0 without one).
    pub filter_ids: usize,
    /// Ids the filter is sized for at a 0.1 % false-positive rate.
    pub filter_capacity: usize,
    /// The filter's memory, in bytes.
    pub filter_bytes: usize,
}

/// The state of a cache's id filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FilterState {
    /// No filter: no feed listener runs, or it has not had its first snapshot yet.
    /// Every id is asked for.
    Off,
    /// The feed is up: an id the filter does not hold is refused without a query, past
    /// its few passes a second and a short wait for a notification that may announce it.
    Fresh,
    /// The feed is down: the filter is kept, and ids it does not hold reach the store
    /// at a bounded rate.
    Stale,
}

/// Whether a listener keeps the cache in step, which sets how long records live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Follow {
    Unfollowed = 0,
    Up = 1,
    Down = 2,
}

/// Per-entry expiry: hits and misses live for different times, and a hit's time
/// depends on the state of the feed when it was cached.
#[derive(Debug)]
struct Ttl {
    hit: Duration,
    stale_hit: Duration,
    unfollowed_hit: Duration,
    miss: Duration,
    /// A [`Follow`], set by the feed listener, read when an answer is cached.
    follow: AtomicU8,
}

impl Ttl {
    fn set(&self, follow: Follow) {
        self.follow.store(follow as u8, Ordering::SeqCst);
    }

    fn of(&self, answer: &Answer) -> Duration {
        if answer.is_none() {
            return self.miss;
        }
        match self.follow.load(Ordering::SeqCst) {
            1 => self.hit,
            2 => self.stale_hit,
            _ => self.unfollowed_hit,
        }
    }
}

/// A copy of an error shared by several waiters, keeping its variant.
fn share_error(error: &Arc<StoreError>) -> StoreError {
    match &**error {
        StoreError::Timeout(limit) => StoreError::Timeout(*limit),
        StoreError::Duplicate(id) => StoreError::Duplicate(*id),
        StoreError::Corrupt(what) => StoreError::Corrupt(what.clone()),
        StoreError::Overloaded => StoreError::Overloaded,
        StoreError::Unsupported(what) => StoreError::Unsupported(what),
        _ => StoreError::Unavailable(Box::new(SharedCause(Arc::clone(error)))),
    }
}

/// The backend error behind a shared [`StoreError::Unavailable`], shown as itself.
#[derive(Debug)]
struct SharedCause(Arc<StoreError>);

impl fmt::Display for SharedCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            StoreError::Unavailable(cause) => fmt::Display::fmt(cause, f),
            other => fmt::Display::fmt(other, f),
        }
    }
}

impl StdError for SharedCause {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &*self.0 {
            StoreError::Unavailable(cause) => cause.source(),
            other => other.source(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::testing::conformance::sample_record;

    /// A store that counts its lookups, can be made to fail, and can be held at a gate.
    #[derive(Debug, Default)]
    struct Counting {
        records: Mutex<HashMap<KeyId, KeyRecord>>,
        lookups: AtomicUsize,
        failing: std::sync::atomic::AtomicBool,
        gate: tokio::sync::Notify,
        gated: std::sync::atomic::AtomicBool,
    }

    impl Counting {
        fn with(records: &[&KeyRecord]) -> Self {
            let store = Self::default();
            for record in records {
                store.put(record);
            }
            store
        }

        fn put(&self, record: &KeyRecord) {
            self.records
                .lock()
                .unwrap()
                .insert(*record.id(), record.clone());
        }

        fn lookups(&self) -> usize {
            self.lookups.load(Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl KeyStore for Counting {
        async fn lookup(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            if self.gated.load(Ordering::SeqCst) {
                self.gate.notified().await;
            }
            if self.failing.load(Ordering::SeqCst) {
                return Err(StoreError::unavailable("database is down"));
            }
            Ok(self.records.lock().unwrap().get(id).cloned())
        }
    }

    fn record() -> KeyRecord {
        sample_record("cached", &["a:b"], 0)
    }

    #[tokio::test]
    async fn a_hit_is_answered_synchronously_without_asking_the_store() {
        let r = record();
        let cache = CachedKeyStore::new(Counting::with(&[&r]));
        assert!(
            cache.lookup_ready(r.id()).is_none(),
            "cold cache must defer"
        );
        assert!(cache.lookup(r.id()).await.unwrap().is_some());
        let ready = cache.lookup_ready(r.id()).expect("a hit answers at once");
        assert_eq!(ready.unwrap().unwrap().id(), r.id());
        cache.lookup(r.id()).await.unwrap();
        assert_eq!(cache.get_ref().lookups(), 1);
    }

    #[tokio::test]
    async fn concurrent_misses_for_one_id_make_one_store_query() {
        let r = record();
        let store = Counting::with(&[&r]);
        store.gated.store(true, Ordering::SeqCst);
        let cache = CachedKeyStore::new(store);
        let waiters: Vec<_> = (0..16)
            .map(|_| {
                let cache = cache.clone();
                let id = *r.id();
                tokio::spawn(async move { cache.lookup(&id).await })
            })
            .collect();
        // Let every waiter reach the cache before the one query may finish.
        while cache.get_ref().lookups() == 0 {
            tokio::task::yield_now().await;
        }
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        cache.get_ref().gated.store(false, Ordering::SeqCst);
        cache.get_ref().gate.notify_waiters();
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap().unwrap().unwrap().id(), r.id());
        }
        assert_eq!(cache.get_ref().lookups(), 1);
    }

    #[tokio::test]
    async fn a_cancelled_first_caller_hands_the_query_to_the_next() {
        let r = record();
        let store = Counting::with(&[&r]);
        store.gated.store(true, Ordering::SeqCst);
        let cache = CachedKeyStore::new(store);
        let first = tokio::spawn({
            let cache = cache.clone();
            let id = *r.id();
            async move { cache.lookup(&id).await }
        });
        while cache.get_ref().lookups() == 0 {
            tokio::task::yield_now().await;
        }
        let second = tokio::spawn({
            let cache = cache.clone();
            let id = *r.id();
            async move { cache.lookup(&id).await }
        });
        tokio::task::yield_now().await;
        first.abort();
        cache.get_ref().gated.store(false, Ordering::SeqCst);
        // The second caller reruns the query itself, past the (now open) gate.
        let found = tokio::time::timeout(Duration::from_secs(10), second)
            .await
            .expect("the second caller must not hang")
            .unwrap()
            .unwrap();
        assert_eq!(found.unwrap().id(), r.id());
    }

    #[tokio::test]
    async fn errors_are_not_cached() {
        let r = record();
        let cache = CachedKeyStore::new(Counting::with(&[&r]));
        cache.get_ref().failing.store(true, Ordering::SeqCst);
        let error = cache.lookup(r.id()).await.unwrap_err();
        assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
        assert!(
            error.to_string().contains("database is down"),
            "the shared error keeps its cause: {error}"
        );
        assert!(!cache.contains(r.id()));
        cache.get_ref().failing.store(false, Ordering::SeqCst);
        assert!(cache.lookup(r.id()).await.unwrap().is_some());
        assert_eq!(cache.get_ref().lookups(), 2);
    }

    #[tokio::test]
    async fn unknown_ids_are_cached_for_the_shorter_miss_ttl() {
        let r = record();
        let cache = CachedKeyStore::builder(Counting::default())
            .hit_ttl(Duration::from_secs(3600))
            .miss_ttl(Duration::from_millis(50))
            .build();
        assert!(cache.lookup(r.id()).await.unwrap().is_none());
        assert!(cache.lookup(r.id()).await.unwrap().is_none());
        assert_eq!(cache.get_ref().lookups(), 1, "the miss is cached");
        cache.get_ref().put(&r);
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(
            cache.lookup(r.id()).await.unwrap().is_some(),
            "after the miss TTL the store is asked again"
        );
        assert_eq!(cache.get_ref().lookups(), 2);
    }

    #[tokio::test]
    async fn found_records_expire_after_the_unfollowed_hit_ttl() {
        let r = record();
        let cache = CachedKeyStore::builder(Counting::with(&[&r]))
            .unfollowed_hit_ttl(Duration::from_millis(50))
            .build();
        cache.lookup(r.id()).await.unwrap();
        assert!(cache.contains(r.id()));
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(!cache.contains(r.id()));
        cache.lookup(r.id()).await.unwrap();
        assert_eq!(cache.get_ref().lookups(), 2);
    }

    #[tokio::test]
    async fn the_cache_holds_at_most_max_entries() {
        let cache = CachedKeyStore::builder(Counting::default())
            .max_entries(10)
            .build();
        for n in 0..200 {
            cache.lookup(sample_record("x", &[], n).id()).await.unwrap();
        }
        assert!(cache.stats().entries <= 10);
    }

    // Outside a runtime: the wrapped store answers at once, so every lookup goes
    // through the synchronous path.
    #[test]
    fn a_flood_of_a_million_distinct_ids_never_grows_the_cache_past_its_bound() {
        let cache = CachedKeyStore::builder(crate::InMemoryKeyStore::new())
            .max_entries(10_000)
            .build();
        for n in 0..1_000_000 {
            let answer = cache.lookup_ready(&id_of(n)).expect("answered at once");
            assert!(answer.unwrap().is_none());
            if n % 100_000 == 0 {
                assert!(cache.stats().entries <= 10_000);
            }
        }
        let entries = cache.stats().entries;
        assert!(
            (8_750..=10_000).contains(&entries),
            "{entries} entries: bounded, and still caching"
        );
    }

    #[tokio::test]
    async fn keys_in_use_stay_cached_through_a_flood_of_unknown_ids() {
        let r = record();
        let cache = CachedKeyStore::builder(Counting::with(&[&r]))
            .max_entries(100)
            .build();
        for n in 0..20_000 {
            assert!(cache.lookup(&id_of(n)).await.unwrap().is_none());
            if n % 10 == 0 {
                assert!(cache.lookup(r.id()).await.unwrap().is_some());
            }
        }
        assert!(cache.stats().entries <= 100);
        assert_eq!(
            cache.get_ref().lookups(),
            20_001,
            "each unknown id once, the key in use once"
        );
    }

    #[tokio::test]
    async fn an_invalidation_during_a_load_keeps_its_answer_out_of_the_cache() {
        let r = record();
        let store = Counting::with(&[&r]);
        store.gated.store(true, Ordering::SeqCst);
        let cache = CachedKeyStore::new(store);
        let loading = tokio::spawn({
            let cache = cache.clone();
            let id = *r.id();
            async move { cache.lookup(&id).await }
        });
        while cache.get_ref().lookups() == 0 {
            tokio::task::yield_now().await;
        }
        // The store changes while the load is in flight; the change invalidates.
        let revoked = r.clone().with_revoked_at(Some(SystemTime::now()));
        cache.get_ref().put(&revoked);
        cache.invalidate(r.id());
        cache.get_ref().gated.store(false, Ordering::SeqCst);
        cache.get_ref().gate.notify_waiters();
        loading.await.unwrap().unwrap();
        assert!(
            !cache.contains(r.id()),
            "the older answer must not be cached"
        );
        let now = cache.lookup(r.id()).await.unwrap().unwrap();
        assert!(now.revoked_at().is_some());
    }

    #[tokio::test]
    async fn revoke_through_the_cache_evicts_at_once() {
        let store = CachedKeyStore::new(crate::InMemoryKeyStore::new());
        let r = record();
        store.insert(&r).await.unwrap();
        assert!(store.lookup_ready(r.id()).unwrap().unwrap().is_some());
        assert!(store.contains(r.id()));
        store.revoke(r.id(), SystemTime::now(), None).await.unwrap();
        assert!(!store.contains(r.id()));
        let found = store.lookup_ready(r.id()).unwrap().unwrap().unwrap();
        assert!(found.revoked_at().is_some());
    }

    /// An id from a counter: distinct, well-formed, and cheap enough for a million.
    fn id_of(n: u64) -> KeyId {
        let mut text = [b'0'; 16];
        let mut rest = n;
        for digit in text.iter_mut().rev() {
            *digit = crate::key::ALPHABET[(rest % 62) as usize];
            rest /= 62;
        }
        KeyId::new(std::str::from_utf8(&text).unwrap()).unwrap()
    }

    fn gated_cache(max_loads: usize) -> CachedKeyStore<Counting> {
        let store = Counting::default();
        store.gated.store(true, Ordering::SeqCst);
        CachedKeyStore::builder(store).max_loads(max_loads).build()
    }

    // Outside a runtime, so that tokio's cooperative budget does not make the cell
    // yield before the query starts: every one of the million loads reaches the store.
    #[test]
    fn a_million_cancelled_lookups_leave_nothing_behind() {
        use futures_util::FutureExt;
        let cache = gated_cache(DEFAULT_MAX_LOADS);
        for n in 0..1_000_000 {
            // Polled once, so its load is registered and the store asked, then dropped
            // before the store answers: a client that gave up, or a lookup timeout.
            assert!(cache.lookup(&id_of(n)).now_or_never().is_none());
        }
        assert_eq!(
            cache.get_ref().lookups(),
            1_000_000,
            "each load really started"
        );
        let stats = cache.stats();
        assert_eq!(stats.loads_in_flight, 0);
        assert_eq!(stats.entries, 0);
    }

    #[tokio::test]
    async fn a_load_stays_while_one_of_its_callers_still_waits() {
        use futures_util::FutureExt;
        let cache = gated_cache(DEFAULT_MAX_LOADS);
        let id = id_of(7);
        let mut first = cache.lookup(&id);
        let mut second = cache.lookup(&id);
        assert!((&mut first).now_or_never().is_none());
        assert!((&mut second).now_or_never().is_none());
        assert_eq!(cache.stats().loads_in_flight, 1);
        drop(first);
        assert_eq!(
            cache.stats().loads_in_flight,
            1,
            "the second caller still waits"
        );
        drop(second);
        assert_eq!(cache.stats().loads_in_flight, 0);
        assert_eq!(
            cache.get_ref().lookups(),
            1,
            "the second joined the first's load"
        );
    }

    #[tokio::test]
    async fn past_max_loads_a_new_id_is_shed_at_once_and_hits_still_answer() {
        use futures_util::FutureExt;
        let r = record();
        let cache = gated_cache(2);
        cache.get_ref().put(&r);
        // Cache the real key first, with the gate open.
        cache.get_ref().gated.store(false, Ordering::SeqCst);
        cache.lookup(r.id()).await.unwrap().unwrap();
        cache.get_ref().gated.store(true, Ordering::SeqCst);

        let (one, two) = (id_of(1), id_of(2));
        let mut a = cache.lookup(&one);
        let mut b = cache.lookup(&two);
        assert!((&mut a).now_or_never().is_none());
        assert!((&mut b).now_or_never().is_none());
        let shed = cache
            .lookup(&id_of(3))
            .now_or_never()
            .expect("answered at once");
        assert!(matches!(shed, Err(StoreError::Overloaded)), "{shed:?}");
        let mut joined = cache.lookup(&one);
        assert!(
            (&mut joined).now_or_never().is_none(),
            "an id already loading is joined, not shed"
        );
        let hit = cache.lookup_ready(r.id()).expect("a hit needs no load");
        assert_eq!(hit.unwrap().unwrap().id(), r.id());
        assert_eq!(
            cache.get_ref().lookups(),
            3,
            "the real key, then ids 1 and 2"
        );
        drop((a, b, joined));
        assert_eq!(cache.stats().loads_in_flight, 0);
    }

    #[tokio::test]
    async fn a_fresh_filter_refuses_unknown_ids_without_a_query_or_an_entry() {
        let r = record();
        let cache = CachedKeyStore::builder(Counting::with(&[&r]))
            .filter_passes_per_sec(0)
            .build();
        assert_eq!(cache.stats().filter, FilterState::Off);
        cache.cache.resync(&[*r.id()]);
        assert_eq!(cache.stats().filter, FilterState::Fresh);
        let mut refused = 0;
        for n in 0..10_000 {
            match cache.cache.answer_at_once(&id_of(n), false) {
                Some(Err(StoreError::RuledOut)) => refused += 1,
                // A false positive: asked for.
                None => assert!(cache.lookup(&id_of(n)).await.unwrap().is_none()),
                other => panic!("{other:?}"),
            }
        }
        // At most 0.1 % false positives, which reach the (counting) store.
        assert!(refused >= 9_980, "{refused} refused at once");
        assert_eq!(cache.get_ref().lookups(), 10_000 - refused);
        let stats = cache.stats();
        assert_eq!(
            stats.entries,
            (10_000 - refused) as u64,
            "only asked ids are cached"
        );
        assert!(cache.lookup(r.id()).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_created_id_gets_through_and_drops_a_cached_miss() {
        let r = record();
        let cache = CachedKeyStore::builder(Counting::default())
            .miss_ttl(Duration::from_secs(3600))
            .filter_passes_per_sec(0)
            .build();
        // No filter yet: the miss is asked for and cached.
        assert!(cache.lookup(r.id()).await.unwrap().is_none());
        cache.cache.resync(&[]);
        // Ruled out: while the feed is up, the lookup waits a moment for an
        // announcement, then refuses.
        assert!(cache.lookup_ready(r.id()).is_none());
        assert!(matches!(
            cache.lookup(r.id()).await,
            Err(StoreError::RuledOut)
        ));
        cache.get_ref().put(&r);
        cache.cache.created(r.id());
        assert!(cache.lookup(r.id()).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn m1_a_key_the_fresh_filter_has_not_heard_of_yet_is_found_with_one_query() {
        // Created on another instance; its notification is still on its way.
        let r = record();
        let cache = CachedKeyStore::new(Counting::with(&[&r]));
        cache.cache.resync(&[]);
        assert_eq!(cache.stats().filter, FilterState::Fresh);
        assert!(cache.lookup(r.id()).await.unwrap().is_some());
        assert_eq!(cache.get_ref().lookups(), 1, "one query");
        // It joined the filter: later lookups need no pass.
        assert_eq!(cache.cache.ids.admit(r.id(), false), Admission::Ask);
    }

    #[tokio::test]
    async fn a_filter_passes_a_bounded_number_and_learns_what_it_finds() {
        let r = record();
        let cache = CachedKeyStore::builder(Counting::with(&[&r]))
            .filter_passes_per_sec(3)
            .build();
        cache.cache.resync(&[]);
        cache.cache.ids.mark_stale();
        assert_eq!(cache.stats().filter, FilterState::Stale);
        // The real key, created while the feed was down, is the first to pass.
        assert!(cache.lookup(r.id()).await.unwrap().is_some());
        let shed = (0..100)
            .filter(|&n| {
                matches!(
                    cache.lookup_ready(&id_of(n)),
                    Some(Err(StoreError::Overloaded))
                )
            })
            .count();
        assert!((90..=98).contains(&shed), "{shed} shed");
        // Found once, it is in the filter: never shed again, even past the budget.
        cache.invalidate(r.id());
        assert!(cache.lookup(r.id()).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn the_hit_ttl_follows_the_feed_and_every_change_of_state_empties_the_cache() {
        let r = record();
        let cache = CachedKeyStore::builder(Counting::with(&[&r]))
            .hit_ttl(Duration::from_secs(3600))
            .stale_hit_ttl(Duration::from_millis(50))
            .unfollowed_hit_ttl(Duration::from_secs(3600))
            .build();
        cache.cache.resync(&[*r.id()]);
        cache.lookup(r.id()).await.unwrap();
        cache.cache.feed_down();
        assert!(!cache.contains(r.id()), "the feed went down: emptied");
        cache.lookup(r.id()).await.unwrap();
        assert!(cache.contains(r.id()));
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(
            !cache.contains(r.id()),
            "while down, records live the stale TTL"
        );
        cache.cache.resync(&[*r.id()]);
        cache.lookup(r.id()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(cache.contains(r.id()), "while up, the long hit TTL");
        cache.cache.unfollowed();
        assert!(!cache.contains(r.id()), "the listener stopped: emptied");
        assert_eq!(cache.stats().filter, FilterState::Off);
        assert_eq!(cache.get_ref().lookups(), 3);
    }

    #[test]
    fn debug_shows_settings_not_records() {
        let cache = CachedKeyStore::new(crate::InMemoryKeyStore::new());
        let shown = format!("{cache:?}");
        assert!(shown.contains("hit_ttl: 600s"), "{shown}");
    }
}
