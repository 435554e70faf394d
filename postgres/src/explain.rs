//! `EXPLAIN` of a statement the store runs, for the public `explain_*` methods with
//! which operators (and this crate's tests) check that a query reads through an index.

use sqlx::{AssertSqlSafe, Row};

use super::{PgKeyStore, PgQuery};
use tower_apikey::StoreError;

impl PgKeyStore {
    /// The plan lines of `EXPLAIN <statement>`, with `bind` binding its arguments.
    pub(super) async fn explain(
        &self,
        statement: &str,
        bind: impl FnOnce(PgQuery<'static>) -> PgQuery<'static>,
    ) -> Result<Vec<String>, StoreError> {
        let query = sqlx::query(AssertSqlSafe(format!("EXPLAIN {statement}")));
        let rows = bind(query)
            .fetch_all(self.pool())
            .await
            .map_err(|e| self.error(e))?;
        rows.iter()
            .map(|row| {
                row.try_get::<String, _>(0)
                    .map_err(|e| StoreError::Corrupt(format!("an EXPLAIN line is unreadable: {e}")))
            })
            .collect()
    }
}
