//! [`PgKeyStore`]'s usage writes that report first uses.

use sqlx::AssertSqlSafe;

use super::aux_sql::{batches_table, quoted, usage_table};
use super::{PgKeyStore, from_db, to_db};
use tower_apikey::KeyId;
use tower_apikey::usage::UsageDay;
use tower_apikey::usage::{RotationEnd, UsageBatch, UsageOutcome, UsageSinkError};

/// A first use as `first_use` returns it: the key, its predecessor, the grace (µs) its
/// first use gives that predecessor, and the use.
type FirstUse = (String, Option<String>, Option<i64>, time::OffsetDateTime);

impl PgKeyStore {
    /// In `tx`: records the batch id in `<table>_ubatch`; only if it is new, adds the
    /// batch's daily counts to `<table>_usage`. A retry of a batch that committed
    /// (after a timeout, say) thus adds nothing.
    async fn add_counts(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
        batch: &UsageBatch<'_>,
    ) -> Result<(), sqlx::Error> {
        let mut keys = Vec::new();
        let mut days = Vec::new();
        let mut requests = Vec::new();
        for usage in batch.usages() {
            for (day, n) in usage.requests() {
                keys.push(usage.key_id.as_str());
                days.push(to_date(day));
                requests.push(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        if keys.is_empty() {
            return Ok(());
        }
        let (schema, table) = (&self.sql.schema, &self.sql.table);
        let at = batch
            .usages()
            .iter()
            .map(|u| u.last_used_at)
            .max()
            .and_then(|at| to_db(at).ok())
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let new = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {} (id, at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
            quoted(schema, &batches_table(table))
        )))
        .bind(batch.id().to_hex())
        .bind(at)
        .execute(&mut **tx)
        .await?
        .rows_affected()
            == 1;
        if !new {
            tracing::debug!(batch = %batch.id(), "usage batch already counted; counts skipped");
            return Ok(());
        }
        let usage = quoted(schema, &usage_table(table));
        let key_table = quoted(schema, table);
        // A new day's row takes its key's tenant, a primary-key lookup per key and day
        // (DESIGN §14; see `tenant_usage.rs`); an existing one keeps the tenant it has,
        // the key's too, since a key's tenant never changes.
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {usage} AS u (key_id, day, requests, tenant)
             SELECT b.key_id, b.day, sum(b.n)::bigint,
                    (SELECT k.tenant FROM {key_table} AS k WHERE k.id = b.key_id)
             FROM UNNEST($1::text[], $2::date[], $3::bigint[]) AS b(key_id, day, n)
             GROUP BY b.key_id, b.day
             ON CONFLICT (key_id, day) DO UPDATE SET requests = u.requests + EXCLUDED.requests"
        )))
        .bind(keys)
        .bind(days)
        .bind(requests)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// One transaction: keys with no `last_used_at` get theirs first (their ids are the
    /// first uses; a concurrent instance's write re-checks `IS NULL` on the row it
    /// waited for, so only one reports each), then every other key's time moves forward,
    /// then the first uses end the keys they replaced by `until_first_use` rotations.
    pub(super) async fn record_usage_reporting(
        &self,
        batch: &UsageBatch<'_>,
    ) -> Result<UsageOutcome, UsageSinkError> {
        let usages = batch.usages();
        if usages.is_empty() {
            return Ok(UsageOutcome::default());
        }
        let mut ids = Vec::with_capacity(usages.len());
        let mut times = Vec::with_capacity(usages.len());
        for usage in usages {
            ids.push(usage.key_id.as_str());
            times.push(to_db(usage.last_used_at).map_err(UsageSinkError::sink)?);
        }
        let sink_error = |e| UsageSinkError::sink(self.error(e));
        let mut tx = self.pool.begin().await.map_err(sink_error)?;
        let first: Vec<FirstUse> = sqlx::query_as(AssertSqlSafe(self.sql.first_use.clone()))
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
        let ended = self.end_predecessors(&mut tx, &first).await?;
        self.add_counts(&mut tx, batch).await.map_err(sink_error)?;
        super::recent_ips::add_recent_ips(&self.sql, &mut tx, usages)
            .await
            .map_err(sink_error)?;
        // Ids came from our own batch, so they parse; anything else is skipped.
        let first_used: Vec<KeyId> = first
            .iter()
            .filter_map(|(id, ..)| KeyId::new(id).ok())
            .collect();
        // The first uses and the ends with their events, in this transaction.
        let events = if batch.wants_events() {
            self.insert_events(&mut tx, &batch.events_of(&first_used, &ended))
                .await
                .map_err(UsageSinkError::sink)?
        } else {
            Vec::new()
        };
        tx.commit().await.map_err(sink_error)?;
        Ok(UsageOutcome::new(first_used)
            .with_ended(ended)
            .with_events(events))
    }

    /// In `tx`, with the first uses just stored: ends the old keys of `until_first_use`
    /// rotations (`ends_at` = the use plus the grace, where that ends the key sooner)
    /// and notifies `<table>_revoked` for each, so that every instance's cache drops
    /// its copy when the transaction commits, as for a revocation.
    async fn end_predecessors(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
        first: &[FirstUse],
    ) -> Result<Vec<RotationEnd>, UsageSinkError> {
        let sink_error = |e| UsageSinkError::sink(self.error(e));
        let mut olds = Vec::new();
        let mut successors = Vec::new();
        let mut ends = Vec::new();
        for (id, old, grace_us, at) in first {
            let (Some(old), Some(grace_us)) = (old, grace_us) else {
                continue;
            };
            // A negative grace is a corrupt row: it ends nothing.
            if *grace_us < 0 {
                continue;
            }
            let Some(end) = at.checked_add(time::Duration::microseconds(*grace_us)) else {
                continue;
            };
            olds.push(old.as_str());
            successors.push(id.as_str());
            ends.push(end);
        }
        if olds.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(String, String, time::OffsetDateTime)> =
            sqlx::query_as(AssertSqlSafe(self.sql.end_predecessors.clone()))
                .bind(&olds)
                .bind(&successors)
                .bind(&ends)
                .fetch_all(&mut **tx)
                .await
                .map_err(sink_error)?;
        let mut ended = Vec::with_capacity(rows.len());
        for (old, successor, at) in rows {
            let (Ok(old), Ok(successor), Ok(at)) =
                (KeyId::new(&old), KeyId::new(&successor), from_db(at))
            else {
                continue;
            };
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(&self.sql.channel)
                .bind(old.as_str())
                .execute(&mut **tx)
                .await
                .map_err(sink_error)?;
            ended.push(RotationEnd::new(old, successor, at));
        }
        Ok(ended)
    }
}

/// A day as PostgreSQL's `date`: the Julian day of 1970-01-01 is 2 440 588.
pub(super) fn to_date(day: UsageDay) -> time::Date {
    time::Date::from_julian_day(2_440_588 + day.days_since_epoch() as i32)
        .unwrap_or(time::Date::MAX)
}

/// A `date` as a day; days before 1970 become 1970-01-01.
pub(super) fn from_date(date: time::Date) -> UsageDay {
    UsageDay::from_days_since_epoch(u32::try_from(date.to_julian_day() - 2_440_588).unwrap_or(0))
}
