//! The statements of one [`PgKeyStore`](super::PgKeyStore), built once per table name.
//!
//! Table and schema names cannot be bind parameters, so they are spliced in, quoted,
//! after [`identifier`](super::identifier) has restricted them to `[a-z0-9_]`: nothing
//! else from outside ever reaches the SQL text. Building the text once keeps the hot
//! path (`select`) free of formatting, and sqlx prepares each statement once per
//! connection.

use std::sync::Arc;

/// The record columns, in the order `bind_record` binds and `record_from_row` reads.
pub(super) const COLUMN_NAMES: [&str; 10] = [
    "id",
    "name",
    "scopes",
    "digest",
    "created_at",
    "expires_at",
    "revoked_at",
    "last_used_at",
    "rotated_from",
    "ends_at",
];
const COLUMNS: &str = "id, name, scopes, digest, created_at, expires_at, revoked_at, \
                       last_used_at, rotated_from, ends_at";

pub(super) struct Sql {
    pub(super) schema: String,
    pub(super) table: String,
    pub(super) channel: String,
    /// `"schema"."table"`, as `to_regclass` reads it.
    pub(super) qualified: String,
    pub(super) create_schema: Arc<str>,
    pub(super) create_table: Arc<str>,
    /// Adds the columns later versions introduced to a table an earlier one created.
    pub(super) add_columns: Arc<str>,
    pub(super) create_index: Arc<str>,
    /// `$1` id.
    pub(super) select: Arc<str>,
    /// `$1`..`$10` the columns; inserts nothing on an existing id.
    pub(super) insert: Arc<str>,
    pub(super) list: Arc<str>,
    /// `$1` id, `$2` time; keeps an earlier revocation.
    pub(super) revoke: Arc<str>,
    /// `$1` id; the old key of a rotation, locked for the transaction.
    pub(super) lock_revoked_at: Arc<str>,
    /// `$1` id, `$2` time; sets `ends_at` only if that ends the key sooner.
    pub(super) end_at: Arc<str>,
    /// `$1` ids, `$2` times.
    pub(super) record_usage: Arc<str>,
}

impl Sql {
    pub(super) fn new(schema: String, table: String) -> Self {
        let t = format!("\"{schema}\".\"{table}\"");
        let channel = format!("{table}_revoked");
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
                rotated_from text,
                ends_at timestamptz
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
            add_columns: format!("ALTER TABLE {t} ADD COLUMN IF NOT EXISTS ends_at timestamptz")
                .into(),
            create_index: create_index.into(),
            select: format!("SELECT {COLUMNS} FROM {t} WHERE id = $1").into(),
            insert: format!(
                "INSERT INTO {t} ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (id) DO NOTHING"
            )
            .into(),
            list: format!("SELECT {COLUMNS} FROM {t} ORDER BY created_at DESC, id").into(),
            revoke: format!(
                "UPDATE {t} SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1
                 RETURNING {COLUMNS}"
            )
            .into(),
            lock_revoked_at: format!("SELECT revoked_at FROM {t} WHERE id = $1 FOR UPDATE").into(),
            // LEAST ignores a NULL `ends_at`, leaving `expires_at` to compare with.
            end_at: format!(
                "UPDATE {t} SET ends_at = CASE WHEN $2::timestamptz < LEAST(expires_at, ends_at)
                                          THEN $2::timestamptz ELSE ends_at END
                 WHERE id = $1 RETURNING {COLUMNS}"
            )
            .into(),
            record_usage: record_usage.into(),
            qualified: t,
            schema,
            table,
            channel,
        }
    }
}
