//! [`PgKeyStore::migrate`]: creates what is missing, and verifies what it finds.
//!
//! A table that already exists may not be ours. On a database where other roles may
//! create objects in the schema (PostgreSQL 14 and older grant `CREATE` on `public` to
//! everyone), a low-privilege role can create the table first, with a planted key and
//! a trigger that undoes revocations or runs code as whoever writes to it. So before it
//! writes anything, the migration checks, in its locked transaction, that:
//!
//! 1. the schema is owned by a trusted role (below), a superuser, or the database's
//!    owner (`public` is owned by `pg_database_owner`, or by a superuser before
//!    PostgreSQL 15): a schema's owner can drop and replace any table in it;
//! 2. the table is an ordinary table owned by a trusted role: the connecting role
//!    (`current_user`) or the one named with [`PgKeyStore::with_owner`];
//! 3. it has no triggers, no rules and no row security or policies, none of which the
//!    crate creates (a role granted only `TRIGGER` can add a trigger to a table it
//!    does not own);
//!
//! and then, after adding any nullable column a newer release declares, that it has
//! exactly the columns of [`sql::COLUMNS`] with their types and `NOT NULL`, a primary key
//! on `id`, and that the names `<table>_newest`, `<table>_heirs` (rotations' check for
//! a live successor) and those of the paged listing's indexes (`<table>_created`,
//! `_used`, `_expires`, `_revoked`, `_stops`, `_scopes`, and a tenant's `_tcreate`,
//! `_tused`, `_texpire`) are indexes on it, creating them where missing. A column
//! added with a `CHECK` (the `tenant`) brings its check: adding it reads the table once
//! to validate, under the lock `ADD COLUMN` takes (every existing row is NULL, so it
//! passes). Other indexes are left alone: only the table's trusted owner can
//! create them.
//!
//! Any failure is a [`MigrateError`] naming the problem, and the transaction is rolled
//! back, so nothing was changed. The transaction pins `search_path` to `pg_catalog`, so
//! that a function someone placed in a schema on the application's path cannot stand in
//! for a built-in one while the migration runs.

mod aux_tables;

use sqlx::postgres::types::Oid;
use sqlx::{AssertSqlSafe, PgConnection, Postgres, Transaction};

use super::list::INDEXES;
use super::migrate_error::MigrateError;
use super::sql::COLUMNS;
use super::{PgKeyStore, backend};

/// PostgreSQL's SQLSTATE for "insufficient privilege".
const INSUFFICIENT_PRIVILEGE: &str = "42501";

/// `$1` schema: its owner, and whether that owner is trusted whatever the store's
/// configuration says (a superuser, `pg_database_owner`, or the database's owner).
const SCHEMA_OWNER: &str = "
    SELECT r.rolname::text,
           r.rolsuper OR r.rolname = 'pg_database_owner' OR n.nspowner = d.datdba
    FROM pg_namespace n
    JOIN pg_roles r ON r.oid = n.nspowner
    JOIN pg_database d ON d.datname = current_database()
    WHERE n.nspname = $1";

/// `$1` schema, `$2` name: the relation of that name, if any.
const RELATION: &str = "
    SELECT c.oid, c.relkind::text, pg_get_userbyid(c.relowner)::text,
           c.relrowsecurity OR c.relforcerowsecurity
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = $1 AND c.relname = $2";

/// `$1` table: triggers other than the internal ones of foreign keys.
const TRIGGERS: &str =
    "SELECT tgname::text FROM pg_trigger WHERE tgrelid = $1 AND NOT tgisinternal ORDER BY 1";

/// `$1` table: rules (a table has no `_RETURN` rule unless it is a view).
const RULES: &str = "SELECT rulename::text FROM pg_rewrite
    WHERE ev_class = $1 AND rulename <> '_RETURN' ORDER BY 1";

/// `$1` table: its row-security policies.
const POLICIES: &str = "SELECT polname::text FROM pg_policy WHERE polrelid = $1 ORDER BY 1";

/// `$1` table: its live columns, with their types as `format_type` shows them.
const FOUND_COLUMNS: &str = "
    SELECT attname::text, format_type(atttypid, atttypmod), attnotnull
    FROM pg_attribute
    WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped
    ORDER BY attnum";

/// `$1` type names as written in `CREATE TABLE`: the same, as `format_type` shows them.
const CANONICAL_TYPES: &str = "
    SELECT format_type(t::regtype, NULL)
    FROM unnest($1::text[]) WITH ORDINALITY AS u(t, n)
    ORDER BY n";

/// `$1` table: whether its primary key is exactly `(id)`.
const PRIMARY_KEY_ON_ID: &str = "
    SELECT EXISTS (
        SELECT 1 FROM pg_constraint c
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
        WHERE c.conrelid = $1 AND c.contype = 'p'
          AND cardinality(c.conkey) = 1 AND a.attname = 'id')";

/// `$1` index, `$2` table: whether the relation `$1` is an index on `$2`.
const INDEX_ON: &str =
    "SELECT EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = $1 AND indrelid = $2)";

/// What `pg_class` says about a relation.
struct Relation {
    oid: Oid,
    kind: String,
    owner: String,
    row_security: bool,
}

/// A column as the catalog shows it.
struct FoundColumn {
    name: String,
    ty: String,
    not_null: bool,
}

impl PgKeyStore {
    /// Creates the schema, the table and its index if they are missing, and verifies
    /// that what it finds is what it would have created.
    ///
    /// Idempotent, and safe to run from several instances at once: it runs in one
    /// transaction holding a transaction-level advisory lock, so concurrent migrations
    /// take turns and each finds what the previous one created.
    ///
    /// An existing schema and table are trusted only if their owner is trusted (the
    /// connecting role, or the role named with [`with_owner`](Self::with_owner); for the
    /// schema also a superuser or the database's owner), and the table only if it has
    /// exactly the expected columns, a primary key on `id`, and no triggers, rules or
    /// row security. See [Trusting an existing table](crate#trusting-an-existing-table).
    ///
    /// Creating needs `CREATE` on the schema (on the database when the schema is
    /// missing), and a column added by a newer release needs the table's owner; when
    /// everything exists, the migration only reads the catalog, so a role that only
    /// serves (`SELECT`, `INSERT`, `UPDATE`) can run it too, to verify.
    ///
    /// # Errors
    ///
    /// A [`MigrateError`] naming what it found, or [`MigrateError::Store`] if the
    /// database refuses or cannot be reached. In every case nothing was changed.
    pub async fn migrate(&self) -> Result<(), MigrateError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // Set first, so that every name below, `hashtext` included, is a built-in.
        for statement in [
            "SET LOCAL search_path = pg_catalog, pg_temp",
            "SELECT pg_advisory_xact_lock(hashtext('tower_apikey.migrate'))",
        ] {
            sqlx::query(statement)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        let current_user: String = sqlx::query_scalar("SELECT current_user::text")
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        let step = Step {
            store: self,
            current_user: &current_user,
        };
        step.schema(&mut tx).await?;
        let table = step.table(&mut tx).await?;
        step.columns(&mut tx, table).await?;
        step.primary_key(&mut tx, table).await?;
        step.index(&mut tx, table).await?;
        step.successors_index(&mut tx, table).await?;
        step.listing_indexes(&mut tx, table).await?;
        step.aux_tables(&mut tx).await?;
        tx.commit().await.map_err(backend)?;
        Ok(())
    }
}

/// The steps of one migration, sharing what they need to name in errors.
struct Step<'a> {
    store: &'a PgKeyStore,
    current_user: &'a str,
}

impl Step<'_> {
    /// `s.t`, as errors name the table.
    fn table_name(&self) -> String {
        format!("{}.{}", self.store.sql.schema, self.store.sql.table)
    }

    fn trusted(&self, owner: &str) -> bool {
        owner == self.current_user || self.store.owner.as_deref() == Some(owner)
    }

    fn untrusted(&self, object: String, owner: String) -> MigrateError {
        MigrateError::UntrustedOwner {
            object,
            owner,
            current_user: self.current_user.to_owned(),
            configured_owner: self.store.owner.as_deref().map(str::to_owned),
        }
    }

    /// Runs a statement that creates or alters something; a refusal for lack of
    /// privilege says what was being done.
    async fn ddl(
        &self,
        conn: &mut PgConnection,
        statement: &str,
        action: String,
    ) -> Result<(), MigrateError> {
        match sqlx::query(AssertSqlSafe(statement.to_owned()))
            .execute(conn)
            .await
        {
            Ok(_) => Ok(()),
            Err(source) if is_insufficient_privilege(&source) => Err(MigrateError::NotPermitted {
                role: self.current_user.to_owned(),
                action,
                source,
            }),
            Err(other) => Err(backend(other).into()),
        }
    }

    /// Creates the schema if it is missing, or checks who owns it.
    async fn schema(&self, tx: &mut Transaction<'_, Postgres>) -> Result<(), MigrateError> {
        let schema = &self.store.sql.schema;
        let found: Option<(String, bool)> = sqlx::query_as(SCHEMA_OWNER)
            .bind(schema)
            .fetch_optional(&mut **tx)
            .await
            .map_err(backend)?;
        match found {
            None => {
                let create = &self.store.sql.create_schema;
                self.ddl(tx, create, format!("create schema {schema}"))
                    .await
            }
            Some((owner, by_position)) if by_position || self.trusted(&owner) => Ok(()),
            Some((owner, _)) => Err(self.untrusted(format!("schema {schema}"), owner)),
        }
    }

    /// Creates the table if it is missing, or checks that the one found can be trusted
    /// before anything is done to it.
    async fn table(&self, tx: &mut Transaction<'_, Postgres>) -> Result<Oid, MigrateError> {
        let sql = &self.store.sql;
        self.trusted_table(tx, &sql.schema, &sql.table, &sql.create_table)
            .await
    }

    /// Creates `schema.table` with `create` if it is missing, or checks that the one
    /// found is an ordinary table, owned by a trusted role, with no triggers, rules or
    /// row security: the checks every table of the store gets, the key table and the
    /// audit trail's alike.
    pub(super) async fn trusted_table(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        schema: &str,
        table: &str,
        create: &str,
    ) -> Result<Oid, MigrateError> {
        let name = format!("{schema}.{table}");
        let relation = match relation(tx, schema, table).await? {
            Some(relation) => relation,
            None => {
                self.ddl(tx, create, format!("create table {name}")).await?;
                relation(tx, schema, table).await?.ok_or_else(|| {
                    backend(sqlx::Error::Protocol(format!(
                        "table {name} is not in the catalog after CREATE TABLE"
                    )))
                })?
            }
        };
        if relation.kind != "r" {
            return Err(MigrateError::NotATable {
                object: format!("table {name}"),
                kind: kind_name(&relation.kind),
            });
        }
        if !self.trusted(&relation.owner) {
            return Err(self.untrusted(format!("table {name}"), relation.owner));
        }
        let triggers = names(tx, TRIGGERS, relation.oid).await?;
        if !triggers.is_empty() {
            return Err(MigrateError::Triggers {
                table: name,
                triggers,
            });
        }
        let rules = names(tx, RULES, relation.oid).await?;
        if !rules.is_empty() {
            return Err(MigrateError::Rules { table: name, rules });
        }
        let policies = names(tx, POLICIES, relation.oid).await?;
        if relation.row_security || !policies.is_empty() {
            return Err(MigrateError::RowSecurity {
                table: name,
                enabled: relation.row_security,
                policies,
            });
        }
        Ok(relation.oid)
    }

    /// Adds the nullable columns a table created by an older release lacks, then
    /// checks that the columns are exactly [`COLUMNS`].
    async fn columns(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        table: Oid,
    ) -> Result<(), MigrateError> {
        let mut found = found_columns(tx, table).await?;
        let missing = COLUMNS
            .iter()
            .filter(|c| !c.not_null && !found.iter().any(|f| f.name == c.name));
        let mut added = false;
        for column in missing {
            let statement = format!("{}{}", self.store.sql.add_column, column.definition());
            let action = format!("add column {} to table {}", column.name, self.table_name());
            self.ddl(tx, &statement, action).await?;
            added = true;
        }
        if added {
            found = found_columns(tx, table).await?;
        }
        let written: Vec<&str> = COLUMNS.iter().map(|c| c.ty).collect();
        let expected: Vec<String> = sqlx::query_scalar(CANONICAL_TYPES)
            .bind(written)
            .fetch_all(&mut **tx)
            .await
            .map_err(backend)?;
        let problems = column_problems(&expected, &found);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(MigrateError::Columns {
                table: self.table_name(),
                problems,
            })
        }
    }

    async fn primary_key(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        table: Oid,
    ) -> Result<(), MigrateError> {
        let on_id: bool = sqlx::query_scalar(PRIMARY_KEY_ON_ID)
            .bind(table)
            .fetch_one(&mut **tx)
            .await
            .map_err(backend)?;
        if on_id {
            Ok(())
        } else {
            Err(MigrateError::NoPrimaryKey {
                table: self.table_name(),
            })
        }
    }

    /// `<table>_newest`, which `list` reads.
    async fn index(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        table: Oid,
    ) -> Result<(), MigrateError> {
        let sql = &self.store.sql;
        let table_name = self.table_name();
        self.ensure_index(tx, table, &table_name, &sql.index, &sql.create_index)
            .await
    }

    /// `<table>_heirs`, with which a rotation checks for a live successor. A table from
    /// a release before it gains it here.
    async fn successors_index(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        table: Oid,
    ) -> Result<(), MigrateError> {
        let sql = &self.store.sql;
        self.ensure_index(
            tx,
            table,
            &self.table_name(),
            &sql.successors_index,
            &sql.create_successors_index,
        )
        .await
    }

    /// Creates the indexes paged listing reads ([`INDEXES`]) where their names are
    /// free, and checks that each name found is an index on the table. Added in the
    /// release that brought paging: a table made before gets them on its next migration
    /// (by its owner; `CREATE INDEX` holds writes to the table while it builds, about a
    /// second per 100,000 keys).
    async fn listing_indexes(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        table: Oid,
    ) -> Result<(), MigrateError> {
        let sql = &self.store.sql;
        for index in INDEXES {
            let name = format!("{}{}", sql.table, index.suffix);
            let create = format!(
                "CREATE INDEX \"{name}\" ON \"{}\".\"{}\" {}",
                sql.schema, sql.table, index.definition
            );
            self.ensure_index(tx, table, &self.table_name(), &name, &create)
                .await?;
        }
        Ok(())
    }

    /// Runs `create` if no relation in the schema is named `name`, or checks that the
    /// one found is an index on `table` (its oid, and its `schema.table` name for
    /// messages). Its definition is the owner's business. For the key table's indexes
    /// and the auxiliary tables' alike.
    pub(super) async fn ensure_index(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        table: Oid,
        table_name: &str,
        name: &str,
        create: &str,
    ) -> Result<(), MigrateError> {
        let schema = &self.store.sql.schema;
        let Some(index) = relation(tx, schema, name).await? else {
            let action = format!("create index {name} on table {table_name}");
            return self.ddl(tx, create, action).await;
        };
        let on_table: bool = sqlx::query_scalar(INDEX_ON)
            .bind(index.oid)
            .bind(table)
            .fetch_one(&mut **tx)
            .await
            .map_err(backend)?;
        if on_table {
            Ok(())
        } else {
            Err(MigrateError::IndexNameTaken {
                index: format!("{schema}.{name}"),
                table: table_name.to_owned(),
            })
        }
    }
}

async fn relation(
    conn: &mut PgConnection,
    schema: &str,
    name: &str,
) -> Result<Option<Relation>, MigrateError> {
    let row: Option<(Oid, String, String, bool)> = sqlx::query_as(RELATION)
        .bind(schema)
        .bind(name)
        .fetch_optional(conn)
        .await
        .map_err(backend)?;
    Ok(row.map(|(oid, kind, owner, row_security)| Relation {
        oid,
        kind,
        owner,
        row_security,
    }))
}

async fn names(
    conn: &mut PgConnection,
    query: &'static str,
    table: Oid,
) -> Result<Vec<String>, MigrateError> {
    sqlx::query_scalar(query)
        .bind(table)
        .fetch_all(conn)
        .await
        .map_err(|e| backend(e).into())
}

async fn found_columns(
    conn: &mut PgConnection,
    table: Oid,
) -> Result<Vec<FoundColumn>, MigrateError> {
    let rows: Vec<(String, String, bool)> = sqlx::query_as(FOUND_COLUMNS)
        .bind(table)
        .fetch_all(conn)
        .await
        .map_err(backend)?;
    Ok(rows
        .into_iter()
        .map(|(name, ty, not_null)| FoundColumn { name, ty, not_null })
        .collect())
}

/// One sentence per difference between [`COLUMNS`] (with `expected[i]` the type of
/// `COLUMNS[i]` as `format_type` shows it) and the columns found.
fn column_problems(expected: &[String], found: &[FoundColumn]) -> Vec<String> {
    let null = |not_null: bool| if not_null { "NOT NULL" } else { "nullable" };
    let mut problems = Vec::new();
    for (column, ty) in COLUMNS.iter().zip(expected) {
        match found.iter().find(|f| f.name == column.name) {
            None => problems.push(format!(
                "column {} ({ty} {}) is missing",
                column.name,
                null(column.not_null)
            )),
            Some(f) if f.ty != *ty => {
                problems.push(format!("column {} is {}, not {ty}", column.name, f.ty))
            }
            Some(f) if f.not_null != column.not_null => problems.push(format!(
                "column {} is {}, not {}",
                column.name,
                null(f.not_null),
                null(column.not_null)
            )),
            Some(_) => {}
        }
    }
    for f in found {
        if !COLUMNS.iter().any(|c| c.name == f.name) {
            problems.push(format!("column {} ({}) is not one of ours", f.name, f.ty));
        }
    }
    problems
}

fn kind_name(relkind: &str) -> &'static str {
    match relkind {
        "p" => "partitioned table",
        "v" => "view",
        "m" => "materialized view",
        "i" | "I" => "index",
        "S" => "sequence",
        "f" => "foreign table",
        "c" => "composite type",
        _ => "relation of another kind",
    }
}

fn is_insufficient_privilege(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(e) => e.code().as_deref() == Some(INSUFFICIENT_PRIVILEGE),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(name: &str, ty: &str, not_null: bool) -> FoundColumn {
        FoundColumn {
            name: name.to_owned(),
            ty: ty.to_owned(),
            not_null,
        }
    }

    /// The expected columns as the catalog would show them.
    fn as_created() -> (Vec<String>, Vec<FoundColumn>) {
        let canonical = |ty: &str| match ty {
            "timestamptz" => "timestamp with time zone".to_owned(),
            other => other.to_owned(),
        };
        let expected: Vec<String> = COLUMNS.iter().map(|c| canonical(c.ty)).collect();
        let found = COLUMNS
            .iter()
            .zip(&expected)
            .map(|(c, ty)| found(c.name, ty, c.not_null))
            .collect();
        (expected, found)
    }

    #[test]
    fn the_columns_migrate_creates_have_no_problems() {
        let (expected, found) = as_created();
        assert!(column_problems(&expected, &found).is_empty());
    }

    #[test]
    fn each_difference_in_the_columns_is_named() {
        let (expected, mut found) = as_created();
        found.retain(|f| f.name != "name");
        found[0].not_null = false; // id
        let digest = found.iter_mut().find(|f| f.name == "digest").unwrap();
        digest.ty = "text".to_owned();
        found.push(self::found("owner_note", "text", false));
        let problems = column_problems(&expected, &found);
        assert_eq!(
            problems,
            [
                "column id is nullable, not NOT NULL",
                "column name (text NOT NULL) is missing",
                "column digest is text, not bytea",
                "column owner_note (text) is not one of ours",
            ]
        );
    }
}
