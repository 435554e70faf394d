//! The tables beside the key table, as `migrate` creates them and the event and usage
//! statements name them. Names derive from the key table's (at most 55 characters),
//! with suffixes short enough to stay within PostgreSQL's 63.

/// One table beside the key table.
pub(super) struct AuxTable {
    pub(super) name: String,
    pub(super) create: String,
    /// Name, type as written, `NOT NULL`.
    pub(super) columns: &'static [(&'static str, &'static str, bool)],
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

const LIMIT_COLUMNS: &[(&str, &str, bool)] = &[
    ("key_id", "text", true),
    ("tat_ns", "bigint", true),
    ("period", "integer", true),
    ("spent", "bigint", true),
];

const INSTANCE_COLUMNS: &[(&str, &str, bool)] =
    &[("instance", "text", true), ("seen_at", "timestamptz", true)];

const EVENT_COLUMNS: &[(&str, &str, bool)] = &[
    ("id", "bigint", true),
    ("type", "text", true),
    ("key_id", "text", true),
    ("actor", "text", false),
    ("at", "timestamptz", true),
    ("related_key_id", "text", false),
    ("days", "integer", false),
    ("ends_at", "timestamptz", false),
    ("attempts", "bigint", false),
];

const USAGE_COLUMNS: &[(&str, &str, bool)] = &[
    ("key_id", "text", true),
    ("day", "date", true),
    ("requests", "bigint", true),
];

const BATCH_COLUMNS: &[(&str, &str, bool)] = &[("id", "text", true), ("at", "timestamptz", true)];

/// Every table beside the key table `schema.table`, in the order `migrate` makes them.
pub(super) fn aux_tables(schema: &str, table: &str) -> Vec<AuxTable> {
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
                    attempts bigint
                )"
            ),
            columns: EVENT_COLUMNS,
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
            ],
        },
        AuxTable {
            name: usage_table(table),
            create: format!(
                "CREATE TABLE {usage} (
                    key_id text NOT NULL,
                    day date NOT NULL,
                    requests bigint NOT NULL,
                    CONSTRAINT \"{table}_us_pk\" PRIMARY KEY (key_id, day)
                )"
            ),
            columns: USAGE_COLUMNS,
            indexes: vec![(
                format!("{table}_us_day"),
                format!("CREATE INDEX \"{table}_us_day\" ON {usage} (day)"),
            )],
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
            indexes: vec![],
        },
    ]
}
