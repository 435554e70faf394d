//! [`PgKeyStore`], as [`postgres`](super) documents.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgPool, Row};
use time::OffsetDateTime;

use tower_apikey::KeyId;
use tower_apikey::KeyRecord;
use tower_apikey::Scopes;
use tower_apikey::UsageSink;
use tower_apikey::event::{KeyEvent, NewEvent};
use tower_apikey::key::KeyDigest;
use tower_apikey::record::{
    ActorName, AllowedIps, KeyName, Quota, QuotaPeriod, RateLimit, RecentIps, TenantId,
};
use tower_apikey::store::{KeyStoreUpdate, KeyUpdate, OldKeyEnd, Revocation, RotateOutcome};
use tower_apikey::usage::{KeyUsage, UsageBatch, UsageCounts, UsageOutcome, UsageSinkError};
use tower_apikey::{KeyStore, KeyStoreAdmin, StoreError};

use super::sql::{self, Sql};
use super::{DEFAULT_HEARTBEAT_EVERY, DEFAULT_HEARTBEAT_TIMEOUT};

/// Why a schema or table name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} name {name:?} is not allowed: use 1 to {max} characters of a-z, 0-9 and _, \
     not starting with a digit"
)]
pub struct IdentifierError {
    what: &'static str,
    name: String,
    max: usize,
}

/// The longest schema name: PostgreSQL's identifier limit.
pub(super) const MAX_SCHEMA_LEN: usize = 63;
/// The longest table name: short enough that `<table>_revoked` (the notification
/// channel) and `<table>_newest` (the index) fit PostgreSQL's 63-byte identifiers.
pub(super) const MAX_TABLE_LEN: usize = 55;

/// Checks an identifier against `[a-z_][a-z0-9_]{0,max-1}`. Stricter than PostgreSQL
/// needs, so that a name is always safe to splice into SQL (quoted) and never depends
/// on case folding.
pub(super) fn identifier(
    what: &'static str,
    name: &str,
    max: usize,
) -> Result<String, IdentifierError> {
    let bytes = name.as_bytes();
    let valid = (1..=max).contains(&bytes.len())
        && !bytes[0].is_ascii_digit()
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(name.to_owned())
    } else {
        Err(IdentifierError {
            what,
            name: name.to_owned(),
            max,
        })
    }
}

/// Key records in a PostgreSQL table, through the application's pool.
///
/// Implements [`KeyStore`], [`KeyStoreAdmin`] and [`UsageSink`]. Clones share the pool.
/// `Debug` shows the table name only. See the [crate documentation](crate) for the
/// schema, cross-instance revocation and outages.
///
/// Every query goes through the pool: a backend error becomes
/// [`StoreError::Unavailable`] (or [`StoreError::Timeout`] when no connection could be
/// had within the pool's acquire timeout), and a row that does not make a valid record
/// becomes [`StoreError::Corrupt`]. No error is ever turned into "no such key".
#[derive(Clone)]
pub struct PgKeyStore {
    pub(super) pool: PgPool,
    pub(super) sql: Arc<Sql>,
    /// The role `migrate` trusts besides the connecting one.
    pub(super) owner: Option<Arc<str>>,
    /// How the feed's LISTEN connection proves it is alive.
    pub(super) heartbeat: Heartbeat,
}

/// A round trip on the LISTEN connection every `every`, answered within `timeout`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Heartbeat {
    pub(crate) every: Duration,
    pub(crate) timeout: Duration,
}

impl fmt::Debug for PgKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgKeyStore")
            .field(
                "table",
                &format_args!("{}.{}", self.sql.schema, self.sql.table),
            )
            .finish()
    }
}

impl PgKeyStore {
    /// A store on `pool`, in the table `public.api_keys`. Call
    /// [`migrate`](Self::migrate) once at startup to create it.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            sql: Arc::new(Sql::new("public".to_owned(), "api_keys".to_owned())),
            owner: None,
            heartbeat: Heartbeat {
                every: DEFAULT_HEARTBEAT_EVERY,
                timeout: DEFAULT_HEARTBEAT_TIMEOUT,
            },
        }
    }

    /// How the [`KeyIdFeed`](tower_apikey::store::feed::KeyIdFeed)'s LISTEN connection is checked: a
    /// `SELECT 1` on it every `every`, which must answer within `timeout` (defaults:
    /// [`DEFAULT_HEARTBEAT_EVERY`], [`DEFAULT_HEARTBEAT_TIMEOUT`]). A connection that
    /// is closed is noticed at once; one that is silently dead (a half-open TCP
    /// connection, a black-holed network path) is noticed within `every + timeout`,
    /// when the listener marks its caches stale and reconnects. The connection also
    /// asks the server for TCP keepalives, so the server drops a listener it can no
    /// longer reach.
    ///
    /// `every` is at least 100 ms and `timeout` at least 10 ms: shorter values are raised
    /// to those, so that a zero cannot turn the heartbeat into a busy loop of queries.
    pub fn heartbeat(self, every: Duration, timeout: Duration) -> Self {
        Self {
            heartbeat: Heartbeat {
                every: every.max(Duration::from_millis(100)),
                timeout: timeout.max(Duration::from_millis(10)),
            },
            ..self
        }
    }

    #[deprecated(note = "use PgKeyStore::heartbeat")]
    #[doc(hidden)]
    pub fn with_heartbeat(self, every: Duration, timeout: Duration) -> Self {
        self.heartbeat(every, timeout)
    }

    /// Uses the schema `schema` (default `public`). [`migrate`](Self::migrate) creates
    /// it if it is missing.
    ///
    /// # Errors
    ///
    /// Unless `schema` is 1 to 63 characters of `a-z`, `0-9` and `_`, not starting with
    /// a digit.
    pub fn with_schema(self, schema: &str) -> Result<Self, IdentifierError> {
        let schema = identifier("schema", schema, MAX_SCHEMA_LEN)?;
        let table = self.sql.table.clone();
        Ok(Self {
            sql: Arc::new(Sql::new(schema, table)),
            ..self
        })
    }

    /// Uses the table `table` (default `api_keys`). The notification channel is named
    /// after it: `<table>_revoked`.
    ///
    /// # Errors
    ///
    /// Unless `table` is 1 to 55 characters of `a-z`, `0-9` and `_`, not starting with
    /// a digit (55 so that the derived channel and index names fit PostgreSQL's limit).
    pub fn with_table(self, table: &str) -> Result<Self, IdentifierError> {
        let table = identifier("table", table, MAX_TABLE_LEN)?;
        let schema = self.sql.schema.clone();
        Ok(Self {
            sql: Arc::new(Sql::new(schema, table)),
            ..self
        })
    }

    /// Names the role that owns the schema's objects, when it is not the role this
    /// store connects as: [`migrate`](Self::migrate) then trusts a table (and schema)
    /// owned by `role` as well as one owned by the connecting role.
    ///
    /// For applications that migrate with one role and serve with another that holds
    /// only what serving needs: migrate as `owner` (which then owns the table), and let
    /// the serving role, connected as `app`, verify the schema at startup:
    ///
    /// ```no_run
    /// # async fn run(app_pool: sqlx::PgPool) -> Result<(), tower_apikey_postgres::MigrateError> {
    /// use tower_apikey_postgres::PgKeyStore;
    ///
    /// // `app` has USAGE on the schema and SELECT, INSERT, UPDATE on the table.
    /// let store = PgKeyStore::new(app_pool).with_owner("owner");
    /// store.migrate().await?; // creates nothing; fails if the table is not owner's
    /// # Ok(()) }
    /// ```
    ///
    /// The name is compared with the catalog as it is (PostgreSQL folds unquoted names
    /// to lower case: `CREATE ROLE Owner` makes `owner`). Name only a role you trust as
    /// much as the connecting one: whoever owns the table can plant keys in it.
    pub fn with_owner(self, role: impl Into<String>) -> Self {
        Self {
            owner: Some(role.into().into()),
            ..self
        }
    }

    /// The role named with [`with_owner`](Self::with_owner), if any.
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// The pool this store queries.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema name.
    pub fn schema(&self) -> &str {
        &self.sql.schema
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.sql.table
    }

    /// The channel revocations are notified on: `<table>_revoked`, with the key id as
    /// the payload.
    pub fn channel(&self) -> &str {
        &self.sql.channel
    }

    /// The channel created keys are notified on: `<table>_created`, with the key id as
    /// the payload.
    pub fn created_channel(&self) -> &str {
        &self.sql.created_channel
    }

    /// Maps a sqlx error, naming the acquire timeout when that is what happened.
    pub(super) fn error(&self, error: sqlx::Error) -> StoreError {
        match error {
            sqlx::Error::PoolTimedOut => {
                StoreError::Timeout(self.pool.options().get_acquire_timeout())
            }
            other => backend(other),
        }
    }
}

#[async_trait]
impl KeyStore for PgKeyStore {
    async fn lookup(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(self.sql.select.clone()))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        row.as_ref().map(record_from_row).transpose()
    }
}

#[async_trait]
impl KeyStoreAdmin for PgKeyStore {
    async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError> {
        let inserted = bind_record(sqlx::query(AssertSqlSafe(self.sql.insert.clone())), record)?
            .execute(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Duplicate(*record.id()));
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(self.sql.list.clone()))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        rows.iter().map(record_from_row).collect()
    }

    /// One statement per page, through the listing indexes `migrate` creates; see
    /// [`explain_list_page`](PgKeyStore::explain_list_page) to check the plan.
    async fn list_page(
        &self,
        query: &tower_apikey::store::KeyQuery,
    ) -> Result<tower_apikey::store::Page<KeyRecord>, StoreError> {
        self.page(query).await
    }

    /// Revokes, recording the actor in the same statement, and notifies
    /// `<table>_revoked` in one transaction. Revoking a revoked key keeps its first
    /// time and notifies again (harmless: caches evict an id).
    async fn revoke(
        &self,
        id: &KeyId,
        at: SystemTime,
        by: Option<&ActorName>,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let at = to_db(at)?;
        let mut tx = self.pool.begin().await.map_err(|e| self.error(e))?;
        let row = sqlx::query(AssertSqlSafe(self.sql.revoke.clone()))
            .bind(id.as_str())
            .bind(at)
            .bind(by.map(ActorName::as_str))
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.error(e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let record = record_from_row(&row)?;
        self.notify(&mut tx, id).await?;
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(Some(record))
    }

    async fn rotate(
        &self,
        old: &KeyId,
        new: &KeyRecord,
        end: OldKeyEnd,
    ) -> Result<RotateOutcome, StoreError> {
        Ok(self.rotate_with_events(old, new, end, &[]).await?.0)
    }

    /// The insert and its events in one transaction.
    async fn insert_with_events(
        &self,
        record: &KeyRecord,
        events: &[NewEvent],
    ) -> Result<Vec<KeyEvent>, StoreError> {
        if events.is_empty() {
            return self.insert(record).await.map(|()| Vec::new());
        }
        let mut tx = self.pool.begin().await.map_err(|e| self.error(e))?;
        let inserted = bind_record(sqlx::query(AssertSqlSafe(self.sql.insert.clone())), record)?
            .execute(&mut *tx)
            .await
            .map_err(|e| self.error(e))?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Duplicate(*record.id()));
        }
        let stored = self.insert_events(&mut tx, events).await?;
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(stored)
    }

    /// The rotation and its events in one transaction; a refused rotation rolls back
    /// and stores no event.
    async fn rotate_with_events(
        &self,
        old: &KeyId,
        new: &KeyRecord,
        end: OldKeyEnd,
        events: &[NewEvent],
    ) -> Result<(RotateOutcome, Vec<KeyEvent>), StoreError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.error(e))?;
        let outcome = self.rotate_in(&mut tx, old, new, end).await?;
        if !matches!(outcome, RotateOutcome::Rotated(_)) {
            return Ok((outcome, Vec::new()));
        }
        let stored = self.insert_events(&mut tx, events).await?;
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok((outcome, stored))
    }

    /// One recursive query (see `heirs.rs`).
    async fn live_heirs(&self, id: &KeyId, at: SystemTime) -> Result<Vec<KeyRecord>, StoreError> {
        self.find_live_heirs(id, at).await
    }

    /// One transaction: the key's row locked, then its live heirs locked oldest first
    /// and revoked until none is left, each notified, and the events (see `heirs.rs`).
    async fn revoke_with_heirs(
        &self,
        id: &KeyId,
        at: SystemTime,
        by: Option<&ActorName>,
        events: &[NewEvent],
    ) -> Result<Option<Revocation>, StoreError> {
        self.revoke_cascading(id, at, by, events).await
    }
}

#[async_trait]
impl KeyStoreUpdate for PgKeyStore {
    /// One `UPDATE` that also notifies `<table>_revoked`, so that every instance's
    /// cache drops the old record within the revocation bound.
    async fn update(
        &self,
        id: &KeyId,
        update: &KeyUpdate,
    ) -> Result<Option<KeyRecord>, StoreError> {
        self.update_in(&self.pool, id, update).await
    }

    /// The `UPDATE` (with its notification) and its events in one transaction.
    async fn update_with_events(
        &self,
        id: &KeyId,
        update: &KeyUpdate,
        events: &[NewEvent],
    ) -> Result<Option<(KeyRecord, Vec<KeyEvent>)>, StoreError> {
        if events.is_empty() {
            return Ok(self.update(id, update).await?.map(|r| (r, Vec::new())));
        }
        let mut tx = self.pool.begin().await.map_err(|e| self.error(e))?;
        let Some(record) = self.update_in(&mut *tx, id, update).await? else {
            return Ok(None);
        };
        let stored = self.insert_events(&mut tx, events).await?;
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(Some((record, stored)))
    }
}

impl PgKeyStore {
    /// The rotation, in `tx`, which the caller commits if it answers `Rotated`.
    async fn rotate_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
        old: &KeyId,
        new: &KeyRecord,
        end: OldKeyEnd,
    ) -> Result<RotateOutcome, StoreError> {
        // Lock the old row so a concurrent revoke or rotate of it waits for this one.
        let old_row: Option<Option<OffsetDateTime>> =
            sqlx::query_scalar(AssertSqlSafe(self.sql.lock_revoked_at.clone()))
                .bind(old.as_str())
                .fetch_optional(&mut **tx)
                .await
                .map_err(|e| self.error(e))?;
        match old_row {
            None => return Ok(RotateOutcome::NotFound),
            Some(Some(_)) => return Ok(RotateOutcome::Revoked),
            Some(None) => {}
        }
        // The old row is locked, so a concurrent rotation of it waits above until this
        // transaction ends, and then finds the successor this one stored.
        let heir: Option<String> =
            sqlx::query_scalar(AssertSqlSafe(self.sql.live_successor.clone()))
                .bind(old.as_str())
                .bind(to_db(new.created_at())?)
                .fetch_optional(&mut **tx)
                .await
                .map_err(|e| self.error(e))?;
        if let Some(heir) = heir {
            let heir = KeyId::new(&heir).map_err(|e| corrupt(&heir, e))?;
            return Ok(RotateOutcome::HasLiveSuccessor(heir));
        }
        // The successor of an `until_first_use` rotation carries the grace; its first
        // use (`record_usage_batch`) ends the old key.
        let graced;
        let new = match end {
            OldKeyEnd::UntilFirstUse(grace) => {
                graced = new.clone().with_predecessor_grace(Some(grace));
                &graced
            }
            _ => new,
        };
        let inserted = bind_record(sqlx::query(AssertSqlSafe(self.sql.insert.clone())), new)?
            .execute(&mut **tx)
            .await
            .map_err(|e| self.error(e))?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Duplicate(*new.id()));
        }
        let (statement, at) = match end {
            OldKeyEnd::Keep | OldKeyEnd::UntilFirstUse(_) => (&self.sql.select, None),
            OldKeyEnd::EndAt(at) => (&self.sql.end_at, Some(to_db(at)?)),
            OldKeyEnd::Revoke(at) => (&self.sql.revoke, Some(to_db(at)?)),
            // A plan a later core adds: refused before anything is committed.
            _ => return Err(StoreError::Unsupported("this way of ending the old key")),
        };
        let mut query = sqlx::query(AssertSqlSafe(statement.clone())).bind(old.as_str());
        if let Some(at) = at {
            query = query.bind(at);
        }
        if let OldKeyEnd::Revoke(_) = end {
            // Revoked by whoever rotated it.
            query = query.bind(new.created_by().map(ActorName::as_str));
        }
        let row = query
            .fetch_one(&mut **tx)
            .await
            .map_err(|e| self.error(e))?;
        let ended = record_from_row(&row)?;
        // An old key that is now revoked or ends must be evicted from every instance's
        // cache.
        if !matches!(end, OldKeyEnd::Keep | OldKeyEnd::UntilFirstUse(_)) {
            self.notify(tx, old).await?;
        }
        Ok(RotateOutcome::Rotated(ended))
    }
}

impl PgKeyStore {
    /// The `UPDATE` of `update`, through `executor` (the pool, or a transaction).
    async fn update_in<'c, E>(
        &self,
        executor: E,
        id: &KeyId,
        update: &KeyUpdate,
    ) -> Result<Option<KeyRecord>, StoreError>
    where
        E: sqlx::Executor<'c, Database = sqlx::Postgres>,
    {
        let rate = update.rate_limit_change();
        let quota = update.quota_change();
        let ips = update.allowed_ips_change();
        let row = sqlx::query(AssertSqlSafe(self.sql.update.clone()))
            .bind(id.as_str())
            .bind(update.name_change().map(KeyName::as_str))
            .bind(rate.is_some())
            .bind(rate.flatten().map(|l| i64::from(l.requests())))
            .bind(rate.flatten().map(|l| i64::from(l.per_secs())))
            .bind(quota.is_some())
            .bind(quota.flatten().map(|q| i64::from(q.requests())))
            .bind(quota.flatten().map(|q| q.per().as_str()))
            .bind(ips.is_some())
            .bind(ips.flatten().map(allowlist_column))
            .fetch_optional(executor)
            .await
            .map_err(|e| self.error(e))?;
        row.as_ref().map(record_from_row).transpose()
    }

    /// Queues the notification for `id`; PostgreSQL sends it when `tx` commits.
    pub(super) async fn notify(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
        id: &KeyId,
    ) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.sql.channel)
            .bind(id.as_str())
            .execute(&mut **tx)
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }
}

#[async_trait]
impl UsageSink for PgKeyStore {
    /// One `UPDATE` for the whole batch (and one for its client addresses, if any, in
    /// the same transaction). A stored `last_used_at` only moves forward: a retried,
    /// older batch changes nothing. Unknown ids are skipped.
    async fn record_usage(&self, batch: &[KeyUsage]) -> Result<(), UsageSinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut ids = Vec::with_capacity(batch.len());
        let mut times = Vec::with_capacity(batch.len());
        for usage in batch {
            ids.push(usage.key_id.as_str());
            times.push(to_db(usage.last_used_at).map_err(UsageSinkError::sink)?);
        }
        let sink_error = |e| UsageSinkError::sink(self.error(e));
        // One transaction, so that the times and the addresses are written together.
        let mut tx = self.pool.begin().await.map_err(sink_error)?;
        sqlx::query(AssertSqlSafe(self.sql.record_usage.clone()))
            .bind(ids)
            .bind(times)
            .execute(&mut *tx)
            .await
            .map_err(sink_error)?;
        super::recent_ips::add_recent_ips(&self.sql, &mut tx, batch)
            .await
            .map_err(sink_error)?;
        tx.commit().await.map_err(sink_error)?;
        Ok(())
    }

    /// As `record_usage`, in one transaction that also reports first uses.
    async fn record_usage_batch(
        &self,
        batch: &UsageBatch<'_>,
    ) -> Result<UsageOutcome, UsageSinkError> {
        self.record_usage_reporting(batch).await
    }

    fn counts(&self) -> Option<&dyn UsageCounts> {
        Some(self)
    }
}

pub(super) type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds a record's columns in the order of `sql::COLUMNS`.
pub(super) fn bind_record<'q>(
    query: PgQuery<'q>,
    record: &'q KeyRecord,
) -> Result<PgQuery<'q>, StoreError> {
    let scopes: Vec<&str> = record.scopes().iter().map(|s| s.as_str()).collect();
    Ok(query
        .bind(record.id().as_str())
        .bind(record.name().as_str())
        .bind(scopes)
        .bind(&record.digest().as_bytes()[..])
        .bind(to_db(record.created_at())?)
        .bind(to_db(record.expires_at())?)
        .bind(record.revoked_at().map(to_db).transpose()?)
        .bind(record.last_used_at().map(to_db).transpose()?)
        .bind(record.rotated_from().map(KeyId::as_str))
        .bind(record.ends_at().map(to_db).transpose()?)
        .bind(record.created_by().map(ActorName::as_str))
        .bind(record.revoked_by().map(ActorName::as_str))
        .bind(record.rate_limit().map(|l| i64::from(l.requests())))
        .bind(record.rate_limit().map(|l| i64::from(l.per_secs())))
        .bind(record.quota().map(|q| i64::from(q.requests())))
        .bind(record.quota().map(|q| q.per().as_str()))
        .bind(record.allowed_ips().map(allowlist_column))
        .bind(record.predecessor_grace().map(grace_to_db))
        .bind(super::recent_ips::column_value(record.recent_ips()))
        .bind(record.tenant().map(TenantId::as_str)))
}

/// An allowlist as its `text[]` column holds it.
fn allowlist_column(ips: &AllowedIps) -> Vec<String> {
    ips.nets().iter().map(ToString::to_string).collect()
}

/// A grace in whole microseconds, as `predecessor_grace_us` keeps it.
fn grace_to_db(grace: Duration) -> i64 {
    i64::try_from(grace.as_micros()).unwrap_or(i64::MAX)
}

/// `predecessor_grace_us` read back; negative is corrupt.
fn grace_from_row(row: &PgRow, id: KeyId) -> Result<Option<Duration>, StoreError> {
    column::<Option<i64>>(row, 17)?
        .map(|us| {
            u64::try_from(us)
                .map(Duration::from_micros)
                .map_err(|_| corrupt(id, format_args!("predecessor_grace_us: {us}")))
        })
        .transpose()
}

/// A row's rate limit, quota and allowlist.
type RowLimits = (Option<RateLimit>, Option<Quota>, Option<AllowedIps>);

/// The limits of a row (columns 12 to 16), checked as when they were made.
fn limits_from_row(row: &PgRow, id: KeyId) -> Result<RowLimits, StoreError> {
    let count = |index| -> Result<Option<u32>, StoreError> {
        column::<Option<i64>>(row, index)?
            .map(|n| {
                u32::try_from(n)
                    .map_err(|_| corrupt(id, format_args!("{}: {n}", sql::COLUMNS[index].name)))
            })
            .transpose()
    };
    let rate_limit = match (count(12)?, count(13)?) {
        (None, None) => None,
        (Some(requests), Some(per_secs)) => {
            Some(RateLimit::new(requests, per_secs).map_err(|e| corrupt(id, e))?)
        }
        _ => {
            return Err(corrupt(
                id,
                "only one of its rate limit's two columns is set",
            ));
        }
    };
    let per: Option<&str> = column(row, 15)?;
    let quota = match (count(14)?, per) {
        (None, None) => None,
        (Some(requests), Some(per)) => {
            let per = match per {
                "day" => QuotaPeriod::Day,
                "month" => QuotaPeriod::Month,
                other => return Err(corrupt(id, format_args!("quota_per: {other:?}"))),
            };
            Some(Quota::new(requests, per).map_err(|e| corrupt(id, e))?)
        }
        _ => return Err(corrupt(id, "only one of its quota's two columns is set")),
    };
    let ips: Option<Vec<String>> = column(row, 16)?;
    let allowed_ips = ips
        .map(AllowedIps::new)
        .transpose()
        .map_err(|e| corrupt(id, e))?;
    Ok((rate_limit, quota, allowed_ips))
}

/// Reads a row of `sql::COLUMNS` back into a record.
pub(super) fn record_from_row(row: &PgRow) -> Result<KeyRecord, StoreError> {
    let id: &str = column(row, 0)?;
    let id = KeyId::new(id).map_err(|e| corrupt(id, e))?;
    let name: &str = column(row, 1)?;
    let name = KeyName::new(name).map_err(|e| corrupt(id, e))?;
    let scopes: Vec<String> = column(row, 2)?;
    let scopes = Scopes::new(&scopes).map_err(|e| corrupt(id, e))?;
    let digest: &[u8] = column(row, 3)?;
    // Never show the bytes, only how many there are.
    let digest: [u8; 32] = digest.try_into().map_err(|_| {
        corrupt(
            id,
            format_args!("its digest is {} bytes, not 32", digest.len()),
        )
    })?;
    let time = |index| column::<OffsetDateTime>(row, index).and_then(from_db);
    let optional_time = |index| {
        column::<Option<OffsetDateTime>>(row, index)?
            .map(from_db)
            .transpose()
    };
    let rotated_from: Option<&str> = column(row, 8)?;
    let rotated_from = rotated_from
        .map(KeyId::new)
        .transpose()
        .map_err(|e| corrupt(id, e))?;
    let actor = |index| {
        column::<Option<&str>>(row, index)?
            .map(ActorName::new)
            .transpose()
            .map_err(|e| corrupt(id, format_args!("{}: {e}", sql::COLUMNS[index].name)))
    };
    let (rate_limit, quota, allowed_ips) = limits_from_row(row, id)?;
    let recent: Option<Vec<String>> = column(row, 18)?;
    let recent_ips = recent
        .unwrap_or_default()
        .iter()
        .map(|ip| ip.parse::<std::net::IpAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| corrupt(id, format_args!("recent_ips: {e}")))?;
    let tenant = tenant_from_row(row, 19).map_err(|e| corrupt(id, e))?;
    Ok(KeyRecord::new(
        id,
        name,
        scopes,
        KeyDigest::from_bytes(digest),
        time(4)?,
        time(5)?,
    )
    .with_revoked_at(optional_time(6)?)
    .with_last_used_at(optional_time(7)?)
    .with_rotated_from(rotated_from)
    .with_ends_at(optional_time(9)?)
    .with_created_by(actor(10)?)
    .with_revoked_by(actor(11)?)
    .with_rate_limit(rate_limit)
    .with_quota(quota)
    .with_allowed_ips(allowed_ips)
    .with_predecessor_grace(grace_from_row(row, id)?)
    .with_recent_ips(RecentIps::from_newest(recent_ips))
    .with_tenant(tenant))
}

/// The `tenant` column at `index` of a row (keys, events), checked as
/// [`TenantId::new`] checks it: the column's `CHECK` keeps bad values out, but a row
/// written while it was dropped must read as corrupt, not be trusted. The error says why,
/// for the caller to name the row.
pub(super) fn tenant_from_row(row: &PgRow, index: usize) -> Result<Option<TenantId>, String> {
    let tenant: Option<&str> = row
        .try_get(index)
        .map_err(|e| format!("tenant is unreadable: {e}"))?;
    tenant
        .map(TenantId::new)
        .transpose()
        .map_err(|e| format!("tenant: {e}"))
}

pub(super) fn column<'r, T>(row: &'r PgRow, index: usize) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(index).map_err(|e| {
        StoreError::Corrupt(format!(
            "column {} of the key table is unreadable: {e}",
            sql::COLUMNS[index].name
        ))
    })
}

pub(super) fn corrupt(id: impl fmt::Display, why: impl fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("the row of key {id} is invalid: {why}"))
}

pub(super) fn backend(error: sqlx::Error) -> StoreError {
    StoreError::unavailable(error)
}

/// A time as PostgreSQL stores it.
pub(super) fn to_db(at: SystemTime) -> Result<OffsetDateTime, StoreError> {
    crate::utc::from_system_time(at).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "the time {at:?} is outside the years -9999 to 9999 this store can hold"
        ))
    })
}

/// A time read from PostgreSQL.
pub(super) fn from_db(at: OffsetDateTime) -> Result<SystemTime, StoreError> {
    let since_epoch = at - OffsetDateTime::UNIX_EPOCH;
    let magnitude = Duration::try_from(since_epoch.abs()).ok();
    let converted = if since_epoch.is_negative() {
        magnitude.and_then(|d| UNIX_EPOCH.checked_sub(d))
    } else {
        magnitude.and_then(|d| UNIX_EPOCH.checked_add(d))
    };
    converted.ok_or_else(|| {
        StoreError::Corrupt(format!(
            "the time {at} is outside what this system can hold"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_lowercase_words_within_the_limit() {
        for good in ["api_keys", "_x", "t1", &"a".repeat(55)] {
            assert!(identifier("table", good, MAX_TABLE_LEN).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1abc",
            "ApiKeys",
            "api-keys",
            "api keys",
            "x\"; drop table y; --",
            "é",
            &"a".repeat(56),
        ] {
            let error = identifier("table", bad, MAX_TABLE_LEN).unwrap_err();
            assert!(error.to_string().contains("a-z, 0-9 and _"), "{error}");
        }
        assert!(identifier("schema", &"s".repeat(63), MAX_SCHEMA_LEN).is_ok());
    }

    #[test]
    fn times_round_trip_to_the_microsecond() {
        for at in [
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::new(1_800_000_000, 123_456_000),
            UNIX_EPOCH - Duration::from_secs(86_400),
        ] {
            assert_eq!(from_db(to_db(at).unwrap()).unwrap(), at);
        }
        let far = UNIX_EPOCH + Duration::from_secs(400 * 365 * 86_400 * 100);
        assert!(matches!(to_db(far), Err(StoreError::Corrupt(_))));
    }
}
