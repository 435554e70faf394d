//! [`PgKeyStore`]'s usage writes that report first uses.

use sqlx::AssertSqlSafe;

use super::{PgKeyStore, to_db};
use crate::key::KeyId;
use crate::usage::{UsageBatch, UsageError, UsageOutcome};

impl PgKeyStore {
    /// One transaction: keys with no `last_used_at` get theirs first (their ids are the
    /// first uses; a concurrent instance's write re-checks `IS NULL` on the row it
    /// waited for, so only one reports each), then every other key's time moves forward.
    pub(super) async fn record_usage_reporting(
        &self,
        batch: &UsageBatch<'_>,
    ) -> Result<UsageOutcome, UsageError> {
        let usages = batch.usages();
        if usages.is_empty() {
            return Ok(UsageOutcome::default());
        }
        let mut ids = Vec::with_capacity(usages.len());
        let mut times = Vec::with_capacity(usages.len());
        for usage in usages {
            ids.push(usage.key_id.as_str());
            times.push(to_db(usage.last_used_at).map_err(UsageError::sink)?);
        }
        let sink_error = |e| UsageError::sink(self.error(e));
        let t = format!("\"{}\".\"{}\"", self.sql.schema, self.sql.table);
        let first_use = format!(
            "UPDATE {t} AS k SET last_used_at = u.at
             FROM (SELECT id, max(at) AS at
                   FROM UNNEST($1::text[], $2::timestamptz[]) AS b(id, at)
                   GROUP BY id) AS u
             WHERE k.id = u.id AND k.last_used_at IS NULL
             RETURNING k.id"
        );
        let mut tx = self.pool.begin().await.map_err(sink_error)?;
        let first: Vec<String> = sqlx::query_scalar(AssertSqlSafe(first_use))
            .bind(&ids)
            .bind(&times)
            .fetch_all(&mut *tx)
            .await
            .map_err(sink_error)?;
        sqlx::query(AssertSqlSafe(self.sql.record_usage.clone()))
            .bind(&ids)
            .bind(&times)
            .execute(&mut *tx)
            .await
            .map_err(sink_error)?;
        tx.commit().await.map_err(sink_error)?;
        // Ids came from our own batch, so they parse; anything else is skipped.
        let first_used = first.iter().filter_map(|id| KeyId::new(id).ok()).collect();
        Ok(UsageOutcome::new(first_used))
    }
}
