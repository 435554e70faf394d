//! A tenant's daily request counts (DESIGN §14), for `GET /tenants/{t}/usage`.
//!
//! Read through one index: each row of `<table>_usage` carries the tenant of its key,
//! copied from the key's row when the day's count is first written, and
//! `<table>_us_tnt` on `(tenant, day)` holds only those rows. The other path, through
//! an index on the keys' tenant and then the counts' primary key once per key, reads
//! the same count rows but adds one probe per key of the tenant (thousands, for a
//! large one) and a join. Copying is safe because a key's tenant never changes; and it
//! keeps a tenant's past requests counted even if its key's row is deleted.

use super::PgKeyStore;
use super::aux_sql::{quoted, usage_table};
use super::usage::to_date;
use tower_apikey::StoreError;
use tower_apikey::record::TenantId;
use tower_apikey::usage::UsageDay;

impl PgKeyStore {
    /// `$1` tenant, `$2` first day, `$3` last day: the tenant's requests per day, its
    /// keys' counts summed, oldest first (a sum beyond `i64` stays at its maximum).
    fn tenant_usage_statement(&self) -> String {
        let usage = quoted(&self.sql.schema, &usage_table(&self.sql.table));
        format!(
            "SELECT day, LEAST(sum(requests), 9223372036854775807)::bigint FROM {usage}
             WHERE tenant = $1 AND day BETWEEN $2 AND $3
             GROUP BY day ORDER BY day"
        )
    }

    /// The requests of all of `tenant`'s keys, summed per UTC day from `from` to `to`
    /// (both included), oldest first; days with no requests are left out, as
    /// [`UsageCounts::daily_requests`](tower_apikey::usage::UsageCounts::daily_requests)
    /// leaves them out for one key. One statement through the index `<table>_us_tnt`
    /// (see [`explain_tenant_daily_requests`](Self::explain_tenant_daily_requests)).
    ///
    /// Counts written before the tenant column existed are counted too: `migrate` fills
    /// it in from the keys. A key's counts go to the tenant the key had when the day's
    /// count was first written, which is its tenant, since a key's tenant never changes.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails or cannot be reached.
    pub async fn tenant_daily_requests(
        &self,
        tenant: &TenantId,
        from: UsageDay,
        to: UsageDay,
    ) -> Result<Vec<(UsageDay, u64)>, StoreError> {
        let statement = self.tenant_usage_statement();
        self.days(statement, tenant.as_str(), from, to).await
    }

    /// How PostgreSQL would run [`tenant_daily_requests`](Self::tenant_daily_requests):
    /// the lines of `EXPLAIN`, for operators checking that it reads through the index
    /// `<table>_us_tnt` (a `Seq Scan` on `<table>_usage` means it does not; run
    /// `ANALYZE` after a bulk load).
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails or cannot be reached.
    pub async fn explain_tenant_daily_requests(
        &self,
        tenant: &TenantId,
        from: UsageDay,
        to: UsageDay,
    ) -> Result<Vec<String>, StoreError> {
        let statement = self.tenant_usage_statement();
        let tenant = tenant.as_str().to_owned();
        self.explain(&statement, |q| {
            q.bind(tenant).bind(to_date(from)).bind(to_date(to))
        })
        .await
    }
}
