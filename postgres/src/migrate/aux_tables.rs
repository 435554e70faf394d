//! The tables beside the key table: events (`<table>_events`), daily usage counts
//! (`<table>_usage`), the usage batches already counted (`<table>_ubatch`), and the
//! shared limits' ledger (`<table>_limits`) and instances (`<table>_linst`).
//! Created when missing and verified when found, with the same checks as the key
//! table: a trusted owner, no triggers, rules or row security, exactly our columns, and
//! our index names on them.

use sqlx::postgres::types::Oid;
use sqlx::{Postgres, Transaction};

use super::{CANONICAL_TYPES, Step, found_columns};
use crate::MigrateError;
use crate::aux_sql::{AuxTable, aux_tables};
use crate::backend;

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

    async fn aux_columns(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        table: &AuxTable,
        oid: Oid,
    ) -> Result<(), MigrateError> {
        let found = found_columns(tx, oid).await?;
        let written: Vec<&str> = table.columns.iter().map(|c| c.1).collect();
        let expected: Vec<String> = sqlx::query_scalar(CANONICAL_TYPES)
            .bind(written)
            .fetch_all(&mut **tx)
            .await
            .map_err(backend)?;
        let mut problems = Vec::new();
        for ((name, _, not_null), ty) in table.columns.iter().zip(&expected) {
            match found.iter().find(|f| f.name == *name) {
                None => problems.push(format!("column {name} ({ty}) is missing")),
                Some(f) if f.ty != *ty => {
                    problems.push(format!("column {name} is {}, not {ty}", f.ty))
                }
                Some(f) if f.not_null != *not_null => {
                    problems.push(format!("column {name} has the wrong NOT NULL"))
                }
                Some(_) => {}
            }
        }
        for f in &found {
            if !table.columns.iter().any(|c| c.0 == f.name) {
                problems.push(format!("column {} ({}) is not one of ours", f.name, f.ty));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(MigrateError::Columns {
                table: format!("{}.{}", self.store.sql.schema, table.name),
                problems,
            })
        }
    }
}
