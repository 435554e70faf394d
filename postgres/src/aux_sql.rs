//! The tables beside the key table, as `migrate` creates them and the event and usage
//! statements name them. Names derive from the key table's (at most 55 characters),
//! with suffixes short enough to stay within PostgreSQL's 63.

use super::sql::{Column, TENANT_CHECK};

/// One table beside the key table.
pub(super) struct AuxTable {
    pub(super) name: String,
    pub(super) create: String,
    /// Its columns as `create` writes them. `migrate` adds a missing nullable one (with
    /// its constraints) to a table made by an earlier release.
    pub(super) columns: &'static [Column],
    /// What `migrate` runs, in its transaction, right after it added the named column:
    /// filling it in for the rows an earlier release wrote.
    pub(super) backfills: Vec<(&'static str, String)>,
    /// Index name and its `CREATE INDEX`.
    pub(super) indexes: Vec<(String, String)>,
}

/// `"schema"."name"`.
pub(super) fn quoted(schema: &str, name: &str) -> String {
    format!("\"{schema}\".\"{name}\"")
}

/// `<table>_events`.
pub(super) fn events_table(table: &str) -> String {
    format!("{table}_events")
}

/// `<table>_usage`.
pub(super) fn usage_table(table: &str) -> String {
    format!("{table}_usage")
}

/// `<table>_ubatch`.
pub(super) fn batches_table(table: &str) -> String {
    format!("{table}_ubatch")
}

/// `<table>_limits`: the shared ledger of per-key limits.
pub(super) fn limits_table(table: &str) -> String {
    format!("{table}_limits")
}

/// `<table>_linst`: the instances sharing the limits, by their last lease call.
pub(super) fn instances_table(table: &str) -> String {
    format!("{table}_linst")
}

const LIMIT_COLUMNS: &[Column] = &[
    Column::required("key_id", "text", ""),
    Column::required("tat_ns", "bigint", ""),
    Column::required("period", "integer", ""),
    Column::required("spent", "bigint", ""),
];

const INSTANCE_COLUMNS: &[Column] = &[
    Column::required("instance", "text", ""),
    Column::required("seen_at", "timestamptz", ""),
];

const EVENT_COLUMNS: &[Column] = &[
    Column::required("id", "bigint", ""),
    Column::required("type", "text", ""),
    Column::required("key_id", "text", ""),
    Column::nullable("actor", "text"),
    Column::required("at", "timestamptz", ""),
    Column::nullable("related_key_id", "text"),
    Column::nullable("days", "integer"),
    Column::nullable("ends_at", "timestamptz"),
    Column::nullable("attempts", "bigint"),
    // The tenant of the event's key, copied from its row as the event is stored.
    Column::nullable_checked("tenant", "text", TENANT_CHECK),
];

const USAGE_COLUMNS: &[Column] = &[
    Column::required("key_id", "text", ""),
    Column::required("day", "date", ""),
    Column::required("requests", "bigint", ""),
    // The tenant of the counted key, copied from its row as the count is first
    // written (a key's tenant never changes), so that a tenant's usage reads
    // through one index, `<table>_us_tnt` (see `tenant_usage.rs`).
    Column::nullable_checked("tenant", "text", TENANT_CHECK),
];

const BATCH_COLUMNS: &[Column] = &[
    Column::required("id", "text", ""),
    Column::required("at", "timestamptz", ""),
];

/// Fills the `tenant` of `rows` (events or counts, `"schema"."name"`) written before the
/// column existed from their keys' rows in `keys`: one statement, whatever the number of
/// rows. A key's tenant never changes, so the one it has now is the one it had; rows of
/// keys since deleted keep none.
fn tenant_backfill(rows: &str, keys: &str) -> (&'static str, String) {
    let fill = format!(
        "UPDATE {rows} AS r SET tenant = k.tenant FROM {keys} AS k
         WHERE k.id = r.key_id AND k.tenant IS NOT NULL AND r.tenant IS NULL"
    );
    ("tenant", fill)
}

/// Every table beside the key table `schema.table`, in the order `migrate` makes them.
pub(super) fn aux_tables(schema: &str, table: &str) -> Vec<AuxTable> {
    let keys = quoted(schema, table);
    let events = quoted(schema, &events_table(table));
    let usage = quoted(schema, &usage_table(table));
    let batches = quoted(schema, &batches_table(table));
    let limits = quoted(schema, &limits_table(table));
    let instances = quoted(schema, &instances_table(table));
    vec![
        AuxTable {
            name: events_table(table),
            create: format!(
                "CREATE TABLE {events} (
                    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT \"{table}_ev_pk\" PRIMARY KEY,
                    type text NOT NULL,
                    key_id text NOT NULL,
                    actor text,
                    at timestamptz NOT NULL,
                    related_key_id text,
                    days integer,
                    ends_at timestamptz,
                    attempts bigint,
                    tenant text {TENANT_CHECK}
                )"
            ),
            columns: EVENT_COLUMNS,
            backfills: vec![tenant_backfill(&events, &keys)],
            indexes: vec![
                (
                    format!("{table}_ev_key"),
                    format!("CREATE INDEX \"{table}_ev_key\" ON {events} (key_id, id DESC)"),
                ),
                (
                    format!("{table}_ev_at"),
                    format!("CREATE INDEX \"{table}_ev_at\" ON {events} (at)"),
                ),
                // What makes `expiring` fire once however many instances run the pass.
                (
                    format!("{table}_ev_once"),
                    format!(
                        "CREATE UNIQUE INDEX \"{table}_ev_once\" ON {events} (key_id, days)
                         WHERE type = 'expiring'"
                    ),
                ),
                // One tenant's events, newest first (DESIGN §14). Partial: the
                // application's own keys' events are never read by tenant.
                (
                    format!("{table}_ev_tnt"),
                    format!(
                        "CREATE INDEX \"{table}_ev_tnt\" ON {events} (tenant, id DESC)
                         WHERE tenant IS NOT NULL"
                    ),
                ),
            ],
        },
        AuxTable {
            name: usage_table(table),
            create: format!(
                "CREATE TABLE {usage} (
                    key_id text NOT NULL,
                    day date NOT NULL,
                    requests bigint NOT NULL,
                    tenant text {TENANT_CHECK},
                    CONSTRAINT \"{table}_us_pk\" PRIMARY KEY (key_id, day)
                )"
            ),
            columns: USAGE_COLUMNS,
            backfills: vec![tenant_backfill(&usage, &keys)],
            indexes: vec![
                (
                    format!("{table}_us_day"),
                    format!("CREATE INDEX \"{table}_us_day\" ON {usage} (day)"),
                ),
                // One tenant's days, for its usage (see `tenant_usage.rs`). Partial, as
                // the events' one.
                (
                    format!("{table}_us_tnt"),
                    format!(
                        "CREATE INDEX \"{table}_us_tnt\" ON {usage} (tenant, day)
                         WHERE tenant IS NOT NULL"
                    ),
                ),
            ],
        },
        AuxTable {
            name: batches_table(table),
            create: format!(
                "CREATE TABLE {batches} (
                    id text NOT NULL CONSTRAINT \"{table}_ub_pk\" PRIMARY KEY,
                    at timestamptz NOT NULL
                )"
            ),
            columns: BATCH_COLUMNS,
            backfills: vec![],
            indexes: vec![(
                format!("{table}_ub_at"),
                format!("CREATE INDEX \"{table}_ub_at\" ON {batches} (at)"),
            )],
        },
        AuxTable {
            name: limits_table(table),
            create: format!(
                "CREATE TABLE {limits} (
                    key_id text NOT NULL CONSTRAINT \"{table}_li_pk\" PRIMARY KEY,
                    tat_ns bigint NOT NULL,
                    period integer NOT NULL,
                    spent bigint NOT NULL
                )"
            ),
            columns: LIMIT_COLUMNS,
            backfills: vec![],
            indexes: vec![],
        },
        AuxTable {
            name: instances_table(table),
            create: format!(
                "CREATE TABLE {instances} (
                    instance text NOT NULL CONSTRAINT \"{table}_ln_pk\" PRIMARY KEY,
                    seen_at timestamptz NOT NULL
                )"
            ),
            columns: INSTANCE_COLUMNS,
            backfills: vec![],
            indexes: vec![],
        },
    ]
}
