//! [`RevocationListener`]: evicts ids revoked by any instance from this instance's caches.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;

use crate::store::cached::Cache;
use crate::{CachedKeyStore, KeyId, PgKeyStore};

/// The first wait before reconnecting after the connection failed.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Listens for the revocations a [`PgKeyStore`] notifies (`LISTEN <table>_revoked`) and
/// evicts each revoked id from one or more [`CachedKeyStore`]s.
///
/// [`run`](Self::run) is a future the application spawns, like the usage tracker's
/// flush loop: the library never starts a task of its own. It runs until the
/// `shutdown` future it was given completes (a signal, a `oneshot` receiver, a
/// cancellation token's `cancelled()`), or until the pool is closed. Dropping the
/// spawned task's future also stops it.
///
/// - It holds one connection of the store's pool for as long as it runs: size the pool
///   for it.
/// - Each time it (re)subscribes, first start included, it clears its caches: a
///   notification sent while it was not listening is lost, so anything cached before
///   may be stale.
/// - When the connection drops (database restart, failover, `pg_terminate_backend`),
///   it logs a warning and reconnects with exponential backoff (100 ms doubling up to
///   5 s by default) until it succeeds.
///
/// ```no_run
/// # async fn run(pool: sqlx::PgPool) {
/// use tower_apikey::{CachedKeyStore, PgKeyStore};
///
/// let store = CachedKeyStore::new(PgKeyStore::new(pool));
/// let listening = tokio::spawn(store.revocation_listener().run(async {
///     let _ = tokio::signal::ctrl_c().await;
/// }));
/// # }
/// ```
pub struct RevocationListener {
    pool: PgPool,
    channel: String,
    caches: Vec<Arc<Cache>>,
    first_backoff: Duration,
    max_backoff: Duration,
}

impl std::fmt::Debug for RevocationListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationListener")
            .field("channel", &self.channel)
            .field("caches", &self.caches.len())
            .field("first_backoff", &self.first_backoff)
            .field("max_backoff", &self.max_backoff)
            .finish()
    }
}

impl RevocationListener {
    /// A listener on `store`'s channel and pool, evicting from no cache yet.
    pub fn new(store: &PgKeyStore) -> Self {
        Self {
            pool: store.pool().clone(),
            channel: store.channel().to_owned(),
            caches: Vec::new(),
            first_backoff: FIRST_BACKOFF,
            max_backoff: MAX_BACKOFF,
        }
    }

    /// Also evicts revoked ids from `cache` (any number of caches can be added).
    pub fn evict_from<S>(mut self, cache: &CachedKeyStore<S>) -> Self {
        self.caches.push(cache.cache_handle());
        self
    }

    /// How long to wait before reconnecting: `first` after a failure, doubling up to
    /// `max` while attempts keep failing (defaults: 100 ms and 5 s).
    pub fn reconnect_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.first_backoff = first;
        self.max_backoff = max.max(first);
        self
    }

    /// Listens until `shutdown` completes or the pool is closed.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        tokio::select! {
            biased;
            () = shutdown => tracing::debug!(channel = %self.channel, "revocation listener stopped"),
            () = self.listen() => {}
        }
    }

    /// Subscribes, evicts, and resubscribes after every failure; returns only when the
    /// pool is closed.
    async fn listen(&self) {
        let mut backoff = self.first_backoff;
        loop {
            if self.pool.is_closed() {
                tracing::info!(channel = %self.channel, "pool closed: revocation listener stops");
                return;
            }
            match self.subscribe().await {
                Ok(mut listener) => {
                    self.clear();
                    tracing::info!(
                        channel = %self.channel,
                        "listening for revocations; caches cleared"
                    );
                    backoff = self.first_backoff;
                    let lost = self.receive(&mut listener).await;
                    tracing::warn!(
                        channel = %self.channel,
                        error = %lost,
                        "revocation listener lost its connection; reconnecting, then clearing caches"
                    );
                }
                Err(error) => tracing::warn!(
                    channel = %self.channel,
                    %error,
                    retry_in = ?backoff,
                    "cannot listen for revocations; cached keys stay valid up to their TTL"
                ),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.max_backoff);
        }
    }

    async fn subscribe(&self) -> Result<PgListener, sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        // Report a lost connection at once instead of reconnecting inside `try_recv`:
        // the caches must be cleared after every resubscription, which only this loop
        // can see.
        listener.eager_reconnect(false);
        listener.listen(&self.channel).await?;
        Ok(listener)
    }

    /// Evicts every notified id until the connection fails; returns why it did.
    async fn receive(&self, listener: &mut PgListener) -> String {
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => self.evict(notification.payload()),
                Ok(None) => return "connection closed".to_owned(),
                Err(error) => return error.to_string(),
            }
        }
    }

    fn evict(&self, payload: &str) {
        match KeyId::new(payload) {
            Ok(id) => {
                tracing::debug!(key_id = %id, "revoked elsewhere: evicted from cache");
                for cache in &self.caches {
                    cache.invalidate(&id);
                }
            }
            Err(_) => tracing::warn!(
                channel = %self.channel,
                payload_len = payload.len(),
                "ignored a notification that is not a key id"
            ),
        }
    }

    fn clear(&self) {
        for cache in &self.caches {
            cache.invalidate_all();
        }
    }
}

impl CachedKeyStore<PgKeyStore> {
    /// A [`RevocationListener`] on the wrapped store's channel that evicts from this
    /// cache; spawn its [`run`](RevocationListener::run).
    pub fn revocation_listener(&self) -> RevocationListener {
        RevocationListener::new(self.get_ref()).evict_from(self)
    }
}
