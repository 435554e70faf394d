//! `PgKeyStore` as a [`KeyIdFeed`]: LISTEN on the created and revoked channels, then read
//! every id; a heartbeat on the LISTEN connection proves it is alive.

use async_trait::async_trait;
use futures_util::TryStreamExt;
use futures_util::stream::{self, StreamExt};
use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgListener, PgNotification};
use tokio::time::Instant;

use super::{Heartbeat, PgKeyStore};
use tower_apikey::KeyId;
use tower_apikey::StoreError;
use tower_apikey::store::feed::{KeyChange, KeyIdFeed, KeyIdSubscription};

/// Server-side TCP keepalives for the LISTEN connection: the server notices a listener
/// it can no longer reach after about 10 + 5 × 2 seconds and ends its backend. Ignored
/// by the server on a Unix socket.
const KEEPALIVES: &str =
    "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 2";

/// Follows `<table>_created` and `<table>_revoked` on a connection of its own (taken
/// from the store's pool for as long as the subscription lives), then reads every id.
///
/// Every insert (create, and the new key of a rotation) notifies `<table>_created` in
/// its own statement, and every revocation or early end notifies `<table>_revoked` in
/// its transaction, so a change is notified if and only if it commits. Any role that
/// can connect to the database can also send these notifications: the listener checks
/// created ids with [`existing`](KeyIdFeed::existing) before its filter trusts them,
/// and a forged "changed" notification only evicts a cached record, which the next
/// request reads again.
///
/// The changes stream ends with an error when the connection closes, or when a
/// heartbeat (`SELECT 1` on the LISTEN connection, see
/// [`PgKeyStore::heartbeat`]) does not answer in time.
#[async_trait]
impl KeyIdFeed for PgKeyStore {
    async fn subscribe(&self) -> Result<KeyIdSubscription, StoreError> {
        let mut listener = PgListener::connect_with(self.pool())
            .await
            .map_err(|e| self.error(e))?;
        // Report a lost connection instead of reconnecting inside `try_recv`: the
        // listener must take a new snapshot after every resubscription, which only it
        // can do.
        listener.eager_reconnect(false);
        sqlx::raw_sql(KEEPALIVES)
            .execute(&mut listener)
            .await
            .map_err(|e| self.error(e))?;
        listener
            .listen_all([self.sql.created_channel.as_str(), self.sql.channel.as_str()])
            .await
            .map_err(|e| self.error(e))?;
        // Read after LISTEN took effect: a key committed in between is in the snapshot,
        // notified, or both.
        let snapshot: Vec<KeyId> =
            sqlx::query_scalar::<_, String>(AssertSqlSafe(self.sql.select_ids.clone()))
                .fetch(self.pool())
                .map_err(|e| self.error(e))
                // An id that is not a valid `KeyId` can never be presented: leave it out.
                .try_filter_map(|id| async move { Ok(KeyId::new(&id).ok()) })
                .try_collect()
                .await?;
        let following = Following {
            listener,
            created: self.sql.created_channel.clone(),
            heartbeat: self.heartbeat,
            next_beat: Instant::now() + self.heartbeat.every,
        };
        let changes = stream::unfold(Some(following), |following| async move {
            let mut following = following?;
            match following.next().await {
                Ok(change) => Some((Ok(change), Some(following))),
                // The stream ends after its first error; the connection goes with it.
                Err(error) => Some((Err(error), None)),
            }
        })
        .boxed();
        Ok(KeyIdSubscription::new(snapshot, changes))
    }

    /// One indexed query for the whole batch, on the pool (not the LISTEN connection).
    async fn existing(&self, ids: &[KeyId]) -> Result<Vec<KeyId>, StoreError> {
        let texts: Vec<&str> = ids.iter().map(KeyId::as_str).collect();
        sqlx::query_scalar::<_, String>(AssertSqlSafe(self.sql.existing_ids.clone()))
            .bind(texts)
            .fetch(self.pool())
            .map_err(|e| self.error(e))
            .try_filter_map(|id| async move { Ok(KeyId::new(&id).ok()) })
            .try_collect()
            .await
    }

    fn is_closed(&self) -> bool {
        self.pool().is_closed()
    }
}

/// One subscription's LISTEN connection.
struct Following {
    listener: PgListener,
    created: String,
    heartbeat: Heartbeat,
    next_beat: Instant,
}

impl Following {
    /// The next change, or why the connection is to be given up.
    async fn next(&mut self) -> Result<KeyChange, StoreError> {
        loop {
            // `try_recv` is cancel-safe (sqlx reads whole messages into its buffer
            // before consuming them), so the heartbeat may interrupt it.
            let received = tokio::select! {
                received = self.listener.try_recv() => received,
                () = tokio::time::sleep_until(self.next_beat) => {
                    self.beat().await?;
                    continue;
                }
            };
            let notification = match received {
                Ok(Some(notification)) => notification,
                Ok(None) => return Err(StoreError::unavailable("the LISTEN connection closed")),
                Err(error) => return Err(StoreError::unavailable(error)),
            };
            if let Some(change) = self.change(&notification) {
                return Ok(change);
            }
        }
    }

    /// One heartbeat: a round trip on the LISTEN connection itself, which notifications
    /// received meanwhile wait out in sqlx's buffer.
    async fn beat(&mut self) -> Result<(), StoreError> {
        let timeout = self.heartbeat.timeout;
        match tokio::time::timeout(timeout, sqlx::query("SELECT 1").execute(&mut self.listener))
            .await
        {
            Ok(Ok(_)) => {
                self.next_beat = Instant::now() + self.heartbeat.every;
                Ok(())
            }
            Ok(Err(error)) => Err(StoreError::unavailable(error)),
            Err(_) => Err(StoreError::Timeout(timeout)),
        }
    }

    fn change(&self, notification: &PgNotification) -> Option<KeyChange> {
        let Ok(id) = KeyId::new(notification.payload()) else {
            tracing::warn!(
                channel = notification.channel(),
                payload_len = notification.payload().len(),
                "ignored a notification that is not a key id"
            );
            return None;
        };
        Some(if notification.channel() == self.created {
            KeyChange::Created(id)
        } else {
            KeyChange::Changed(id)
        })
    }
}
