//! [`PgKeyStore`]'s events: the table `<table>_events`.

use std::time::SystemTime;

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Row};
use time::OffsetDateTime;

use super::aux_sql::{events_table, quoted};
use super::{PgKeyStore, from_db, tenant_from_row, to_db};
use tower_apikey::KeyId;
use tower_apikey::StoreError;
use tower_apikey::event::{
    EventDetail, EventId, EventQuery, EventStore, EventType, KeyEvent, NewEvent,
};
use tower_apikey::record::{ActorName, TenantId};
use tower_apikey::store::Page;

const EVENT_COLUMNS: &str =
    "id, type, key_id, actor, at, related_key_id, days, ends_at, attempts, tenant";

impl PgKeyStore {
    fn events_name(&self) -> String {
        quoted(&self.sql.schema, &events_table(&self.sql.table))
    }
}

impl PgKeyStore {
    /// The statement answering `query`, one row past its limit, with its arguments.
    /// Each filter is an equality the matching index leads with (`key_id`, `tenant`), so
    /// that `ORDER BY id DESC` comes from the index with no sort.
    fn events_statement(&self, query: &EventQuery) -> (String, Vec<EventArg>) {
        let mut args = Vec::new();
        let mut bind = |arg| {
            args.push(arg);
            format!("${}", args.len())
        };
        let mut clauses = Vec::new();
        if let Some(key) = query.key_id() {
            clauses.push(format!(
                "key_id = {}",
                bind(EventArg::Text(key.as_str().to_owned()))
            ));
        }
        if let Some(tenant) = query.tenant() {
            let tenant = bind(EventArg::Text(tenant.as_str().to_owned()));
            clauses.push(format!("tenant = {tenant}"));
        }
        if let Some(before) = query.before() {
            let before = i64::try_from(before.get()).unwrap_or(i64::MAX);
            clauses.push(format!("id < {}", bind(EventArg::Id(Some(before)))));
        }
        // One more than the page, to know whether there is a next one.
        let fetch = i64::try_from(query.limit().get() + 1).unwrap_or(i64::MAX);
        let limit = bind(EventArg::Id(Some(fetch)));
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        let statement = format!(
            "SELECT {EVENT_COLUMNS} FROM {}{filter} ORDER BY id DESC LIMIT {limit}",
            self.events_name()
        );
        (statement, args)
    }

    /// How PostgreSQL would read the page of events `query` asks for: the lines of
    /// `EXPLAIN`, for operators checking that a key's or a tenant's events are read
    /// through the indexes `migrate` created (`<table>_ev_key`, `<table>_ev_tnt`) and
    /// not by a `Seq Scan` of the events table (run `ANALYZE` after a bulk load).
    ///
    /// # Errors
    ///
    /// As [`events`](EventStore::events).
    pub async fn explain_events(&self, query: &EventQuery) -> Result<Vec<String>, StoreError> {
        let (statement, args) = self.events_statement(query);
        self.explain(&statement, |q| bind_event_args(q, args)).await
    }

    /// Stores `event` through `executor` (the pool, or the transaction of the change
    /// it describes): one `INSERT`; for `expiring`, `ON CONFLICT DO NOTHING` on the
    /// unique index `<table>_ev_once`, so that of several instances only one stores
    /// each threshold. The event's tenant is its key's, read from the key's row by the
    /// same statement (a primary-key lookup), so that every writer of events, the
    /// request path's included, need know only the key's id; in a change's
    /// transaction, the row as the change left it (a new key's included).
    pub(super) async fn insert_event<'c, E>(
        &self,
        executor: E,
        event: &NewEvent,
    ) -> Result<Option<KeyEvent>, StoreError>
    where
        E: sqlx::Executor<'c, Database = sqlx::Postgres>,
    {
        let events = self.events_name();
        let keys = format!("\"{}\".\"{}\"", self.sql.schema, self.sql.table);
        let statement = format!(
            "INSERT INTO {events}
                 (type, key_id, actor, at, related_key_id, days, ends_at, attempts, tenant)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
                     (SELECT k.tenant FROM {keys} AS k WHERE k.id = $2))
             ON CONFLICT (key_id, days) WHERE type = 'expiring' DO NOTHING
             RETURNING id, tenant"
        );
        let detail = event.detail();
        let days = detail.days.map(|d| i32::try_from(d).unwrap_or(i32::MAX));
        let attempts = detail
            .attempts
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        let stored: Option<(i64, Option<String>)> = sqlx::query_as(AssertSqlSafe(statement))
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
        let Some((id, tenant)) = stored else {
            return Ok(None);
        };
        let tenant = tenant
            .map(|t| TenantId::new(&t))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("the tenant of event {id}'s key: {e}")))?;
        Ok(Some(
            event
                .clone()
                .stored(EventId::new(id.unsigned_abs()))
                .with_tenant(tenant),
        ))
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

    /// One statement, read through `<table>_ev_key` for a key's events,
    /// `<table>_ev_tnt` for a tenant's, the primary key otherwise; see
    /// [`explain_events`](PgKeyStore::explain_events).
    async fn events(&self, query: &EventQuery) -> Result<Page<KeyEvent>, StoreError> {
        let (statement, args) = self.events_statement(query);
        let rows = bind_event_args(sqlx::query(AssertSqlSafe(statement)), args)
            .fetch_all(self.pool())
            .await
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

/// A value bound to an events statement, in order.
enum EventArg {
    Text(String),
    Id(Option<i64>),
}

fn bind_event_args(
    mut query: super::PgQuery<'static>,
    args: Vec<EventArg>,
) -> super::PgQuery<'static> {
    for arg in args {
        query = match arg {
            EventArg::Text(t) => query.bind(t),
            EventArg::Id(n) => query.bind(n),
        };
    }
    query
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
    let tenant = tenant_from_row(row, 9).map_err(|e| bad("tenant", &e))?;
    let detail = EventDetail::default()
        .with_related_key_id(related)
        .with_days(days.map(i32::unsigned_abs))
        .with_ends_at(ends_at.map(from_db).transpose()?)
        .with_attempts(attempts.map(i64::unsigned_abs));
    Ok(NewEvent::new(kind, key_id, from_db(at)?)
        .with_actor(actor)
        .with_detail(detail)
        .stored(EventId::new(id.unsigned_abs()))
        .with_tenant(tenant))
}
