//! The statements of one [`PgKeyStore`](super::PgKeyStore), built once per table name.
//!
//! Table and schema names cannot be bind parameters, so they are spliced in, quoted,
//! after [`identifier`](super::identifier) has restricted them to `[a-z0-9_]`: nothing
//! else from outside ever reaches the SQL text. Building the text once keeps the hot
//! path (`select`) free of formatting, and sqlx prepares each statement once per
//! connection.

use std::sync::Arc;

/// The record columns, in the order `bind_record` binds and `record_from_row` reads.
pub(super) const COLUMN_NAMES: [&str; 9] = [
    "id",
    "name",
    "scopes",
    "digest",
    "created_at",
    "expires_at",
    "revoked_at",
    "last_used_at",
    "rotated_from",
];
const COLUMNS: &str =
    "id, name, scopes, digest, created_at, expires_at, revoked_at, last_used_at, rotated_from";

pub(super) struct Sql {
    pub(super) schema: String,
    pub(super) table: String,
    /// `<table>_revoked`: revocations and early ends, the key id as payload.
    pub(super) channel: String,
    /// `<table>_created`: inserted keys, the key id as payload.
    pub(super) created_channel: String,
    pub(super) create_schema: Arc<str>,
    pub(super) create_table: Arc<str>,
    pub(super) create_index: Arc<str>,
    /// `$1` id.
    pub(super) select: Arc<str>,
    /// `$1`..`$9` the columns; inserts nothing on an existing id, and notifies
    /// `<table>_created` in the same statement when it inserts.
    pub(super) insert: Arc<str>,
    pub(super) list: Arc<str>,
    /// Every id, for the id filter's snapshot.
    pub(super) select_ids: Arc<str>,
    /// `$1` id, `$2` time; keeps an earlier revocation.
    pub(super) revoke: Arc<str>,
    /// `$1` id; the old key of a rotation, locked for the transaction.
    pub(super) lock_revoked_at: Arc<str>,
    /// `$1` id, `$2` time; never extends the expiry.
    pub(super) expire_early: Arc<str>,
    /// `$1` id, `$2` time.
    pub(super) revoke_at: Arc<str>,
    /// `$1` ids, `$2` times.
    pub(super) record_usage: Arc<str>,
}

impl Sql {
    pub(super) fn new(schema: String, table: String) -> Self {
        let t = format!("\"{schema}\".\"{table}\"");
        let channel = format!("{table}_revoked");
        let created_channel = format!("{table}_created");
        let create_table = format!(
            "CREATE TABLE IF NOT EXISTS {t} (
                id text PRIMARY KEY,
                name text NOT NULL,
                scopes text[] NOT NULL,
                digest bytea NOT NULL CHECK (octet_length(digest) = 32),
                created_at timestamptz NOT NULL,
                expires_at timestamptz NOT NULL,
                revoked_at timestamptz,
                last_used_at timestamptz,
                rotated_from text
            )"
        );
        let create_index =
            format!("CREATE INDEX IF NOT EXISTS \"{table}_newest\" ON {t} (created_at DESC, id)");
        // `GROUP BY` guards the "each key once per batch" rule: with duplicates, an
        // `UPDATE … FROM` would apply an arbitrary one of them.
        let record_usage = format!(
            "UPDATE {t} AS k SET last_used_at = u.at
             FROM (SELECT id, max(at) AS at
                   FROM UNNEST($1::text[], $2::timestamptz[]) AS b(id, at)
                   GROUP BY id) AS u
             WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.at)"
        );
        Self {
            create_schema: format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"").into(),
            create_table: create_table.into(),
            create_index: create_index.into(),
            select: format!("SELECT {COLUMNS} FROM {t} WHERE id = $1").into(),
            // One statement, so the notification is sent if and only if the row commits;
            // it counts one row per key inserted, like the INSERT alone.
            insert: format!(
                "WITH inserted AS (
                     INSERT INTO {t} ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                     ON CONFLICT (id) DO NOTHING
                     RETURNING id)
                 SELECT pg_notify('{created_channel}', id) FROM inserted"
            )
            .into(),
            select_ids: format!("SELECT id FROM {t}").into(),
            list: format!("SELECT {COLUMNS} FROM {t} ORDER BY created_at DESC, id").into(),
            revoke: format!(
                "UPDATE {t} SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1
                 RETURNING {COLUMNS}"
            )
            .into(),
            lock_revoked_at: format!("SELECT revoked_at FROM {t} WHERE id = $1 FOR UPDATE").into(),
            expire_early: format!(
                "UPDATE {t} SET expires_at = LEAST(expires_at, $2) WHERE id = $1
                 RETURNING {COLUMNS}"
            )
            .into(),
            revoke_at: format!("UPDATE {t} SET revoked_at = $2 WHERE id = $1 RETURNING {COLUMNS}")
                .into(),
            record_usage: record_usage.into(),
            schema,
            table,
            channel,
            created_channel,
        }
    }
}
