//! [`PgKeyStore`]: keys in PostgreSQL, shared by many instances, for [`tower_apikey`].
//!
//! The store takes the application's [`sqlx::PgPool`] and uses runtime queries, so
//! nothing needs a database at compile time. Put a [`CachedKeyStore`] in front of it
//! and give the manager its [`KeyFeedListener`], so that a key revoked on one instance
//! is refused by every other instance within about a second, and forged ids never reach
//! the database; share the keys' limits through the same database:
//!
//! ```no_run
//! use std::time::Duration;
//! use sqlx::postgres::PgPoolOptions;
//! use tower_apikey::KeyManager;
//! use tower_apikey::limits::SharedLimits;
//! use tower_apikey::store::cached::CachedKeyStore;
//! use tower_apikey_postgres::PgKeyStore;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let pool = PgPoolOptions::new()
//!     // Fail fast when the database is unreachable: requests then get 503 quickly.
//!     .acquire_timeout(Duration::from_secs(2))
//!     .connect("postgres://app@localhost/app")
//!     .await?;
//! let store = PgKeyStore::new(pool);
//! store.migrate().await?; // idempotent; safe for instances starting together
//! let limits = SharedLimits::new(store.clone()); // PgKeyStore is a LimitBackend
//! let store = CachedKeyStore::new(store);
//! let manager = KeyManager::builder(store.clone())
//!     .feed_listener(store.feed_listener())
//!     .shared_limits(limits)
//!     .build();
//!
//! let running = tokio::spawn(manager.background()); // the feed, leases, last uses
//! // … serve with `manager.layer()` until the server has stopped, then:
//! manager.shutdown().await?; // last uses written, unspent limits given back
//! running.await?;
//! # Ok(()) }
//! ```
//!
//! The repository's `examples/quick_start/postgres.rs` is the whole program, run
//! against a real PostgreSQL by this crate's tests.
//!
//! # Schema
//!
//! [`PgKeyStore::migrate`] creates one table, by default `public.api_keys` (see
//! [`PgKeyStore::with_schema`] and [`PgKeyStore::with_table`]):
//!
//! | column | type | |
//! |---|---|---|
//! | `id` | `text` primary key | the public key id |
//! | `name` | `text` | |
//! | `scopes` | `text[]` | |
//! | `digest` | `bytea`, 32 bytes | SHA-256 of the key; never the key |
//! | `created_at`, `expires_at` | `timestamptz` | |
//! | `revoked_at`, `last_used_at` | `timestamptz` null | |
//! | `rotated_from` | `text` null | the id this key replaced |
//! | `ends_at` | `timestamptz` null | when a rotation scheduled this key to end (`expires_at` stays its original expiry) |
//! | `created_by`, `revoked_by` | `text` null | who acted: an admin key's id or a signed-in person's name; null when the application did |
//! | `tenant` | `text` null, checked | the customer organisation the key belongs to (DESIGN §14): 1 to 64 of `A-Z a-z 0-9 . _ : -`, as [`TenantId`](tower_apikey::record::TenantId) accepts (a `CHECK` refuses anything else); null for the application's own keys |
//!
//! the index `<table>_newest` on `(created_at DESC, id)` for listing, those of
//! the paged listing ([`KeyStoreAdmin::list_page`](tower_apikey::KeyStoreAdmin::list_page)): `<table>_created`, `_used` and
//! `_expires` (one per sort, ids in byte order, `COLLATE "C"`), `_revoked` and `_stops`
//! (partial, for the state filters) and `_scopes` (GIN, for the scope filter), and the
//! index `<table>_heirs` on `rotated_from` (partial, where it is set), with which a
//! rotation checks that the old key has no live successor, and one tenant's listing
//! indexes, `<table>_tcreate`, `_tused` and `_texpire` (`tenant` before each sort's
//! columns; partial, where a tenant is set). Every list query but a search (`q`, an
//! `ILIKE` that scans) reads through them, a tenant's
//! ([`KeyQuery::with_tenant`](tower_apikey::store::KeyQuery::with_tenant)) through its
//! sort's tenant index;
//! [`PgKeyStore::explain_list_page`] shows the plan. Times are kept
//! to the microsecond (PostgreSQL's precision). No triggers, rules, functions or
//! row-security policies: revocations are notified by the statements themselves.
//! A later release adds columns as nullable ones, which `migrate` adds to an existing
//! table.
//!
//! Beside it, `migrate` creates and verifies, with the same checks as below, the audit
//! trail's tables: `<table>_events` (the [`EventStore`](tower_apikey::event::EventStore); indexes
//! `<table>_ev_key` on `(key_id, id DESC)`, `<table>_ev_at` on `at` for pruning, and the
//! unique `<table>_ev_once` on `(key_id, days)` for `expiring`, which makes it fire once
//! across instances, and `<table>_ev_tnt` on `(tenant, id DESC)` for one tenant's
//! events), `<table>_usage` (daily request counts, primary key `(key_id, day)`, and
//! `<table>_us_tnt` on `(tenant, day)` for [`PgKeyStore::tenant_daily_requests`]) and
//! `<table>_ubatch` (the ids of usage batches already counted, so that a retried flush
//! counts once). Events and counts carry their key's `tenant` (nullable, with the same
//! check), copied from the key's row by the statement that writes them, so that every
//! writer, the request path's included, need know only the key's id; a table from
//! before tenants gains the column on `migrate`, filled in from the keys by one
//! `UPDATE … FROM` in the migration's transaction. [`PgKeyStore::explain_events`] and
//! [`PgKeyStore::explain_tenant_daily_requests`] show the plans. The serving role needs `SELECT`, `INSERT`, `DELETE` on
//! them, and `UPDATE` on `<table>_usage`. Rows older than the retention are deleted by
//! the manager's [`background`](tower_apikey::KeyManager::background) when it has an
//! audit trail.
//!
//! # Trusting an existing table
//!
//! Whoever owns the table can plant keys in it, and a trigger on it can undo
//! revocations or run code with the rights of whoever writes to it. Where other roles
//! may create objects in the schema (PostgreSQL 14 and older let every role create in
//! `public`), one of them could create the table before the application does. So
//! `migrate` does not take an existing table on trust. In its transaction, before it
//! changes anything, it checks that:
//!
//! - the schema is owned by the connecting role (`current_user`), the role named with
//!   [`PgKeyStore::with_owner`], a superuser, or the database's owner;
//! - the table is an ordinary table owned by the connecting role or the named one;
//! - it has no triggers, no rules, no row security and no policies;
//! - it has exactly the columns above, with their types and `NOT NULL`, and its primary
//!   key on `id`; the names `<table>_newest` and `<table>_heirs` are indexes on it.
//!
//! Otherwise it fails with a [`MigrateError`] that names the problem and says what to
//! do, and the transaction is rolled back: nothing is changed. Do not serve requests
//! until it passes.
//!
//! # Roles and privileges
//!
//! | the role that… | needs |
//! |---|---|
//! | migrates, the first time | `CREATE` on the schema (or on the database, to create the schema); it then owns the table |
//! | migrates later, after an upgrade that adds a column or an index | the table's ownership |
//! | serves (lookups, create, update, revoke, rotate, last-used) | `USAGE` on the schema; `SELECT`, `INSERT`, `UPDATE` on the table (`UPDATE` for rotations' `SELECT … FOR UPDATE` too) |
//! | serves with the audit trail ([`EventStore`](tower_apikey::event::EventStore), daily counts) | also `SELECT`, `INSERT`, `DELETE` on `<table>_events`, `<table>_usage` and `<table>_ubatch`, and `UPDATE` on `<table>_usage` |
//! | follows created and revoked keys ([`KeyFeedListener`]) | `SELECT` on the table, for its snapshot of ids; `LISTEN` and `pg_notify` need no privilege |
//! | verifies ([`PgKeyStore::migrate`] when everything exists) | nothing more: it reads the catalog |
//!
//! One role can do it all. To keep the serving role small, migrate as an owner role at
//! deploy time, grant the serving role the privileges above, and have it verify at
//! startup with [`PgKeyStore::with_owner`] naming the owner:
//!
//! ```sql
//! GRANT USAGE ON SCHEMA public TO app;
//! GRANT SELECT, INSERT, UPDATE ON public.api_keys TO app;  -- as owner, after migrate()
//! ```
//!
//! # Revocation across instances
//!
//! A revocation, and a rotation that ends the old key early, runs in a transaction that
//! also calls `pg_notify('<table>_revoked', '<key id>')`, so the notification is sent
//! if and only if the change commits; so does a change of a key's name, limits or
//! addresses ([`KeyStoreUpdate::update`](tower_apikey::store::KeyStoreUpdate::update), in the same
//! statement as its `UPDATE`). Each instance's [`KeyFeedListener`] evicts the
//! id from its caches; the next request reads the revoked record. If the listener's
//! connection drops, or a heartbeat finds it dead, notifications sent meanwhile are
//! lost: the listener empties its caches at once, keeps records for the stale hit TTL
//! (1 s) while it reconnects, and empties them again once it is back.
//!
//! # Rotation until first use across instances
//!
//! An `until_first_use` rotation ([`OldKeyEnd::UntilFirstUse`](tower_apikey::store::OldKeyEnd::UntilFirstUse))
//! ends the old key in the transaction that writes its successor's first use: whichever
//! instance's [`UsageTracker`](tower_apikey::usage::UsageTracker) flushes that use sets the old key's
//! `ends_at` (the recorded use plus the grace) and notifies `<table>_revoked` in the
//! same transaction, so every listener evicts the old record as it would a revoked one
//! (the flushing instance's [`CachedKeyStore`] evicts it at once). The old key thus
//! stops everywhere at most one flush period (the tracker's, 5 minutes by default) plus
//! the grace plus the revocation bound above after the new key's first proven use, and
//! never before the recorded use plus the grace. A new key that is never used leaves
//! the old one to its own end.
//!
//! # Clocks
//!
//! Times are always the application's: the store writes the times it is given, never
//! the database's `now()`. A revocation is a state, not a time: a row with any
//! `revoked_at` is refused by every instance as soon as it reads it, so clock skew
//! between instances (or between them and the database) and clock steps cannot delay
//! or undo it. Only expiry and a rotation's scheduled end (`ends_at`) compare a stored
//! time with the judging instance's clock: if the instance that rotated runs `s` ahead
//! of one that checks, that one accepts the old key `s` past its end (behind: refuses
//! it `s` early). Overlaps of minutes tolerate any skew NTP leaves (milliseconds); a
//! skew of the same order as the overlap does not.
//!
//! # Forged ids
//!
//! Every insert notifies `<table>_created` in the same statement. `PgKeyStore` is a
//! [`KeyIdFeed`]: the listener LISTENs on both channels on one connection, then reads
//! every id (`SELECT id`), and keeps its caches' id filters from that snapshot and the
//! created-key notifications, so an id that does not exist is refused without a query
//! (beyond a few a second, which still reach the store). Notified ids are checked with
//! one query per batch before the filters trust them, since any role can `NOTIFY`. A
//! key created on one instance works on the others at once: its creation answers once
//! its own notification came back, the others ask for a notified id before checking
//! it, and an id they rule out waits a moment for its notification (see
//! [`KeyFeedListener`] and the crate's BENCHMARKS.md).
//!
//! [`KeyFeedListener`]: tower_apikey::store::feed::KeyFeedListener
//! [`KeyIdFeed`]: tower_apikey::store::feed::KeyIdFeed
//!
//! # When the database is down
//!
//! Lookups fail with [`StoreError`] (never "no such key"), and the middleware answers
//! 503. How fast depends on the pool: sqlx waits up to its acquire timeout (30 s by
//! default) for a connection, and the middleware's own lookup timeout (3 s by default)
//! answers 503 first. Set [`PgPoolOptions::acquire_timeout`] to a second or two so
//! that the error, not the timeout, says what happened. A [`CachedKeyStore`] followed
//! by a listener is emptied when the listener loses its connection (a revocation could
//! no longer reach it), so its keys get 503 too; without a listener it keeps answering
//! from the records it holds until their hit TTL (30 s) runs out. Errors are never
//! cached: the first request after the database is back reads it.
//!
//! [`PgPoolOptions::acquire_timeout`]: sqlx::postgres::PgPoolOptions::acquire_timeout
//! [`CachedKeyStore`]: tower_apikey::store::cached::CachedKeyStore
//! [`StoreError`]: tower_apikey::StoreError

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs, unreachable_pub, unsafe_code)]
#![warn(rust_2018_idioms, missing_debug_implementations)]

mod aux_sql;
mod events;
mod explain;
mod feed;
mod heirs;
mod limits;
mod list;
mod migrate;
mod migrate_error;
mod pg_key_store;
mod recent_ips;
mod sql;
mod tenant_usage;
mod usage;
mod usage_counts;
mod utc;

use std::time::Duration;

pub use migrate_error::MigrateError;
pub use pg_key_store::{IdentifierError, PgKeyStore};
// The store's helpers (row conversions, the heartbeat, …), for the modules beside it.
use pg_key_store::*;

/// How often the feed's LISTEN connection is checked (5 s).
pub const DEFAULT_HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// How long a heartbeat may take before the connection counts as dead (5 s): with
/// [`DEFAULT_HEARTBEAT_EVERY`], a dead connection is found within 10 s.
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(5);
