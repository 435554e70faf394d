//! [`PgKeyStore`]'s events: the table `<table>_events`.

use std::time::SystemTime;

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Row};
use time::OffsetDateTime;

use super::aux_sql::{events_table, quoted};
use super::{PgKeyStore, from_db, to_db};
use tower_apikey::KeyId;
use tower_apikey::StoreError;
use tower_apikey::event::{
    EventDetail, EventId, EventQuery, EventStore, EventType, KeyEvent, NewEvent,
};
use tower_apikey::record::ActorName;
use tower_apikey::store::Page;

const EVENT_COLUMNS: &str = "id, type, key_id, actor, at, related_key_id, days, ends_at, attempts";

impl PgKeyStore {
    fn events_name(&self) -> String {
        quoted(&self.sql.schema, &events_table(&self.sql.table))
    }
}

impl PgKeyStore {
    /// Stores `event` through `executor` (the pool, or the transaction of the change
    /// it describes): one `INSERT`; for `expiring`, `ON CONFLICT DO NOTHING` on the
    /// unique index `<table>_ev_once`, so that of several instances only one stores
    /// each threshold.
    pub(super) async fn insert_event<'c, E>(
        &self,
        executor: E,
        event: &NewEvent,
    ) -> Result<Option<KeyEvent>, StoreError>
    where
        E: sqlx::Executor<'c, Database = sqlx::Postgres>,
    {
        let events = self.events_name();
        let statement = format!(
            "INSERT INTO {events} (type, key_id, actor, at, related_key_id, days, ends_at, attempts)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (key_id, days) WHERE type = 'expiring' DO NOTHING
             RETURNING id"
        );
        let detail = event.detail();
        let days = detail.days.map(|d| i32::try_from(d).unwrap_or(i32::MAX));
        let attempts = detail
            .attempts
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        let id: Option<i64> = sqlx::query_scalar(AssertSqlSafe(statement))
            .bind(event.kind().as_str())
            .bind(event.key_id().as_str())
            .bind(event.actor().map(ActorName::as_str))
            .bind(to_db(event.at())?)
            .bind(detail.related_key_id.as_ref().map(KeyId::as_str))
            .bind(days)
            .bind(detail.ends_at.map(to_db).transpose()?)
            .bind(attempts)
            .fetch_optional(executor)
            .await
            .map_err(|e| self.error(e))?;
        Ok(id.map(|id| event.clone().stored(EventId::new(id.unsigned_abs()))))
    }

    /// Stores `events` in `tx`, the transaction of the change they describe, in order.
    pub(super) async fn insert_events(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
        events: &[NewEvent],
    ) -> Result<Vec<KeyEvent>, StoreError> {
        let mut stored = Vec::new();
        for event in events {
            if let Some(event) = self.insert_event(&mut **tx, event).await? {
                stored.push(event);
            }
        }
        Ok(stored)
    }
}

#[async_trait]
impl EventStore for PgKeyStore {
    /// One `INSERT` (see `insert_event`).
    async fn record_event(&self, event: &NewEvent) -> Result<Option<KeyEvent>, StoreError> {
        self.insert_event(self.pool(), event).await
    }

    async fn events(&self, query: &EventQuery) -> Result<Page<KeyEvent>, StoreError> {
        let events = self.events_name();
        // One more than the page, to know whether there is a next one.
        let fetch = i64::try_from(query.limit().get() + 1).unwrap_or(i64::MAX);
        let before = query
            .before()
            .map(|id| i64::try_from(id.get()).unwrap_or(i64::MAX));
        let rows = match query.key_id() {
            Some(key) => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT {EVENT_COLUMNS} FROM {events}
                     WHERE key_id = $1 AND ($2::bigint IS NULL OR id < $2)
                     ORDER BY key_id, id DESC LIMIT $3"
                )))
                .bind(key.as_str())
                .bind(before)
                .bind(fetch)
                .fetch_all(self.pool())
                .await
            }
            None => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT {EVENT_COLUMNS} FROM {events}
                     WHERE $1::bigint IS NULL OR id < $1
                     ORDER BY id DESC LIMIT $2"
                )))
                .bind(before)
                .bind(fetch)
                .fetch_all(self.pool())
                .await
            }
        }
        .map_err(|e| self.error(e))?;
        let events = rows
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(query.page(events))
    }

    async fn prune_events(&self, before: SystemTime) -> Result<u64, StoreError> {
        let at = to_db(before)?;
        let pruned = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {} WHERE at < $1",
            self.events_name()
        )))
        .bind(at)
        .execute(self.pool())
        .await
        .map_err(|e| self.error(e))?
        .rows_affected();
        Ok(pruned)
    }
}

fn event_from_row(row: &PgRow) -> Result<KeyEvent, StoreError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("an event row's {what} is unreadable: {e}"))
    };
    let get = |index: usize| -> Result<Option<String>, StoreError> {
        row.try_get::<Option<String>, _>(index)
            .map_err(|e| bad(EVENT_COLUMNS.split(", ").nth(index).unwrap_or("?"), &e))
    };
    let id: i64 = row.try_get(0).map_err(|e| bad("id", &e))?;
    let kind = get(1)?.unwrap_or_default();
    let kind = EventType::parse(&kind).ok_or_else(|| bad("type", &kind))?;
    let key_id = get(2)?.unwrap_or_default();
    let key_id = KeyId::new(&key_id).map_err(|e| bad("key_id", &e))?;
    let actor = get(3)?
        .map(|a| ActorName::new(&a))
        .transpose()
        .map_err(|e| bad("actor", &e))?;
    let at: OffsetDateTime = row.try_get(4).map_err(|e| bad("at", &e))?;
    let related = get(5)?
        .map(|k| KeyId::new(&k))
        .transpose()
        .map_err(|e| bad("related_key_id", &e))?;
    let days: Option<i32> = row.try_get(6).map_err(|e| bad("days", &e))?;
    let ends_at: Option<OffsetDateTime> = row.try_get(7).map_err(|e| bad("ends_at", &e))?;
    let attempts: Option<i64> = row.try_get(8).map_err(|e| bad("attempts", &e))?;
    let detail = EventDetail::default()
        .with_related_key_id(related)
        .with_days(days.map(i32::unsigned_abs))
        .with_ends_at(ends_at.map(from_db).transpose()?)
        .with_attempts(attempts.map(i64::unsigned_abs));
    Ok(NewEvent::new(kind, key_id, from_db(at)?)
        .with_actor(actor)
        .with_detail(detail)
        .stored(EventId::new(id.unsigned_abs())))
}
