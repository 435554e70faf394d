//! `PgKeyStore` as a [`KeyIdFeed`]: LISTEN on the created and revoked channels, then read
//! every id.

use async_trait::async_trait;
use futures_util::TryStreamExt;
use futures_util::stream::{self, StreamExt};
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgListener;

use super::PgKeyStore;
use crate::KeyId;
use crate::store::StoreError;
use crate::store::feed::{KeyChange, KeyIdFeed, KeyIdSubscription};

/// Follows `<table>_created` and `<table>_revoked` on a connection of its own (taken
/// from the store's pool for as long as the subscription lives), then reads every id.
///
/// Every insert (create, and the new key of a rotation) notifies `<table>_created` in
/// its own statement, and every revocation or early end notifies `<table>_revoked` in
/// its transaction, so a change is notified if and only if it commits.
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
        let created = self.sql.created_channel.clone();
        let changes = stream::unfold(Some(listener), move |listener| {
            let created = created.clone();
            async move {
                let mut listener = listener?;
                loop {
                    let notification = match listener.try_recv().await {
                        Ok(Some(notification)) => notification,
                        Ok(None) => {
                            let lost = StoreError::unavailable("the LISTEN connection closed");
                            return Some((Err(lost), None));
                        }
                        Err(error) => return Some((Err(StoreError::unavailable(error)), None)),
                    };
                    let Ok(id) = KeyId::new(notification.payload()) else {
                        tracing::warn!(
                            channel = notification.channel(),
                            payload_len = notification.payload().len(),
                            "ignored a notification that is not a key id"
                        );
                        continue;
                    };
                    let change = if notification.channel() == created {
                        KeyChange::Created(id)
                    } else {
                        KeyChange::Changed(id)
                    };
                    return Some((Ok(change), Some(listener)));
                }
            }
        })
        .boxed();
        Ok(KeyIdSubscription::new(snapshot, changes))
    }

    fn is_closed(&self) -> bool {
        self.pool().is_closed()
    }
}
