//! [`MigrateError`]: why [`PgKeyStore::migrate`](super::PgKeyStore::migrate) refused
//! to go on.

use tower_apikey::StoreError;

/// Why [`PgKeyStore::migrate`](super::PgKeyStore::migrate) stopped.
///
/// Whatever the variant, nothing was changed: the migration runs in one transaction,
/// which is rolled back. Apart from [`Store`](Self::Store), each variant means that the
/// database holds something `migrate` did not create and will not trust, and its
/// message names it and says what to do. Do not serve requests from such a table: it
/// may hold keys nobody issued, or a trigger that undoes revocations.
///
/// Object names are shown as `schema.table`; they never contain keys or digests.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The database could not be reached, or failed a statement.
    #[error(transparent)]
    Store(#[from] StoreError),

    /// The schema or the table belongs to a role that is neither the connecting role
    /// nor the owner named with [`PgKeyStore::with_owner`](super::PgKeyStore::with_owner).
    /// Its owner can plant keys in it, and add triggers, rules or policies at will.
    #[error(
        "{object} is owned by role {owner}, not by {current_user} (the role migrate() \
         connects as){}, and whoever owns it decides which keys it holds. If {owner} is \
         your own role that migrates the schema, name it with \
         PgKeyStore::with_owner(\"{owner}\"); if not, drop {object} (after saving any \
         keys you trust) and run migrate() again",
        configured(.configured_owner)
    )]
    #[non_exhaustive]
    UntrustedOwner {
        /// What is owned: `schema s` or `table s.t`.
        object: String,
        /// The role that owns it.
        owner: String,
        /// The role the migration ran as (`current_user`).
        current_user: String,
        /// The owner named with `with_owner`, if any.
        configured_owner: Option<String>,
    },

    /// The table's name belongs to something else: a view, an index, a partitioned or
    /// foreign table.
    #[error(
        "{object} is a {kind}, not an ordinary table: drop or rename it, or give the \
         store another table name (PgKeyStore::with_table), and run migrate() again"
    )]
    #[non_exhaustive]
    NotATable {
        /// The name that is taken: `table s.t`.
        object: String,
        /// What it is instead.
        kind: &'static str,
    },

    /// The table has triggers that `migrate` did not create. A trigger runs with the
    /// rights of whoever writes the row, and can silently change what is written.
    #[error(
        "table {table} has triggers that migrate() did not create: {}. Check what they \
         do, then drop them (DROP TRIGGER … ON {table}) and run migrate() again",
        list(.triggers)
    )]
    #[non_exhaustive]
    Triggers {
        /// The table: `s.t`.
        table: String,
        /// The triggers' names.
        triggers: Vec<String>,
    },

    /// The table has rewrite rules (`CREATE RULE`), which can turn a revocation into
    /// something else.
    #[error(
        "table {table} has rules that migrate() did not create: {}. Drop them \
         (DROP RULE … ON {table}) and run migrate() again",
        list(.rules)
    )]
    #[non_exhaustive]
    Rules {
        /// The table: `s.t`.
        table: String,
        /// The rules' names.
        rules: Vec<String>,
    },

    /// The table has row security enabled or forced, or row-security policies, which
    /// can hide rows (revoked keys among them) from some roles.
    #[error(
        "table {table} has row security that migrate() did not set up ({}). Remove it \
         (ALTER TABLE {table} DISABLE ROW LEVEL SECURITY, NO FORCE ROW LEVEL SECURITY; \
         DROP POLICY … ON {table}) and run migrate() again",
        row_security(*.enabled, .policies)
    )]
    #[non_exhaustive]
    RowSecurity {
        /// The table: `s.t`.
        table: String,
        /// Whether row security is enabled or forced on it.
        enabled: bool,
        /// The names of its policies.
        policies: Vec<String>,
    },

    /// The table's columns are not the ones `migrate` creates: missing, extra, of
    /// another type, or with another `NOT NULL`.
    #[error(
        "table {table} does not have the columns migrate() creates: {}. It was made by \
         something else or changed by hand: fix the columns, or move it aside (ALTER TABLE \
         … RENAME), run migrate() to create a new one and copy the keys you trust over",
        .problems.join("; ")
    )]
    #[non_exhaustive]
    Columns {
        /// The table: `s.t`.
        table: String,
        /// One sentence per column that differs.
        problems: Vec<String>,
    },

    /// The table has no primary key on `id`, so ids could repeat.
    #[error(
        "table {table} has no primary key on id, so one key id could have several rows: \
         add it (ALTER TABLE {table} ADD PRIMARY KEY (id)) and run migrate() again"
    )]
    #[non_exhaustive]
    NoPrimaryKey {
        /// The table: `s.t`.
        table: String,
    },

    /// The name of one of its indexes (`<table>_newest` or `<table>_heirs`) is taken
    /// by another object.
    #[error(
        "{index} is not an index on table {table}, yet migrate() needs that name for it: \
         drop or rename {index} and run migrate() again"
    )]
    #[non_exhaustive]
    IndexNameTaken {
        /// The index name: `s.<table>_newest` or `s.<table>_heirs`.
        index: String,
        /// The table: `s.t`.
        table: String,
    },

    /// The connecting role lacks a privilege that a step of the migration needs
    /// (creating the schema or the table, adding a column or an index).
    #[error(
        "role {role} may not {action}: run migrate() once as a role that may (the \
         table's owner, with CREATE on the schema, or on the database if the schema is \
         new); roles that only serve can then run migrate() to verify, naming that \
         owner with PgKeyStore::with_owner"
    )]
    #[non_exhaustive]
    NotPermitted {
        /// The role the migration ran as.
        role: String,
        /// What it tried to do.
        action: String,
        /// The database's refusal.
        #[source]
        source: sqlx::Error,
    },
}

fn configured(owner: &Option<String>) -> String {
    match owner {
        Some(owner) => format!(" or by {owner} (the configured owner)"),
        None => " or by a configured owner".to_owned(),
    }
}

fn list(names: &[String]) -> String {
    names.join(", ")
}

fn row_security(enabled: bool, policies: &[String]) -> String {
    match (enabled, policies.is_empty()) {
        (true, true) => "row security is enabled".to_owned(),
        (true, false) => format!("row security is enabled; policies {}", list(policies)),
        (false, _) => format!("policies {}", list(policies)),
    }
}
