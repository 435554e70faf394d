//! The tables beside the key table: events (`<table>_events`), daily usage counts
//! (`<table>_usage`), the usage batches already counted (`<table>_ubatch`), and the
//! shared limits' ledger (`<table>_limits`) and instances (`<table>_linst`).
//! Created when missing and verified when found, with the same checks as the key
//! table: a trusted owner, no triggers, rules or row security, exactly our columns, and
//! our index names on them. A nullable column a newer release declares (the tenant of
//! events and counts) is added to a table made before it, and filled in for its rows
//! by one `UPDATE … FROM` in the same transaction.

use sqlx::postgres::types::Oid;
use sqlx::{Postgres, Transaction};

use super::{CANONICAL_TYPES, Step, found_columns};
use crate::MigrateError;
use crate::aux_sql::{AuxTable, aux_tables, quoted};
use crate::backend;
use crate::sql::Column;

impl Step<'_> {
    /// Creates or verifies every table beside the key table.
    pub(super) async fn aux_tables(
        &self,
        tx: &mut Transaction<'_, Postgres>,
    ) -> Result<(), MigrateError> {
        for table in aux_tables(&self.store.sql.schema, &self.store.sql.table) {
            let oid = self.aux_table(tx, &table).await?;
            self.aux_columns(tx, &table, oid).await?;
            let table_name = format!("{}.{}", self.store.sql.schema, table.name);
            for (index, create) in &table.indexes {
                self.ensure_index(tx, oid, &table_name, index, create)
                    .await?;
            }
        }
        Ok(())
    }

    async fn aux_table(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        table: &AuxTable,
    ) -> Result<Oid, MigrateError> {
        let schema = &self.store.sql.schema;
        self.trusted_table(tx, schema, &table.name, &table.create)
            .await
    }

    /// Adds the nullable columns a table made by an earlier release lacks (running
    /// each one's backfill right after), then checks that the columns are exactly ours.
    async fn aux_columns(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        table: &AuxTable,
        oid: Oid,
    ) -> Result<(), MigrateError> {
        let mut found = found_columns(tx, oid).await?;
        let qualified = format!("{}.{}", self.store.sql.schema, table.name);
        let missing: Vec<&Column> = table
            .columns
            .iter()
            .filter(|c| !c.not_null && !found.iter().any(|f| f.name == c.name))
            .collect();
        for column in &missing {
            let statement = format!(
                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {}",
                quoted(&self.store.sql.schema, &table.name),
                column.definition()
            );
            let action = format!("add column {} to table {qualified}", column.name);
            self.ddl(tx, &statement, action).await?;
            for (_, backfill) in table.backfills.iter().filter(|b| b.0 == column.name) {
                let action = format!("fill column {} of table {qualified}", column.name);
                self.ddl(tx, backfill, action).await?;
            }
        }
        if !missing.is_empty() {
            found = found_columns(tx, oid).await?;
        }
        let written: Vec<&str> = table.columns.iter().map(|c| c.ty).collect();
        let expected: Vec<String> = sqlx::query_scalar(CANONICAL_TYPES)
            .bind(written)
            .fetch_all(&mut **tx)
            .await
            .map_err(backend)?;
        let mut problems = Vec::new();
        for (column, ty) in table.columns.iter().zip(&expected) {
            let name = column.name;
            match found.iter().find(|f| f.name == name) {
                None => problems.push(format!("column {name} ({ty}) is missing")),
                Some(f) if f.ty != *ty => {
                    problems.push(format!("column {name} is {}, not {ty}", f.ty))
                }
                Some(f) if f.not_null != column.not_null => {
                    problems.push(format!("column {name} has the wrong NOT NULL"))
                }
                Some(_) => {}
            }
        }
        for f in &found {
            if !table.columns.iter().any(|c| c.name == f.name) {
                problems.push(format!("column {} ({}) is not one of ours", f.name, f.ty));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(MigrateError::Columns {
                table: qualified,
                problems,
            })
        }
    }
}
