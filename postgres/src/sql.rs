//! The statements of one [`PgKeyStore`](super::PgKeyStore), built once per table name.
//!
//! Table and schema names cannot be bind parameters, so they are spliced in, quoted,
//! after [`identifier`](super::identifier) has restricted them to `[a-z0-9_]`: nothing
//! else from outside ever reaches the SQL text. Building the text once keeps the hot
//! path (`select`) free of formatting, and sqlx prepares each statement once per
//! connection.

use std::sync::Arc;

/// One column of the key table: what `migrate` creates, and what it expects to find.
pub(super) struct Column {
    pub(super) name: &'static str,
    /// The type as written in `CREATE TABLE`. `migrate` compares it with the catalog
    /// through `format_type`, so aliases such as `timestamptz` are fine.
    pub(super) ty: &'static str,
    /// `NOT NULL`. A column added after a release must be nullable: `migrate` then adds
    /// it to tables created before (`ADD COLUMN`), which needs no value for old rows.
    pub(super) not_null: bool,
    /// Constraints written after the type and `NOT NULL`, such as `PRIMARY KEY`.
    pub(super) constraints: &'static str,
}

impl Column {
    pub(super) const fn required(
        name: &'static str,
        ty: &'static str,
        constraints: &'static str,
    ) -> Self {
        Self {
            name,
            ty,
            not_null: true,
            constraints,
        }
    }

    pub(super) const fn nullable(name: &'static str, ty: &'static str) -> Self {
        Self::nullable_checked(name, ty, "")
    }

    /// A nullable column with `constraints` (a `CHECK`), which `ADD COLUMN` adds with it.
    pub(super) const fn nullable_checked(
        name: &'static str,
        ty: &'static str,
        constraints: &'static str,
    ) -> Self {
        Self {
            name,
            ty,
            not_null: false,
            constraints,
        }
    }

    /// The column as `CREATE TABLE` and `ADD COLUMN` write it.
    pub(super) fn definition(&self) -> String {
        let not_null = if self.not_null { " NOT NULL" } else { "" };
        let constraints = if self.constraints.is_empty() {
            String::new()
        } else {
            format!(" {}", self.constraints)
        };
        format!("{} {}{not_null}{constraints}", self.name, self.ty)
    }
}

/// The `CHECK` of a `tenant` column (keys, events, usage counts): what
/// [`TenantId::new`](tower_apikey::record::TenantId::new) accepts, 1 to 64 characters of
/// `A-Z a-z 0-9 . _ : -`, so that a role writing to the table directly cannot store a
/// tenant the crate would refuse. `$` ends the text (no newline may follow it), and the
/// ranges are of code points whatever the database's collation. A row written before the
/// check, or with it dropped, still reads back as corrupt, never as a panic.
pub(super) const TENANT_CHECK: &str = "CHECK (tenant ~ '^[A-Za-z0-9._:-]{1,64}$')";

/// The key table, in the order `bind_record` binds and `record_from_row` reads. The one
/// place a column is declared: `CREATE TABLE`, the statements' column lists and
/// `migrate`'s verification all come from it. Add a column as a `nullable` row at the end.
pub(super) const COLUMNS: &[Column] = &[
    Column::required("id", "text", "PRIMARY KEY"),
    Column::required("name", "text", ""),
    Column::required("scopes", "text[]", ""),
    Column::required("digest", "bytea", "CHECK (octet_length(digest) = 32)"),
    Column::required("created_at", "timestamptz", ""),
    Column::required("expires_at", "timestamptz", ""),
    Column::nullable("revoked_at", "timestamptz"),
    Column::nullable("last_used_at", "timestamptz"),
    Column::nullable("rotated_from", "text"),
    Column::nullable("ends_at", "timestamptz"),
    Column::nullable("created_by", "text"),
    Column::nullable("revoked_by", "text"),
    // Per-key limits (DESIGN §12): both rate columns or neither, both quota columns or
    // neither; `bigint` because a count may be up to 2^32 - 1.
    Column::nullable("rate_limit_requests", "bigint"),
    Column::nullable("rate_limit_per_secs", "bigint"),
    Column::nullable("quota_requests", "bigint"),
    Column::nullable("quota_per", "text"),
    Column::nullable("allowed_ips", "text[]"),
    // DESIGN §11: on the successor of an `until_first_use` rotation, the grace its
    // first use gives the key it replaced, in whole microseconds.
    Column::nullable("predecessor_grace_us", "bigint"),
    // The last client addresses, newest first (DESIGN §12), from usage writes.
    Column::nullable("recent_ips", "text[]"),
    // The customer organisation the key belongs to (DESIGN §14); NULL for the
    // application's own keys, and for every key of a table made before tenants.
    Column::nullable_checked("tenant", "text", TENANT_CHECK),
];

pub(super) struct Sql {
    pub(super) schema: String,
    pub(super) table: String,
    /// `<table>_revoked`: revocations and early ends, the key id as payload.
    pub(super) channel: String,
    /// `<table>_created`: inserted keys, the key id as payload.
    pub(super) created_channel: String,
    /// `<table>_newest`, the index for listing.
    pub(super) index: String,
    /// `<table>_heirs`, the index on `rotated_from` that a rotation's check for a
    /// live successor uses.
    pub(super) successors_index: String,
    pub(super) create_schema: String,
    pub(super) create_table: String,
    pub(super) create_index: String,
    pub(super) create_successors_index: String,
    /// `ALTER TABLE … ADD COLUMN IF NOT EXISTS ` before a column's definition.
    pub(super) add_column: String,
    /// `$1` id.
    pub(super) select: Arc<str>,
    /// `$1`..`$n` the columns; inserts nothing on an existing id, and notifies
    /// `<table>_created` in the same statement when it inserts.
    pub(super) insert: Arc<str>,
    pub(super) list: Arc<str>,
    /// Every id, for the id filter's snapshot.
    pub(super) select_ids: Arc<str>,
    /// `$1` ids; those of them that exist (a notification's ids, checked before the
    /// id filter trusts them).
    pub(super) existing_ids: Arc<str>,
    /// `$1` id, `$2` time, `$3` actor; keeps an earlier revocation and its actor.
    pub(super) revoke: Arc<str>,
    /// `$1` id; the old key of a rotation, locked for the transaction.
    pub(super) lock_revoked_at: Arc<str>,
    /// `$1` old id, `$2` now: a successor of the old key that is active at now.
    pub(super) live_successor: Arc<str>,
    /// `$1` id, `$2` time; sets `ends_at` only if that ends the key sooner.
    pub(super) end_at: Arc<str>,
    /// `$1` ids, `$2` times.
    pub(super) record_usage: Arc<str>,
    /// `$1` ids, `$2` times: sets the first use of keys never used, returning each
    /// one's id, predecessor, grace and the use.
    pub(super) first_use: Arc<str>,
    /// `$1` old ids, `$2` successors, `$3` ends: the ends of `until_first_use`
    /// rotations, where they end a key that is not revoked sooner than it stops.
    pub(super) end_predecessors: Arc<str>,
    /// `$1` id, `$2` new name or NULL to keep it, then per limit whether it changes and
    /// its new columns: `$3`-`$5` rate, `$6`-`$8` quota, `$9`-`$10` allowlist. Notifies
    /// `<table>_revoked` in the same statement, so every cache drops the old record.
    pub(super) update: Arc<str>,
}

impl Sql {
    pub(super) fn new(schema: String, table: String) -> Self {
        let t = format!("\"{schema}\".\"{table}\"");
        let channel = format!("{table}_revoked");
        let created_channel = format!("{table}_created");
        let index = format!("{table}_newest");
        let successors_index = format!("{table}_heirs");
        let names: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
        let columns = names.join(", ");
        let placeholders: Vec<String> = (1..=COLUMNS.len()).map(|n| format!("${n}")).collect();
        let placeholders = placeholders.join(", ");
        let definitions: Vec<String> = COLUMNS.iter().map(Column::definition).collect();
        let create_table = format!("CREATE TABLE {t} (\n    {}\n)", definitions.join(",\n    "));
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
            create_schema: format!("CREATE SCHEMA \"{schema}\""),
            create_table,
            create_index: format!("CREATE INDEX \"{index}\" ON {t} (created_at DESC, id)"),
            // Partial: most keys replace none, and only successors are looked up.
            create_successors_index: format!(
                "CREATE INDEX \"{successors_index}\" ON {t} (rotated_from) \
                 WHERE rotated_from IS NOT NULL"
            ),
            add_column: format!("ALTER TABLE {t} ADD COLUMN IF NOT EXISTS "),
            select: format!("SELECT {columns} FROM {t} WHERE id = $1").into(),
            // One statement, so the notification is sent if and only if the row commits;
            // it counts one row per key inserted, like the INSERT alone.
            insert: format!(
                "WITH inserted AS (
                     INSERT INTO {t} ({columns}) VALUES ({placeholders})
                     ON CONFLICT (id) DO NOTHING
                     RETURNING id)
                 SELECT pg_notify('{created_channel}', id) FROM inserted"
            )
            .into(),
            select_ids: format!("SELECT id FROM {t}").into(),
            existing_ids: format!("SELECT id FROM {t} WHERE id = ANY($1)").into(),
            list: format!("SELECT {columns} FROM {t} ORDER BY created_at DESC, id").into(),
            // The right-hand sides read the row as it was, so both keep a first revocation.
            revoke: format!(
                "UPDATE {t} SET revoked_at = COALESCE(revoked_at, $2),
                                revoked_by = CASE WHEN revoked_at IS NULL THEN $3::text
                                                  ELSE revoked_by END
                 WHERE id = $1
                 RETURNING {columns}"
            )
            .into(),
            lock_revoked_at: format!("SELECT revoked_at FROM {t} WHERE id = $1 FOR UPDATE").into(),
            // Active as `KeyRecord::state_at` says: not revoked, before its expiry and
            // any end (LEAST ignores a NULL `ends_at`).
            live_successor: format!(
                "SELECT id FROM {t}
                 WHERE rotated_from = $1 AND revoked_at IS NULL
                   AND $2::timestamptz < LEAST(expires_at, ends_at)
                 LIMIT 1"
            )
            .into(),
            // LEAST ignores a NULL `ends_at`, leaving `expires_at` to compare with.
            end_at: format!(
                "UPDATE {t} SET ends_at = CASE WHEN $2::timestamptz < LEAST(expires_at, ends_at)
                                          THEN $2::timestamptz ELSE ends_at END
                 WHERE id = $1 RETURNING {columns}"
            )
            .into(),
            record_usage: record_usage.into(),
            first_use: format!(
                "UPDATE {t} AS k SET last_used_at = u.at
                 FROM (SELECT id, max(at) AS at
                       FROM UNNEST($1::text[], $2::timestamptz[]) AS b(id, at)
                       GROUP BY id) AS u
                 WHERE k.id = u.id AND k.last_used_at IS NULL
                 RETURNING k.id, k.rotated_from, k.predecessor_grace_us, u.at"
            )
            .into(),
            // A separate statement from `first_use`: the old key may be first used in
            // the same batch, and one statement cannot update a row twice.
            end_predecessors: format!(
                "UPDATE {t} AS o SET ends_at = e.at
                 FROM UNNEST($1::text[], $2::text[], $3::timestamptz[]) AS e(id, successor, at)
                 WHERE o.id = e.id AND o.revoked_at IS NULL
                   AND e.at < LEAST(o.expires_at, o.ends_at)
                 RETURNING o.id, e.successor, o.ends_at"
            )
            .into(),
            // One statement: the notification is sent if and only if the change commits.
            update: format!(
                "WITH updated AS (
                     UPDATE {t} SET
                         name = COALESCE($2::text, name),
                         rate_limit_requests = CASE WHEN $3 THEN $4::bigint ELSE rate_limit_requests END,
                         rate_limit_per_secs = CASE WHEN $3 THEN $5::bigint ELSE rate_limit_per_secs END,
                         quota_requests = CASE WHEN $6 THEN $7::bigint ELSE quota_requests END,
                         quota_per = CASE WHEN $6 THEN $8::text ELSE quota_per END,
                         allowed_ips = CASE WHEN $9 THEN $10::text[] ELSE allowed_ips END
                     WHERE id = $1
                     RETURNING {columns})
                 SELECT {columns} FROM updated
                 CROSS JOIN LATERAL (SELECT pg_notify('{channel}', updated.id)) AS notified"
            )
            .into(),
            schema,
            table,
            channel,
            created_channel,
            index,
            successors_index,
        }
    }
}
