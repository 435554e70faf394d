//! [`PgKeyStore`]'s daily request counts, read back and pruned: the table
//! `<table>_usage`, and `<table>_ubatch`, which counts each batch once.

use std::time::SystemTime;

use async_trait::async_trait;
use sqlx::AssertSqlSafe;

use super::aux_sql::{batches_table, quoted, usage_table};
use super::usage::{from_date, to_date};
use super::{PgKeyStore, to_db};
use tower_apikey::KeyId;
use tower_apikey::StoreError;
use tower_apikey::usage::{UsageCounts, UsageDay};

impl PgKeyStore {
    /// Runs `statement` (`$1` a key or tenant, `$2` the first day, `$3` the last;
    /// answering a day and a count a row) and reads its rows.
    pub(super) async fn days(
        &self,
        statement: String,
        subject: &str,
        from: UsageDay,
        to: UsageDay,
    ) -> Result<Vec<(UsageDay, u64)>, StoreError> {
        let rows: Vec<(time::Date, i64)> = sqlx::query_as(AssertSqlSafe(statement))
            .bind(subject)
            .bind(to_date(from))
            .bind(to_date(to))
            .fetch_all(self.pool())
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows
            .into_iter()
            .map(|(day, n)| (from_date(day), n.unsigned_abs()))
            .collect())
    }
}

#[async_trait]
impl UsageCounts for PgKeyStore {
    async fn daily_requests(
        &self,
        key_id: &KeyId,
        from: UsageDay,
        to: UsageDay,
    ) -> Result<Vec<(UsageDay, u64)>, StoreError> {
        let usage = quoted(&self.sql.schema, &usage_table(&self.sql.table));
        let statement = format!(
            "SELECT day, requests FROM {usage}
             WHERE key_id = $1 AND day BETWEEN $2 AND $3 ORDER BY day"
        );
        self.days(statement, key_id.as_str(), from, to).await
    }

    /// Deletes daily counts and counted batch ids older than `before`, in one
    /// transaction.
    async fn prune_usage(&self, before: SystemTime) -> Result<(), StoreError> {
        let at = to_db(before)?;
        let schema = &self.sql.schema;
        let table = &self.sql.table;
        let mut tx = self.pool().begin().await.map_err(|e| self.error(e))?;
        for statement in [
            format!(
                "DELETE FROM {} WHERE day < ($1 AT TIME ZONE 'UTC')::date",
                quoted(schema, &usage_table(table))
            ),
            format!(
                "DELETE FROM {} WHERE at < $1",
                quoted(schema, &batches_table(table))
            ),
        ] {
            sqlx::query(AssertSqlSafe(statement))
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.error(e))?;
        }
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(())
    }
}
