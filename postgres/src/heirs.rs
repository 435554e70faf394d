//! [`PgKeyStore`]'s revocation with heirs (DESIGN §10): a key's live heirs found by one
//! recursive query, and revoked with the key and their events in one transaction.

use std::time::SystemTime;

use sqlx::AssertSqlSafe;

use super::sql::COLUMNS;
use super::{PgKeyStore, record_from_row, to_db};
use tower_apikey::KeyId;
use tower_apikey::KeyRecord;
use tower_apikey::StoreError;
use tower_apikey::event::NewEvent;
use tower_apikey::record::{ActorName, KeyState};
use tower_apikey::store::Revocation;

impl PgKeyStore {
    /// `$1` key id, `$2` now: the key's heirs active at now, oldest first. The
    /// recursion follows `rotated_from` through the partial index `<table>_heirs`,
    /// only where `created_by` is the parent itself (a key rotating itself); `UNION`
    /// visits each id once, so even a corrupt cycle ends. `lock` locks them in that
    /// order (a parent before its heirs, as every other revocation does).
    fn live_heirs_statement(&self, lock: bool) -> String {
        let t = format!("\"{}\".\"{}\"", self.sql.schema, self.sql.table);
        let columns = columns("k.");
        let lock = if lock { " FOR UPDATE OF k" } else { "" };
        format!(
            "WITH RECURSIVE heirs(id) AS (
                 SELECT id FROM {t} WHERE rotated_from = $1 AND created_by = $1
               UNION
                 SELECT c.id FROM {t} AS c JOIN heirs AS h
                   ON c.rotated_from = h.id AND c.created_by = h.id
             )
             SELECT {columns} FROM {t} AS k
             WHERE k.id IN (SELECT id FROM heirs) AND k.revoked_at IS NULL
               AND $2::timestamptz < LEAST(k.expires_at, k.ends_at)
             ORDER BY k.created_at, k.id{lock}"
        )
    }

    pub(super) async fn find_live_heirs(
        &self,
        id: &KeyId,
        at: SystemTime,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(self.live_heirs_statement(false)))
            .bind(id.as_str())
            .bind(to_db(at)?)
            .fetch_all(self.pool())
            .await
            .map_err(|e| self.error(e))?;
        rows.iter().map(record_from_row).collect()
    }

    /// One transaction: locks the key's row; if it is revoked already, changes
    /// nothing. Otherwise revokes it and, if it was active, locks its live heirs and
    /// revokes them, again until none is left (an heir that was rotating itself when
    /// the search began is waited for, and its new heir found by the next search);
    /// notifies `<table>_revoked` for each, and stores the events, all before the
    /// commit.
    pub(super) async fn revoke_cascading(
        &self,
        id: &KeyId,
        at: SystemTime,
        by: Option<&ActorName>,
        events: &[NewEvent],
    ) -> Result<Option<Revocation>, StoreError> {
        let t = format!("\"{}\".\"{}\"", self.sql.schema, self.sql.table);
        let db_at = to_db(at)?;
        let mut tx = self.pool.begin().await.map_err(|e| self.error(e))?;
        let before = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM {t} WHERE id = $1 FOR UPDATE",
            columns("")
        )))
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.error(e))?;
        let Some(before) = before.as_ref().map(record_from_row).transpose()? else {
            return Ok(None);
        };
        if before.revoked_at().is_some() {
            // Nothing to write: the transaction only held the lock.
            return Ok(Some(Revocation::repeated(before)));
        }
        let row = sqlx::query(AssertSqlSafe(self.sql.revoke.clone()))
            .bind(id.as_str())
            .bind(db_at)
            .bind(by.map(ActorName::as_str))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.error(e))?;
        let record = record_from_row(&row)?;
        self.notify(&mut tx, id).await?;
        let mut heirs = Vec::new();
        if before.state_at(at) == KeyState::Active {
            let find = self.live_heirs_statement(true);
            let revoke = format!(
                "UPDATE {t} SET revoked_at = $2, revoked_by = $3
                 WHERE id = ANY($1::text[]) AND revoked_at IS NULL
                 RETURNING {}",
                columns("")
            );
            loop {
                let found = sqlx::query(AssertSqlSafe(find.clone()))
                    .bind(id.as_str())
                    .bind(db_at)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|e| self.error(e))?;
                if found.is_empty() {
                    break;
                }
                let found = found
                    .iter()
                    .map(|row| record_from_row(row).map(|r| r.id().as_str().to_owned()))
                    .collect::<Result<Vec<String>, StoreError>>()?;
                let rows = sqlx::query(AssertSqlSafe(revoke.clone()))
                    .bind(&found)
                    .bind(db_at)
                    .bind(by.map(ActorName::as_str))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|e| self.error(e))?;
                if rows.is_empty() {
                    // Locked and live a moment ago, so this cannot happen; never loop.
                    break;
                }
                for row in &rows {
                    let heir = record_from_row(row)?;
                    self.notify(&mut tx, heir.id()).await?;
                    heirs.push(heir);
                }
            }
        }
        let all: Vec<NewEvent> = events
            .iter()
            .cloned()
            .chain(
                heirs
                    .iter()
                    .flat_map(|heir| events.iter().map(|e| e.for_heir(*heir.id()))),
            )
            .collect();
        let stored = self.insert_events(&mut tx, &all).await?;
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(Some(
            Revocation::first(record)
                .with_heirs(heirs)
                .with_events(stored),
        ))
    }
}

/// The key table's columns, in `COLUMNS` order, each prefixed (`k.`).
fn columns(prefix: &str) -> String {
    COLUMNS
        .iter()
        .map(|c| format!("{prefix}{}", c.name))
        .collect::<Vec<_>>()
        .join(", ")
}
