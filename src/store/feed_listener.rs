//! [`KeyFeedListener`]: keeps caches in step with a [`KeyIdFeed`] (feature `cache`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use crate::error::StoreError;
use crate::key::KeyId;
use crate::metrics;
use crate::store::cached::Cache;
use crate::store::cached::CachedKeyStore;
use crate::store::feed::{KeyChange, KeyIdFeed, KeyIdSubscription};

/// The first wait before subscribing again after the feed failed.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between attempts to subscribe.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The most created ids checked against the store in one call.
const MAX_CHECK_BATCH: usize = 256;
/// The most created ids announced and waiting for a check; past that, the stream is
/// left unread until the check under way ends (a flood of forged notifications holds
/// no more than this).
const MAX_UNCHECKED: usize = 4 * MAX_CHECK_BATCH;
/// How long one check of created ids may take before the feed counts as lost: a
/// batch of primary-key lookups answers in milliseconds from a healthy database.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How often, while the feed is down, the ids the stale filters shed are checked.
const SUSPECT_CHECK_EVERY: Duration = Duration::from_millis(100);

/// A subscription's stream of changes.
type Changes = futures_util::stream::BoxStream<'static, Result<KeyChange, StoreError>>;

/// Follows a [`KeyIdFeed`] and applies it to one or more [`CachedKeyStore`]s: fills
/// their id filters, adds created ids, evicts changed (revoked) ones.
///
/// Give it to the key manager
/// ([`KeyManagerBuilder::feed_listener`](crate::KeyManagerBuilder::feed_listener)): its
/// [background](crate::KeyManager::background) follows the feed, and its
/// [shutdown](crate::KeyManager::shutdown) stops it, last. (On its own,
/// [`run`](Self::run) is a future the application spawns: the library never starts a
/// task of its own. It runs until the `shutdown` future it was given completes, or
/// until the feed is closed for good. Dropping it also stops it.)
///
/// - Each time it (re)subscribes, first start included, it replaces the caches' id
///   filters from the new snapshot and clears their entries: a change made while it
///   was not following is lost, so anything cached before may be stale.
/// - When the feed fails (database restart, failover, a dead connection), it logs a
///   warning, marks the filters stale (ids they do not hold then reach the store at a
///   bounded rate, so a key created meanwhile is not locked out) and subscribes again
///   with exponential backoff (100 ms doubling up to 5 s by default). While it waits,
///   it checks a sample of the ids the filters shed against the store every 100 ms, so
///   that a flood of forged ids taking every pass cannot starve a key created meanwhile.
/// - Created ids are checked against the store ([`KeyIdFeed::existing`], one query per
///   batch) before any filter holds them: a forged notification changes nothing.
/// - When a filter holds more ids than it was sized for, it subscribes again at once
///   for a larger one, and keeps following the old subscription until the new one's
///   snapshot is in: no key created meanwhile is refused, and the caches keep their
///   entries.
/// - When it stops, the filters are dropped: every id is asked for again.
///
/// ```no_run
/// use tower_apikey::{KeyManager, KeyStoreAdmin, UsageSink};
/// use tower_apikey::store::cached::CachedKeyStore;
/// use tower_apikey::store::feed::KeyIdFeed;
///
/// // A store with a feed, such as `tower_apikey_postgres::PgKeyStore`.
/// # async fn run(store: impl KeyStoreAdmin + UsageSink + KeyIdFeed + Clone) {
/// let store = CachedKeyStore::new(store);
/// let manager = KeyManager::builder(store.clone())
///     .feed_listener(store.feed_listener())
///     .build();
/// let running = tokio::spawn(manager.background()); // follows the feed, among others
/// # }
/// ```
pub struct KeyFeedListener {
    feed: Arc<dyn KeyIdFeed>,
    caches: Vec<Arc<Cache>>,
    health: FeedHealth,
    first_backoff: Duration,
    max_backoff: Duration,
}

impl std::fmt::Debug for KeyFeedListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFeedListener")
            .field("feed", &self.feed)
            .field("caches", &self.caches.len())
            .field("first_backoff", &self.first_backoff)
            .field("max_backoff", &self.max_backoff)
            .finish()
    }
}

impl KeyFeedListener {
    /// A listener on `feed`, applying it to no cache yet.
    pub fn new(feed: impl KeyIdFeed) -> Self {
        Self {
            feed: Arc::new(feed),
            caches: Vec::new(),
            health: FeedHealth::default(),
            first_backoff: FIRST_BACKOFF,
            max_backoff: MAX_BACKOFF,
        }
    }

    /// Also applies the feed to `cache` (any number of caches can be added).
    pub fn evict_from<S>(mut self, cache: &CachedKeyStore<S>) -> Self {
        self.caches.push(cache.cache_handle());
        self
    }

    /// How long to wait before subscribing again: `first` after a failure, doubling up
    /// to `max` while attempts keep failing (defaults: 100 ms and 5 s).
    pub fn reconnect_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.first_backoff = first;
        self.max_backoff = max.max(first);
        self
    }

    /// A handle that tells whether this listener's feed is up; take it before
    /// [`run`](Self::run) consumes the listener.
    pub fn health(&self) -> FeedHealth {
        self.health.clone()
    }

    /// Follows the feed until `shutdown` completes or the feed is closed.
    ///
    /// A [`KeyManager`](crate::KeyManager) given this listener
    /// ([`KeyManagerBuilder::feed_listener`](crate::KeyManagerBuilder::feed_listener))
    /// runs it in its [`background`](crate::KeyManager::background) and stops it in its
    /// [`shutdown`](crate::KeyManager::shutdown): call this yourself only for a listener
    /// no manager runs.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        self.follow_until(shutdown).await;
    }

    /// [`run`](Self::run), for a listener that is kept (the manager's background may
    /// run again after it was dropped).
    pub(crate) async fn follow_until(&self, shutdown: impl Future<Output = ()> + Send) {
        metrics::feed_listening();
        // Whichever way this future ends, dropped included, the filters go: a filter
        // no one updates would refuse new keys for good.
        let _clear = ClearOnDrop(&self.caches, &self.health);
        tokio::select! {
            biased;
            () = shutdown => tracing::debug!(feed = ?self.feed, "key feed listener stopped"),
            () = self.follow() => {}
        }
    }

    /// Subscribes, applies, and subscribes again after every failure; returns only when
    /// the feed is closed.
    async fn follow(&self) {
        let mut backoff = self.first_backoff;
        // A subscription taken while the one before was still followed (its filter was
        // full): nothing was missed in between, so the caches keep their entries.
        let mut regrown: Option<KeyIdSubscription> = None;
        loop {
            let (subscription, continuous) = match regrown.take() {
                Some(subscription) => (subscription, true),
                None => {
                    if self.feed.is_closed() {
                        tracing::info!(feed = ?self.feed, "key feed closed: listener stops");
                        return;
                    }
                    match self.feed.subscribe().await {
                        Ok(subscription) => (subscription, false),
                        Err(error) => {
                            self.mark_stale();
                            tracing::warn!(
                                feed = ?self.feed,
                                %error,
                                retry_in = ?backoff,
                                "cannot follow key changes; cached keys stay valid up to their TTL"
                            );
                            self.wait_checking_suspects(backoff).await;
                            backoff = (backoff * 2).min(self.max_backoff);
                            continue;
                        }
                    }
                }
            };
            let (snapshot, mut changes) = subscription.into_parts();
            for cache in &self.caches {
                if continuous {
                    cache.regrow(&snapshot);
                } else {
                    cache.resync(&snapshot);
                }
            }
            self.health.set(true);
            if continuous {
                tracing::info!(feed = ?self.feed, ids = snapshot.len(), "id filter rebuilt larger; caches kept");
            } else {
                tracing::info!(
                    feed = ?self.feed,
                    ids = snapshot.len(),
                    "following key changes; id filter rebuilt, caches cleared"
                );
            }
            drop(snapshot);
            backoff = self.first_backoff;
            let why = match self.apply(&mut changes, true).await {
                Lost::Full => {
                    tracing::info!(feed = ?self.feed, "id filter full: taking a new snapshot, still following");
                    match self.resubscribe_following(&mut changes).await {
                        Ok(next) => {
                            regrown = Some(next);
                            continue;
                        }
                        Err(why) => why,
                    }
                }
                Lost::Failed(why) => why,
            };
            self.mark_stale();
            tracing::warn!(
                feed = ?self.feed,
                error = %why,
                "key feed lost; id filter stale until it is back"
            );
            self.wait_checking_suspects(backoff).await;
            backoff = (backoff * 2).min(self.max_backoff);
        }
    }

    /// Waits `wait` before subscribing again, meanwhile checking against the store,
    /// every [`SUSPECT_CHECK_EVERY`], a sample of the ids the stale filters shed: a key
    /// created while the feed is down joins the filter within that period of its first
    /// refusal (if it is sampled, and the store answers), and its retry gets through,
    /// however many forged ids arrive with it (DESIGN §6, red team L10).
    async fn wait_checking_suspects(&self, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        loop {
            let next = (tokio::time::Instant::now() + SUSPECT_CHECK_EVERY).min(until);
            tokio::time::sleep_until(next).await;
            let mut suspects: Vec<KeyId> = self
                .caches
                .iter()
                .flat_map(|cache| cache.ids.take_suspects())
                .collect();
            suspects.sort_unstable();
            suspects.dedup();
            for batch in suspects.chunks(MAX_CHECK_BATCH) {
                // The store is down too: nothing to learn until it is back.
                if self.confirm(batch).await.is_err() {
                    break;
                }
            }
            if next >= until {
                return;
            }
        }
    }

    /// Asks the store which of `ids` exist and puts those in every cache's filter; how
    /// many there were. Bounded by [`CHECK_TIMEOUT`]: while it runs the stream's own
    /// heartbeat is not polled, so a check stuck on a dead connection must end itself.
    async fn confirm(&self, ids: &[KeyId]) -> Result<usize, StoreError> {
        let found = tokio::time::timeout(CHECK_TIMEOUT, self.feed.existing(ids))
            .await
            .unwrap_or(Err(StoreError::Timeout(CHECK_TIMEOUT)))?;
        for id in &found {
            for cache in &self.caches {
                cache.created(id);
            }
        }
        Ok(found.len())
    }

    /// Subscribes again while still applying the current subscription's changes, so
    /// that the filters miss no key created meanwhile (DESIGN §6): the new subscription
    /// listens before it reads its snapshot, so every change is in the old stream, the
    /// snapshot or the new stream. Dropping the old stream's work halfway when the new
    /// subscription is ready loses nothing, for the same reason.
    async fn resubscribe_following(
        &self,
        changes: &mut Changes,
    ) -> Result<KeyIdSubscription, String> {
        let subscribing = self.feed.subscribe();
        tokio::pin!(subscribing);
        tokio::select! {
            subscribed = &mut subscribing => subscribed.map_err(|error| error.to_string()),
            // The old stream failed first: the gap is unknown, so start afresh.
            lost = self.apply(changes, false) => Err(match lost {
                Lost::Failed(why) => why,
                Lost::Full => unreachable!("apply(_, false) never stops for a full filter"),
            }),
        }
    }

    /// Applies changes until the feed fails or, if `stop_when_full`, a filter is full.
    ///
    /// A created id is announced to the caches the moment it arrives (lookups ask the
    /// store for it at once) and joins the filters only once the store confirms it
    /// ([`KeyIdFeed::existing`], up to [`MAX_CHECK_BATCH`] ids a query). The stream is
    /// read while a check runs: an announcement never waits for a query, so a key used
    /// on this instance at once after its creation elsewhere is not refused because a
    /// check of earlier ids was slow. At most [`MAX_UNCHECKED`] ids wait for their
    /// check; past that, the stream is left unread until the check ends.
    async fn apply(&self, changes: &mut Changes, stop_when_full: bool) -> Lost {
        // Every id announced and not yet settled; whatever is left is settled when this
        // ends, however it ends (a failure, a full filter, a cancelled resubscription).
        let mut announced = Announced::new(&self.caches);
        // Announced ids whose check has not started yet.
        let mut unchecked: Vec<KeyId> = Vec::new();
        let mut check: Option<Check<'_>> = None;
        loop {
            if check.is_none() && !unchecked.is_empty() {
                let batch: Vec<KeyId> = unchecked
                    .drain(..unchecked.len().min(MAX_CHECK_BATCH))
                    .collect();
                check = Some(Box::pin(async move {
                    let found = self.confirm(&batch).await;
                    (batch, found)
                }));
            }
            tokio::select! {
                // A finished check first: its ids settle before more are read.
                biased;
                (batch, found) = async { check.as_mut().expect("guarded").await }, if check.is_some() => {
                    check = None;
                    announced.settle(&batch);
                    match found {
                        Ok(found) if found < batch.len() => tracing::debug!(
                            feed = ?self.feed,
                            ignored = batch.len() - found,
                            "ignored created-key notifications for ids that do not exist"
                        ),
                        Ok(_) => {}
                        Err(error) => return Lost::Failed(format!("checking created ids: {error}")),
                    }
                }
                next = changes.next(), if unchecked.len() < MAX_UNCHECKED => match next {
                    None => return Lost::Failed("the feed ended".to_owned()),
                    Some(Err(error)) => return Lost::Failed(error.to_string()),
                    Some(Ok(KeyChange::Created(id))) => {
                        // Asked for at once, trusted only once the store confirms it.
                        announced.announce(id);
                        unchecked.push(id);
                    }
                    Some(Ok(KeyChange::Changed(id))) => {
                        tracing::debug!(key_id = %id, "changed elsewhere: evicted from cache");
                        for cache in &self.caches {
                            cache.invalidate(&id);
                        }
                    }
                },
            }
            if stop_when_full && self.caches.iter().any(|cache| cache.ids.is_full()) {
                return Lost::Full;
            }
        }
    }

    fn mark_stale(&self) {
        self.health.set(false);
        for cache in &self.caches {
            cache.feed_down();
        }
    }
}

/// Whether a [`KeyFeedListener`]'s feed is up: subscribed, with a snapshot applied and
/// its connection alive. From [`KeyFeedListener::health`]; clones share the state.
///
/// While it is down, the caches serve records for their stale hit TTL only (1 s by
/// default) and their id filters are stale. Each change is also logged: INFO when the
/// feed is followed again, WARN when it is lost.
#[derive(Debug, Clone, Default)]
pub struct FeedHealth(Arc<std::sync::atomic::AtomicBool>);

impl FeedHealth {
    /// Whether the feed is up now.
    pub fn is_up(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn set(&self, up: bool) {
        // The gauge moves on changes only, so that it counts the listeners that are up
        // (a listener resubscribing for a larger filter stays up).
        if self.0.swap(up, std::sync::atomic::Ordering::SeqCst) != up {
            metrics::feed_up(up);
        }
    }
}

/// The created ids announced to the caches and not yet settled: settled one check at a
/// time, and all that are left when it is dropped, whether the checks answered, failed
/// or were cancelled.
struct Announced<'a> {
    caches: &'a [Arc<Cache>],
    ids: Vec<KeyId>,
}

impl<'a> Announced<'a> {
    fn new(caches: &'a [Arc<Cache>]) -> Self {
        Self {
            caches,
            ids: Vec::new(),
        }
    }

    fn announce(&mut self, id: KeyId) {
        for cache in self.caches {
            cache.announced(std::slice::from_ref(&id));
        }
        self.ids.push(id);
    }

    /// The store answered for `batch`.
    fn settle(&mut self, batch: &[KeyId]) {
        for cache in self.caches {
            cache.settled(batch);
        }
        self.ids.retain(|id| !batch.contains(id));
    }
}

impl Drop for Announced<'_> {
    fn drop(&mut self) {
        for cache in self.caches {
            cache.settled(&self.ids);
        }
    }
}

/// One check of created ids against the store: the ids, and how many exist.
type Check<'a> =
    std::pin::Pin<Box<dyn Future<Output = (Vec<KeyId>, Result<usize, StoreError>)> + Send + 'a>>;

/// Why a subscription ended.
enum Lost {
    /// A filter holds more ids than it was sized for.
    Full,
    /// The feed failed.
    Failed(String),
}

struct ClearOnDrop<'a>(&'a [Arc<Cache>], &'a FeedHealth);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.1.set(false);
        for cache in self.0 {
            cache.unfollowed();
        }
    }
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use super::FeedHealth;

    #[test]
    fn the_feed_gauge_follows_changes_only_so_it_counts_listeners_up() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let gauge = || {
            handle
                .render()
                .lines()
                .find_map(|line| line.strip_prefix("apikey_feed_connected "))
                .map(|value| value.parse::<f64>().unwrap())
        };
        ::metrics::with_local_recorder(&recorder, || {
            crate::metrics::feed_listening();
            assert_eq!(
                gauge(),
                Some(0.0),
                "a listener that has not connected shows 0"
            );
            let health = FeedHealth::default();
            health.set(true);
            health.set(true); // resubscribed for a larger filter: still one up
            assert_eq!(gauge(), Some(1.0));
            health.set(false);
            health.set(false);
            assert_eq!(gauge(), Some(0.0));
        });
    }
}
