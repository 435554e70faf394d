//! [`KeyStoreAdmin::list_page`](tower_apikey::KeyStoreAdmin::list_page) in PostgreSQL: one
//! statement per page, read through an index, never the whole table (except for `q`).
//!
//! The statement is assembled from fixed fragments for the query's shape (which
//! filters, which sort, first page or not); every value (times, the search pattern,
//! scopes, the cursor's position) is a bound parameter. Key ids are compared and
//! ordered `COLLATE "C"` (byte order), the order the cursor and the other stores use,
//! whatever the database's collation, and the indexes [`INDEXES`] declares are built
//! the same way so that the order comes from the index, with no sort.
//!
//! States are judged at the query's time, bound as a parameter: never the database's
//! `now()`, whose clock may differ from the application's.

use std::time::SystemTime;

use sqlx::AssertSqlSafe;
use time::OffsetDateTime;

use super::sql::COLUMNS;
use super::{PgKeyStore, record_from_row, to_db};
use tower_apikey::KeyRecord;
use tower_apikey::StoreError;
use tower_apikey::store::Page;
use tower_apikey::store::{
    DORMANT_AFTER_NEVER_USED, DORMANT_AFTER_UNUSED, EXPIRING_WITHIN, KeyFilter, KeyQuery,
    KeySortField,
};

/// When a key stops working unless revoked first: `LEAST` skips a null `ends_at`.
const STOPS_AT: &str = "LEAST(expires_at, ends_at)";

/// An index `migrate` creates for listing: `<table><suffix>` and what follows `ON <t>`.
pub(super) struct Index {
    pub(super) suffix: &'static str,
    pub(super) definition: &'static str,
}

/// The listing indexes besides `<table>_newest` (which keeps serving lookups of the
/// newest keys by the old order). Each suffix is at most 8 bytes, so that the name fits
/// PostgreSQL's 63 bytes with a 55-byte table name.
pub(super) const INDEXES: &[Index] = &[
    // `sort=±created`, and every filter without a better index, in keyset order.
    Index {
        suffix: "_created",
        definition: "(created_at DESC, id COLLATE \"C\")",
    },
    // `sort=±last_used`; never-used keys last when descending, first when ascending.
    Index {
        suffix: "_used",
        definition: "(last_used_at DESC NULLS LAST, id COLLATE \"C\")",
    },
    // `sort=±expires`.
    Index {
        suffix: "_expires",
        definition: "(expires_at DESC, id COLLATE \"C\")",
    },
    // `state=revoked`: few keys, newest first.
    Index {
        suffix: "_revoked",
        definition: "(created_at DESC, id COLLATE \"C\") WHERE revoked_at IS NOT NULL",
    },
    // `state=expired` and `state=expiring`: a range of ends among unrevoked keys.
    Index {
        suffix: "_stops",
        definition: "(LEAST(expires_at, ends_at)) WHERE revoked_at IS NULL",
    },
    // `scope=`: the keys holding any of the scopes that grant it.
    Index {
        suffix: "_scopes",
        definition: "USING gin (scopes)",
    },
    // One tenant's keys (DESIGN §14), one index per sort, each in that sort's keyset
    // order after the tenant, so that a tenant's page reads only its own rows and needs
    // no sort; the state, scope and search filters apply to those rows. Partial: the
    // application's own keys (no tenant) are never listed by tenant, so a
    // single-organisation application's table pays nothing for them.
    Index {
        suffix: "_tcreate",
        definition: "(tenant, created_at DESC, id COLLATE \"C\") WHERE tenant IS NOT NULL",
    },
    Index {
        suffix: "_tused",
        definition: "(tenant, last_used_at DESC NULLS LAST, id COLLATE \"C\") \
                     WHERE tenant IS NOT NULL",
    },
    Index {
        suffix: "_texpire",
        definition: "(tenant, expires_at DESC, id COLLATE \"C\") WHERE tenant IS NOT NULL",
    },
];

/// A value bound to the statement, in order.
enum Arg {
    Time(OffsetDateTime),
    Text(String),
    Texts(Vec<String>),
    Limit(i64),
}

/// The statement of one query, with its arguments.
struct Statement {
    sql: String,
    args: Vec<Arg>,
}

impl Statement {
    /// Binds `arg` and returns its placeholder.
    fn bind(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    fn and(&mut self, clause: &str) {
        self.sql.push_str(" AND ");
        self.sql.push_str(clause);
    }
}

impl PgKeyStore {
    /// The statement that answers `query`, reading one row past the limit.
    fn list_statement(&self, query: &KeyQuery) -> Result<Statement, StoreError> {
        let names: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
        let table = format!("\"{}\".\"{}\"", self.sql.schema, self.sql.table);
        let mut s = Statement {
            sql: format!("SELECT {} FROM {table} WHERE TRUE", names.join(", ")),
            args: Vec::new(),
        };
        if let Some(tenant) = query.tenant() {
            // Equality, so that a tenant index's order is the page's (`tenant` first).
            let tenant = s.bind(Arg::Text(tenant.as_str().to_owned()));
            s.and(&format!("tenant = {tenant}"));
        }
        if let Some(state) = query.state() {
            state_clause(&mut s, state, query.now())?;
        }
        if let Some(text) = query.search() {
            let pattern = s.bind(Arg::Text(format!("%{}%", escape_like(text))));
            // An ASCII text folds only ASCII letters, as the in-memory store does, and
            // `COLLATE "C"` lets PostgreSQL do that without lower-casing every name
            // (half the time of a search at 100,000 keys).
            let c = if text.is_ascii() {
                " COLLATE \"C\""
            } else {
                ""
            };
            let name = format!("name{c} ILIKE {pattern} ESCAPE '\\'");
            // Ids are 16 base62 characters: other text cannot be part of one.
            let could_be_id = text.len() <= 16 && text.bytes().all(|b| b.is_ascii_alphanumeric());
            if could_be_id {
                s.and(&format!(
                    "({name} OR id COLLATE \"C\" ILIKE {pattern} ESCAPE '\\')"
                ));
            } else {
                s.and(&name);
            }
        }
        if let Some(grantors) = query.scope_grantors() {
            let grantors = s.bind(Arg::Texts(grantors));
            s.and(&format!("scopes && {grantors}::text[]"));
        }
        let sort = query.sort();
        let column = match sort.field() {
            KeySortField::Created => "created_at",
            KeySortField::LastUsed => "last_used_at",
            KeySortField::Expires => "expires_at",
            _ => return Err(StoreError::Unsupported("this sort")),
        };
        if let Some(position) = query.position() {
            let id = s.bind(Arg::Text(position.id().as_str().to_owned()));
            let id_c = "id COLLATE \"C\"";
            let clause = match (position.value(), sort.is_descending()) {
                // Descending: smaller values next, ties by ascending id, nulls last.
                (Some(v), true) => {
                    let v = s.bind(Arg::Time(micros_to_db(v)?));
                    let after = format!("({column} <= {v} AND ({column} < {v} OR {id_c} > {id}))");
                    if sort.field() == KeySortField::LastUsed {
                        format!("({after} OR {column} IS NULL)")
                    } else {
                        after
                    }
                }
                (None, true) => format!("({column} IS NULL AND {id_c} > {id})"),
                // Ascending: the exact reverse, nulls first.
                (Some(v), false) => {
                    let v = s.bind(Arg::Time(micros_to_db(v)?));
                    format!("({column} >= {v} AND ({column} > {v} OR {id_c} < {id}))")
                }
                (None, false) => format!("({column} IS NOT NULL OR {id_c} < {id})"),
            };
            s.and(&clause);
        }
        let order = match (sort.field(), sort.is_descending()) {
            (KeySortField::LastUsed, true) => "last_used_at DESC NULLS LAST, id COLLATE \"C\"",
            (KeySortField::LastUsed, false) => {
                "last_used_at ASC NULLS FIRST, id COLLATE \"C\" DESC"
            }
            (_, true) => &format!("{column} DESC, id COLLATE \"C\""),
            (_, false) => &format!("{column} ASC, id COLLATE \"C\" DESC"),
        };
        let limit = s.bind(Arg::Limit(
            i64::try_from(query.limit().get() + 1).unwrap_or(1001),
        ));
        s.sql.push_str(&format!(" ORDER BY {order} LIMIT {limit}"));
        Ok(s)
    }

    /// How PostgreSQL would run `query`'s statement: the lines of `EXPLAIN`, for
    /// operators checking that their listing uses the indexes `migrate` created (a
    /// `Seq Scan` on the keys table means it does not; run `ANALYZE` after a bulk load).
    pub async fn explain_list_page(&self, query: &KeyQuery) -> Result<Vec<String>, StoreError> {
        let statement = self.list_statement(query)?;
        self.explain(&statement.sql, |q| bind_all(q, statement.args))
            .await
    }

    pub(super) async fn page(&self, query: &KeyQuery) -> Result<Page<KeyRecord>, StoreError> {
        let statement = self.list_statement(query)?;
        let rows = bind_all(sqlx::query(AssertSqlSafe(statement.sql)), statement.args)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        let mut records = rows
            .iter()
            .map(record_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let limit = query.limit().get();
        let next = if records.len() > limit {
            records.truncate(limit);
            records.last().map(|last| query.cursor_of(last))
        } else {
            None
        };
        Ok(Page::new(records, next))
    }
}

fn bind_all(mut query: super::PgQuery<'static>, args: Vec<Arg>) -> super::PgQuery<'static> {
    for arg in args {
        query = match arg {
            Arg::Time(t) => query.bind(t),
            Arg::Text(t) => query.bind(t),
            Arg::Texts(t) => query.bind(t),
            Arg::Limit(n) => query.bind(n),
        };
    }
    query
}

/// The condition of `state` at `now`, as [`KeyFilter::matches`] defines it.
fn state_clause(s: &mut Statement, state: KeyFilter, now: SystemTime) -> Result<(), StoreError> {
    // `None` (a bound beyond what `SystemTime` holds) cannot happen for a real clock;
    // `now` then stands in, and `to_db` refuses what the database cannot hold.
    let at = |s: &mut Statement, t: Option<SystemTime>| -> Result<String, StoreError> {
        Ok(s.bind(Arg::Time(to_db(t.unwrap_or(now))?)))
    };
    let now_p = at(s, Some(now))?;
    let active = format!("revoked_at IS NULL AND {STOPS_AT} > {now_p}");
    match state {
        KeyFilter::Active => s.and(&active),
        KeyFilter::Expiring => {
            let horizon = at(s, now.checked_add(EXPIRING_WITHIN))?;
            s.and(&format!("{active} AND {STOPS_AT} <= {horizon}"));
        }
        KeyFilter::Expired => s.and(&format!("revoked_at IS NULL AND {STOPS_AT} <= {now_p}")),
        KeyFilter::Revoked => s.and("revoked_at IS NOT NULL"),
        KeyFilter::Dormant => {
            let unused = at(s, now.checked_sub(DORMANT_AFTER_UNUSED))?;
            let never = at(s, now.checked_sub(DORMANT_AFTER_NEVER_USED))?;
            s.and(&format!(
                "{active} AND (last_used_at < {unused} \
                 OR (last_used_at IS NULL AND created_at < {never}))"
            ));
        }
        _ => return Err(StoreError::Unsupported("this state filter")),
    }
    Ok(())
}

/// `text` with `\`, `%` and `_` escaped for `LIKE … ESCAPE '\'`: a literal substring.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// A cursor's microseconds as a `timestamptz`.
fn micros_to_db(micros: i64) -> Result<OffsetDateTime, StoreError> {
    let nanos = i128::from(micros) * 1_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| {
        StoreError::Corrupt(format!(
            "the cursor's time {micros} µs is outside what this store can hold"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_are_escaped_to_literal_text() {
        assert_eq!(escape_like("100%_a\\b"), "100\\%\\_a\\\\b");
        assert_eq!(escape_like("plain"), "plain");
    }

    #[test]
    fn index_names_fit_postgresql_with_the_longest_table() {
        for index in INDEXES {
            assert!(super::super::MAX_TABLE_LEN + index.suffix.len() <= 63);
        }
    }
}
