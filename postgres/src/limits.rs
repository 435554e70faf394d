//! [`PgKeyStore`] as a [`LimitBackend`]: the shared ledger in `<table>_limits`, the
//! instances' heartbeats in `<table>_linst`, one transaction per lease and one
//! statement per heartbeat.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sqlx::AssertSqlSafe;

use super::PgKeyStore;
use super::aux_sql::{instances_table, limits_table, quoted};
use tower_apikey::limits::LedgerState;
use tower_apikey::limits::{INSTANCE_TTL, InstanceId, Lease, LeaseRequest, LimitBackend};
use tower_apikey::store::BoxError;

#[async_trait]
impl LimitBackend for PgKeyStore {
    /// One transaction of two statements: the key's ledger row, made if missing and
    /// locked (`ON CONFLICT DO UPDATE` locks the row it finds, so concurrent leases of
    /// one key queue here), with the database's time; then the new state, this
    /// instance's heartbeat and the count of live instances. The database's clock is
    /// the one timeline of every instance, whatever their own clocks say.
    async fn lease(&self, request: &LeaseRequest) -> Result<Lease, BoxError> {
        let (schema, table) = (&self.sql.schema, &self.sql.table);
        let ledger = quoted(schema, &limits_table(table));
        let instances = quoted(schema, &instances_table(table));
        let mut tx = self.pool.begin().await?;
        let (tat, period, spent, now_us): (i64, i32, i64, i64) =
            sqlx::query_as(AssertSqlSafe(format!(
                "INSERT INTO {ledger} AS l (key_id, tat_ns, period, spent) VALUES ($1, 0, 0, 0)
                 ON CONFLICT (key_id) DO UPDATE SET key_id = l.key_id
                 RETURNING tat_ns, period, spent,
                           (extract(epoch FROM clock_timestamp()) * 1000000)::bigint"
            )))
            .bind(request.key.as_str())
            .fetch_one(&mut *tx)
            .await?;
        let now = UNIX_EPOCH + Duration::from_micros(u64::try_from(now_us).unwrap_or(0));
        let state = LedgerState {
            tat_nanos: u64::try_from(tat).unwrap_or(0),
            period: u32::try_from(period).unwrap_or(0),
            spent: u32::try_from(spent).unwrap_or(u32::MAX),
        };
        let outcome = state.lease(request, now);
        let live: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "WITH written AS (
                 UPDATE {ledger} SET tat_ns = $2, period = $3, spent = $4 WHERE key_id = $1
             ), beat AS (
                 INSERT INTO {instances} AS i (instance, seen_at) VALUES ($5, clock_timestamp())
                 ON CONFLICT (instance) DO UPDATE SET seen_at = EXCLUDED.seen_at
             ), gone AS (
                 DELETE FROM {instances}
                 WHERE seen_at < clock_timestamp() - interval '1 hour' AND instance <> $5
             )
             SELECT count(*) FILTER (WHERE instance <> $5) + 1 FROM {instances}
             WHERE seen_at > clock_timestamp() - make_interval(secs => $6)"
        )))
        .bind(request.key.as_str())
        .bind(i64::try_from(outcome.state.tat_nanos).unwrap_or(i64::MAX))
        .bind(i32::try_from(outcome.state.period).unwrap_or(i32::MAX))
        .bind(i64::from(outcome.state.spent))
        .bind(request.instance.to_string())
        .bind(INSTANCE_TTL.as_secs_f64())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let live = u32::try_from(live).unwrap_or(u32::MAX);
        Ok(Lease::new(outcome.granted, outcome.exhausted, live))
    }

    /// One statement: this instance's heartbeat, on the database's clock, and the count
    /// of live instances, as a lease writes and counts them, without touching the
    /// ledger (so a lock on the ledger does not stop it).
    async fn heartbeat(&self, instance: InstanceId, _now: SystemTime) -> Result<u32, BoxError> {
        let instances = quoted(&self.sql.schema, &instances_table(&self.sql.table));
        let live: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "WITH beat AS (
                 INSERT INTO {instances} AS i (instance, seen_at) VALUES ($1, clock_timestamp())
                 ON CONFLICT (instance) DO UPDATE SET seen_at = EXCLUDED.seen_at
             ), gone AS (
                 DELETE FROM {instances}
                 WHERE seen_at < clock_timestamp() - interval '1 hour' AND instance <> $1
             )
             SELECT count(*) FILTER (WHERE instance <> $1) + 1 FROM {instances}
             WHERE seen_at > clock_timestamp() - make_interval(secs => $2)"
        )))
        .bind(instance.to_string())
        .bind(INSTANCE_TTL.as_secs_f64())
        .fetch_one(&self.pool)
        .await?;
        Ok(u32::try_from(live).unwrap_or(u32::MAX).max(1))
    }
}
