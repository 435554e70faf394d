//! `PgKeyStore`'s share of a usage write: each key's recent client addresses.

use sqlx::AssertSqlSafe;

use super::sql::Sql;
use tower_apikey::record::{MAX_RECENT_IPS, RecentIps};
use tower_apikey::usage::KeyUsage;

// A function of the table's names rather than a method of `PgKeyStore`, so that the
// store's file, which binds a record's addresses with `column_value`, is not imported
// back from here.
/// In `tx`: puts each key's newer addresses in front of the stored ones, keeping
/// the first [`MAX_RECENT_IPS`] distinct ones: one statement for the whole batch.
/// Applying a batch twice (a retry) leaves the same list.
pub(super) async fn add_recent_ips(
    sql: &Sql,
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    usages: &[KeyUsage],
) -> Result<(), sqlx::Error> {
    let mut ids = Vec::new();
    let mut lists = Vec::new();
    for usage in usages.iter().filter(|u| !u.recent_ips().is_empty()) {
        ids.push(usage.key_id.as_str());
        lists.push(list_text(usage.recent_ips()));
    }
    if ids.is_empty() {
        return Ok(());
    }
    let t = format!("\"{}\".\"{}\"", sql.schema, sql.table);
    // An address has no comma, so a list travels as one text per key (PostgreSQL
    // arrays of arrays must be rectangular). Newer first, then the stored ones;
    // each address once, at its first place.
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE {t} AS k SET recent_ips = (
             SELECT array_agg(ip ORDER BY first)
             FROM (SELECT ip, min(n) AS first
                   FROM unnest(u.ips || COALESCE(k.recent_ips, '{{}}'::text[]))
                        WITH ORDINALITY AS x(ip, n)
                   GROUP BY ip
                   ORDER BY min(n)
                   LIMIT {MAX_RECENT_IPS}) AS kept)
         FROM (SELECT id, string_to_array(ips, ',') AS ips
               FROM UNNEST($1::text[], $2::text[]) AS b(id, ips)) AS u
         WHERE k.id = u.id"
    )))
    .bind(ids)
    .bind(lists)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// `a,b,c`, newest first.
fn list_text(ips: &RecentIps) -> String {
    let texts: Vec<String> = ips.iter().map(|ip| ip.to_string()).collect();
    texts.join(",")
}

/// The `recent_ips` column of a record: `NULL` for none.
pub(super) fn column_value(ips: &RecentIps) -> Option<Vec<String>> {
    (!ips.is_empty()).then(|| ips.iter().map(|ip| ip.to_string()).collect())
}
