//! ApiKey-v2 API-key authentication for [tower](https://docs.rs/tower) services: axum, hyper and tonic.
//!
//! Clients send `Authorization: ApiKey-v2 <key>`. This crate checks the key and runs
//! its life around it:
//!
//! - **[Key format](key)**: `mkc_<16-char id>_<43-char secret><6-char CRC-32>`, base62,
//!   checkable offline by secret scanners. Only the SHA-256 digest is stored.
//! - **[Middleware](ApiKeyV2Layer)**: constant-time digest comparison, fail-closed 503
//!   when the store is down, "expired"/"revoked" said only after the secret is proven,
//!   RFC 6750 challenges, RFC 9457 problem documents and gRPC trailers-only answers.
//! - **[Scopes](scope)**: `reports:read`, wildcards such as `reports:*` (the grammar and
//!   what grants what are in [`scope`]); 403 `insufficient_scope` names what is missing.
//! - **[Stores](store)**: [`KeyStore`] (one method for a read-only integration),
//!   [`KeyStoreAdmin`] for management, [`InMemoryKeyStore`] built in; for many
//!   instances, a cache (feature `cache`) and the PostgreSQL store of the crate
//!   `tower-apikey-postgres`.
//! - **[Last-used tracking](usage)**: the [manager's layer](KeyManager::layer) records
//!   each proven use without waiting, and its [background](KeyManager::background)
//!   writes each key's latest use to the store (a [`UsageSink`]) about every 5 minutes.
//! - **[Throttling](middleware::FailureThrottle)**: optionally, a client address that keeps sending
//!   wrong keys gets 429 before any lookup, in fixed memory; the
//!   [client address](client_addr) is the connection's peer or what trusted proxies
//!   forwarded.
//! - **[Key management](KeyManager)**: create (shown once, at most 365 days), list,
//!   revoke, rotate with an optional overlap or until the new key's first use, find
//!   expiring and dormant keys; over HTTP with the router of the crate
//!   `tower-apikey-admin`.
//!
//! # Quick starts
//!
//! Every way to serve has the same shape (DESIGN §4):
//!
//! 1. **one value owns the configuration**: [`KeyManager::new(store)`](KeyManager::new),
//!    or [`KeyManager::builder(store)`](KeyManager::builder) with an audit trail,
//!    shared limits, a cache's feed, a clock, a prefix, a scope catalogue;
//! 2. its **[`layer()`](KeyManager::layer)** checks each key and records its last use
//!    (and its events and limits, where configured);
//! 3. **one future runs every background loop**:
//!    `tokio::spawn(manager.background())` ([`KeyManager::background`]);
//! 4. **one call, once the server has stopped**, stops the loops and writes what is
//!    pending, in a documented order: `manager.shutdown().await`
//!    ([`KeyManager::shutdown`]).
//!
//! Each is `examples/quick_start/<name>.rs` (`cargo run --example quick_start_<name>`),
//! and `tests/quick_starts.rs` runs it: a request with a key through a real server, the
//! shutdown, and the key's last-used time in the store. [`ApiKeyV2Layer::new(store)`](ApiKeyV2Layer::new)
//! remains for a read-only integration that tracks nothing.
//!
//! ## axum
//!
#![doc = concat!("```rust,no_run\n", include_str!("../examples/quick_start/axum.rs"), "```")]
//!
//! ## hyper
//!
//! The layer is a plain tower layer, over any response body; hyper-util serves it.
//!
#![doc = concat!("```rust,no_run\n", include_str!("../examples/quick_start/hyper.rs"), "```")]
//!
//! ## tonic
//!
//! tonic 0.14 takes the layer as it is; refused calls get a gRPC status.
//!
#![doc = concat!("```rust,no_run\n", include_str!("../examples/quick_start/tonic.rs"), "```")]
//!
//! ## PostgreSQL, for many instances
//!
//! With the crate `tower-apikey-postgres`: the store behind a cache, the feed that keeps
//! every instance's cache in step, limits shared through the database
//! (`postgres/tests/quick_start.rs` runs it against a real PostgreSQL).
//!
#![doc = concat!("```rust,no_run\n", include_str!("../examples/quick_start/postgres.rs"), "```")]
//!
//! # Feature flags
//!
//! | feature | adds |
//! |---|---|
//! | *(default)* | the middleware, [`RequireScopesLayer`] for per-route scopes, [`InMemoryKeyStore`], [`KeyManager`] |
//! | `axum` | `ApiKeyIdentity` as an extractor, the [client address](client_addr) from axum's `ConnectInfo` |
//! | `test-util` | `testing`: the test aids, and the store conformance suite to run against your own [`KeyStore`] |
//! | `cache` | `store::cached::CachedKeyStore`: a bounded cache with hit and miss TTLs over any [`KeyStore`]; `store::feed`, to keep it in step with its store |
//! | `client` | `client::SelfRotateLayer`: an integration's HTTP client sends its key and rotates it itself before it expires |
//! | `metrics` | `metrics`: outcome counts, lookup latency, cache, usage-flush, event-sink and feed-listener health through the `metrics` facade |
//!
//! # Where names live
//!
//! **The root holds what an application names in its first hour**: the layers, the
//! identity, the manager, its builder, its background future and what it takes and
//! returns, the store traits and the in-memory store, the record and the key, scopes,
//! the usage sink and the clock.
//! **Everything else lives in the module of its subject**, documented there, as in
//! tower-http. Each public item has exactly one path: a name at the root is in no
//! module, and a name in a module is not at the root.
//!
//! | at the root | |
//! |---|---|
//! | middleware | [`ApiKeyV2Layer`], [`ApiKeyV2Service`], [`ApiKeyIdentity`], [`RequireScopesLayer`] |
//! | management | [`KeyManager`], [`KeyManagerBuilder`], [`Background`], [`NewKey`], [`CreatedKey`], [`ManagerError`], [`ShutdownError`], [`Actor`] |
//! | stores | [`KeyStore`], [`KeyStoreAdmin`], [`StoreError`], [`InMemoryKeyStore`], [`KeyRecord`] |
//! | keys and scopes | [`KeyId`], [`PlaintextKey`], [`Scope`], [`Scopes`] |
//! | around them | [`UsageSink`], [`Clock`], [`SystemClock`] |
//!
//! | module | documents, and holds |
//! |---|---|
//! | [`key`] | the key format, checkable offline; the digest, the prefix, their errors |
//! | [`record`] | what a record's fields are made of: names, actors, limits and restrictions, recent addresses, the key's state |
//! | [`scope`] | the scope grammar and what grants what; its error and limits |
//! | [`store`] | the store traits and how they grow; queries, pages, updates, revocations, rotation's outcomes; `store::cached` (the cache, feature `cache`) and `store::feed` (a store's id feed and the listener that follows it, feature `cache`) |
//! | [`usage`] | last-used tracking: the tracker, batches, per-day counts, the sink's error, [`TracingUsageSink`](usage::TracingUsageSink) |
//! | [`event`] | the audit trail: events, their store and sink, the log, [`TracingEventSink`](event::TracingEventSink) |
//! | [`limits`] | per-key limits shared by many instances: the backend trait, its ledger, [`InMemoryLimitBackend`](limits::InMemoryLimitBackend) |
//! | [`middleware`] | a request's path through the layer, one row per refusal; rejections, the futures and body, the failure throttle |
//! | [`client_addr`] | the client's address, and trusting proxies |
//! | [`manager`] | what key management takes and reports besides the root's names: acting as an actor, the scope catalogue, restrictions, rotation plans, lifetimes |
//! | [`cors`] | exposing `ApiKey-Expires` to browsers on other origins |
//! | `client` | the integration's side: sending a key and rotating it (feature `client`) |
//! | `metrics` | the metrics' names and `describe` (feature `metrics`) |
//! | `testing` | every test aid: `ManualClock`, failing stores, forged keys, the conformance suites and their macros (feature `test-util`) |
//!
//! Key management over HTTP is the crate `tower-apikey-admin`; the PostgreSQL store is
//! the crate `tower-apikey-postgres`.
//!
//! Defaults and limits are public constants beside what they configure, each named in
//! the documentation of the setting it is the default of: for example
//! [`manager::MAX_LIFETIME`] (365 days, the longest a key lives),
//! [`middleware::DEFAULT_LOOKUP_TIMEOUT`] (3 s for one store lookup, then 503) and
//! `store::cached::DEFAULT_HIT_TTL` (feature `cache`).
//!
//! # Setters
//!
//! One style. A setter consumes the value and returns it, and is named after what it
//! sets: `ApiKeyV2Layer::new(store).realm("billing")`, `NewKey::new(…).lifetime(…)`,
//! `CachedKeyStore::builder(…).max_entries(…)`. Where the type also reads that back
//! under the same name (a getter or a public field, as records, queries and events do:
//! `record.expires_at()`), the getter keeps the name and the setter is `with_<name>`, a
//! copy with that changed, as `Path::with_extension` is to `Path::extension`:
//! [`KeyRecord::with_expires_at`], [`KeyQuery::with_limit`](store::KeyQuery::with_limit)
//! beside `KeyQuery::limit`.
//!
//! # Security notes
//!
//! - Keys are compared by SHA-256 digest in constant time; for an unknown id the layer
//!   does the same digest and comparison (against a dummy) as for a wrong secret. A
//!   store's lookup may still take longer for an id it holds than for one it lacks (the
//!   in-memory store: a few nanoseconds); ids are public, secrets are not revealed.
//! - No `Debug`, `Display` or log line shows a key or its digest; [`PlaintextKey`]
//!   zeroes its memory on drop.
//! - Serve the API over TLS: the key travels in a header.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs, unreachable_pub, unsafe_code)]
#![warn(rust_2018_idioms, missing_debug_implementations)]

#[cfg(feature = "axum")]
mod axum;
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod client;
pub mod client_addr;
mod clock;
pub mod cors;
mod error;
pub mod event;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod header;
pub mod key;
pub mod limits;
pub mod manager;
// Public with the feature (names and `describe`); without it, only the crate's no-op
// call sites, so that a build without `metrics` has neither the code nor the dependency.
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
#[cfg(not(feature = "metrics"))]
mod metrics;
pub mod middleware;
mod outcome;
mod page;
mod problem;
pub mod record;
pub mod scope;
pub mod store;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;
mod time;
pub mod usage;

// The root: at most 25 documented names (`tests/root_surface.rs` counts them).
pub use clock::{Clock, SystemClock};
pub use error::StoreError;
pub use key::format::{KeyId, PlaintextKey};
pub use manager::actor::Actor;
pub use manager::background::{Background, ShutdownError};
pub use manager::builder::KeyManagerBuilder;
pub use manager::key_manager::{CreatedKey, KeyManager, ManagerError, NewKey};
pub use middleware::layer::ApiKeyV2Layer;
pub use middleware::require_scopes::RequireScopesLayer;
pub use middleware::service::ApiKeyV2Service;
pub use record::identity::ApiKeyIdentity;
pub use record::key_record::KeyRecord;
pub use scope::scopes::{Scope, Scopes};
pub use store::key_store::{KeyStore, KeyStoreAdmin};
pub use store::memory::InMemoryKeyStore;
pub use usage::sink::UsageSink;

// Migration from 0.1: each name that left the root, or was renamed, keeps its old root
// path as a deprecated, hidden alias (a `#[deprecated]` on a `pub use` would warn no one).
// Traits cannot be aliased and simply moved. CHANGELOG.md lists old and new paths. Remove
// these in 0.3.

#[deprecated(note = "use tower_apikey::manager::ActingAs")]
#[doc(hidden)]
pub type ActingAs<'a, S> = manager::ActingAs<'a, S>;
#[deprecated(note = "use tower_apikey::record::ActorName")]
#[doc(hidden)]
pub type ActorName = record::ActorName;
#[deprecated(note = "use tower_apikey::record::ActorNameError")]
#[doc(hidden)]
pub type ActorNameError = record::ActorNameError;
#[deprecated(note = "use tower_apikey::record::AllowedIps")]
#[doc(hidden)]
pub type AllowedIps = record::AllowedIps;
#[cfg(feature = "cache")]
#[deprecated(note = "use tower_apikey::store::cached::CachedKeyStoreStats")]
#[doc(hidden)]
pub type CacheStats = store::cached::CachedKeyStoreStats;
#[cfg(feature = "cache")]
#[deprecated(note = "use tower_apikey::store::cached::CachedKeyStore")]
#[doc(hidden)]
pub type CachedKeyStore<S> = store::cached::CachedKeyStore<S>;
#[cfg(feature = "cache")]
#[deprecated(note = "use tower_apikey::store::cached::CachedKeyStoreBuilder")]
#[doc(hidden)]
pub type CachedKeyStoreBuilder<S> = store::cached::CachedKeyStoreBuilder<S>;
#[deprecated(note = "use tower_apikey::manager::CatalogueEntry")]
#[doc(hidden)]
pub type CatalogueEntry = manager::CatalogueEntry;
#[deprecated(note = "use tower_apikey::manager::CatalogueError")]
#[doc(hidden)]
pub type CatalogueError = manager::CatalogueError;
#[deprecated(note = "use tower_apikey::manager::ChangeKind")]
#[doc(hidden)]
pub type ChangeKind = manager::ChangeKind;
#[deprecated(note = "use tower_apikey::client_addr::ClientAddr")]
#[doc(hidden)]
pub type ClientAddr = client_addr::ClientAddr;
#[deprecated(note = "use tower_apikey::manager::DEFAULT_FIRST_USE_GRACE")]
#[doc(hidden)]
pub const DEFAULT_FIRST_USE_GRACE: std::time::Duration = manager::DEFAULT_FIRST_USE_GRACE;
#[deprecated(note = "use tower_apikey::store::DEFAULT_PAGE_LIMIT")]
#[doc(hidden)]
pub const DEFAULT_PAGE_LIMIT: usize = store::DEFAULT_PAGE_LIMIT;
#[deprecated(note = "use tower_apikey::store::DORMANT_AFTER_NEVER_USED")]
#[doc(hidden)]
pub const DORMANT_AFTER_NEVER_USED: std::time::Duration = store::DORMANT_AFTER_NEVER_USED;
#[deprecated(note = "use tower_apikey::store::DORMANT_AFTER_UNUSED")]
#[doc(hidden)]
pub const DORMANT_AFTER_UNUSED: std::time::Duration = store::DORMANT_AFTER_UNUSED;
#[deprecated(note = "use tower_apikey::middleware::DefaultRejection")]
#[doc(hidden)]
pub type DefaultRejection = middleware::DefaultRejection;
#[deprecated(note = "use tower_apikey::middleware::DefaultRejection")]
#[doc(hidden)]
#[allow(non_upper_case_globals)]
pub const DefaultRejection: middleware::DefaultRejection = middleware::DefaultRejection;
#[deprecated(note = "use tower_apikey::store::EXPIRING_WITHIN")]
#[doc(hidden)]
pub const EXPIRING_WITHIN: std::time::Duration = store::EXPIRING_WITHIN;
#[deprecated(note = "use tower_apikey::event::EventDetail")]
#[doc(hidden)]
pub type EventDetail = event::EventDetail;
#[deprecated(note = "use tower_apikey::event::EventId")]
#[doc(hidden)]
pub type EventId = event::EventId;
#[deprecated(note = "use tower_apikey::event::EventLog")]
#[doc(hidden)]
pub type EventLog = event::EventLog;
#[deprecated(note = "use tower_apikey::event::EventLogBuilder")]
#[doc(hidden)]
pub type EventLogBuilder = event::EventLogBuilder;
#[deprecated(note = "use tower_apikey::event::EventLogStats")]
#[doc(hidden)]
pub type EventLogStats = event::EventLogStats;
#[deprecated(note = "use tower_apikey::event::EventQuery")]
#[doc(hidden)]
pub type EventQuery = event::EventQuery;
#[deprecated(note = "use tower_apikey::event::EventSinkError")]
#[doc(hidden)]
pub type EventSinkError = event::EventSinkError;
#[deprecated(note = "use tower_apikey::event::EventType")]
#[doc(hidden)]
pub type EventType = event::EventType;
#[deprecated(note = "use tower_apikey::limits::Exhausted")]
#[doc(hidden)]
pub type Exhausted = limits::Exhausted;
#[deprecated(note = "use tower_apikey::manager::ExpiryError")]
#[doc(hidden)]
pub type ExpiryError = manager::ExpiryError;
#[deprecated(note = "use tower_apikey::middleware::FailureThrottle")]
#[doc(hidden)]
pub type FailureThrottle = middleware::FailureThrottle;
#[cfg(feature = "cache")]
#[deprecated(note = "use tower_apikey::store::feed::FeedHealth")]
#[doc(hidden)]
pub type FeedHealth = store::feed::FeedHealth;
#[cfg(feature = "cache")]
#[deprecated(note = "use tower_apikey::store::cached::FilterState")]
#[doc(hidden)]
pub type FilterState = store::cached::FilterState;
#[deprecated(note = "use tower_apikey::middleware::HeaderError")]
#[doc(hidden)]
pub type HeaderError = middleware::HeaderError;
#[deprecated(note = "use tower_apikey::limits::InstanceId")]
#[doc(hidden)]
pub type InstanceId = limits::InstanceId;
#[cfg(feature = "cache")]
#[deprecated(note = "use tower_apikey::store::feed::KeyChange")]
#[doc(hidden)]
pub type KeyChange = store::feed::KeyChange;
#[deprecated(note = "use tower_apikey::key::KeyDigest")]
#[doc(hidden)]
pub type KeyDigest = key::KeyDigest;
#[deprecated(note = "use tower_apikey::event::KeyEvent")]
#[doc(hidden)]
pub type KeyEvent = event::KeyEvent;
#[cfg(feature = "cache")]
#[deprecated(note = "use tower_apikey::store::feed::KeyFeedListener")]
#[doc(hidden)]
pub type KeyFeedListener = store::feed::KeyFeedListener;
#[deprecated(note = "use tower_apikey::store::KeyFilter")]
#[doc(hidden)]
pub type KeyFilter = store::KeyFilter;
#[deprecated(note = "use tower_apikey::key::KeyFormatError")]
#[doc(hidden)]
pub type KeyFormatError = key::KeyFormatError;
#[deprecated(note = "use tower_apikey::key::KeyIdError")]
#[doc(hidden)]
pub type KeyIdError = key::KeyIdError;
#[deprecated(note = "use tower_apikey::key::KeyIdError")]
#[doc(hidden)]
#[allow(non_upper_case_globals)]
pub const KeyIdError: key::KeyIdError = key::KeyIdError;
#[cfg(feature = "cache")]
#[deprecated(note = "use tower_apikey::store::feed::KeyIdSubscription")]
#[doc(hidden)]
pub type KeyIdSubscription = store::feed::KeyIdSubscription;
#[deprecated(note = "use tower_apikey::record::KeyName")]
#[doc(hidden)]
pub type KeyName = record::KeyName;
#[deprecated(note = "use tower_apikey::store::KeyPosition")]
#[doc(hidden)]
pub type KeyPosition = store::KeyPosition;
#[deprecated(note = "use tower_apikey::key::KeyPrefix")]
#[doc(hidden)]
pub type KeyPrefix = key::KeyPrefix;
#[deprecated(note = "use tower_apikey::store::KeyQuery")]
#[doc(hidden)]
pub type KeyQuery = store::KeyQuery;
#[deprecated(note = "use tower_apikey::store::KeyQueryError")]
#[doc(hidden)]
pub type KeyQueryError = store::KeyQueryError;
#[deprecated(note = "use tower_apikey::store::KeySort")]
#[doc(hidden)]
pub type KeySort = store::KeySort;
#[deprecated(note = "use tower_apikey::store::KeySortField")]
#[doc(hidden)]
pub type KeySortField = store::KeySortField;
#[deprecated(note = "use tower_apikey::record::KeyState")]
#[doc(hidden)]
pub type KeyState = record::KeyState;
#[deprecated(note = "use tower_apikey::store::KeyUpdate")]
#[doc(hidden)]
pub type KeyUpdate = store::KeyUpdate;
#[deprecated(note = "use tower_apikey::usage::KeyUsage")]
#[doc(hidden)]
pub type KeyUsage = usage::KeyUsage;
#[deprecated(note = "use tower_apikey::limits::Lease")]
#[doc(hidden)]
pub type Lease = limits::Lease;
#[deprecated(note = "use tower_apikey::limits::LeaseRequest")]
#[doc(hidden)]
pub type LeaseRequest = limits::LeaseRequest;
#[deprecated(note = "use tower_apikey::limits::LedgerOutcome")]
#[doc(hidden)]
pub type LedgerOutcome = limits::LedgerOutcome;
#[deprecated(note = "use tower_apikey::limits::LedgerState")]
#[doc(hidden)]
pub type LedgerState = limits::LedgerState;
#[deprecated(note = "use tower_apikey::record::LimitError")]
#[doc(hidden)]
pub type LimitError = record::LimitError;
#[deprecated(note = "use tower_apikey::manager::Loosened")]
#[doc(hidden)]
pub type Loosened = manager::Loosened;
#[deprecated(note = "use tower_apikey::record::MAX_ACTOR_CHARS")]
#[doc(hidden)]
pub const MAX_ACTOR_CHARS: usize = record::MAX_ACTOR_CHARS;
#[deprecated(note = "use tower_apikey::record::MAX_ALLOWED_IPS")]
#[doc(hidden)]
pub const MAX_ALLOWED_IPS: usize = record::MAX_ALLOWED_IPS;
#[deprecated(note = "use tower_apikey::manager::MAX_CATALOGUE_SCOPES")]
#[doc(hidden)]
pub const MAX_CATALOGUE_SCOPES: usize = manager::MAX_CATALOGUE_SCOPES;
#[deprecated(note = "use tower_apikey::store::MAX_CURSOR_CHARS")]
#[doc(hidden)]
pub const MAX_CURSOR_CHARS: usize = store::MAX_CURSOR_CHARS;
#[deprecated(note = "use tower_apikey::usage::MAX_DAYS_PER_USAGE")]
#[doc(hidden)]
pub const MAX_DAYS_PER_USAGE: usize = usage::MAX_DAYS_PER_USAGE;
#[deprecated(note = "use tower_apikey::manager::MAX_DESCRIPTION_CHARS")]
#[doc(hidden)]
pub const MAX_DESCRIPTION_CHARS: usize = manager::MAX_DESCRIPTION_CHARS;
#[deprecated(note = "use tower_apikey::manager::MAX_FIRST_USE_GRACE")]
#[doc(hidden)]
pub const MAX_FIRST_USE_GRACE: std::time::Duration = manager::MAX_FIRST_USE_GRACE;
#[deprecated(note = "use tower_apikey::manager::MAX_LIFETIME")]
#[doc(hidden)]
pub const MAX_LIFETIME: std::time::Duration = manager::MAX_LIFETIME;
#[deprecated(note = "use tower_apikey::record::MAX_NAME_CHARS")]
#[doc(hidden)]
pub const MAX_NAME_CHARS: usize = record::MAX_NAME_CHARS;
#[deprecated(note = "use tower_apikey::store::MAX_PAGE_LIMIT")]
#[doc(hidden)]
pub const MAX_PAGE_LIMIT: usize = store::MAX_PAGE_LIMIT;
#[deprecated(note = "use tower_apikey::record::MAX_RATE_WINDOW_SECS")]
#[doc(hidden)]
pub const MAX_RATE_WINDOW_SECS: u32 = record::MAX_RATE_WINDOW_SECS;
#[deprecated(note = "use tower_apikey::record::MAX_RECENT_IPS")]
#[doc(hidden)]
pub const MAX_RECENT_IPS: usize = record::MAX_RECENT_IPS;
#[deprecated(note = "use tower_apikey::store::MAX_SEARCH_CHARS")]
#[doc(hidden)]
pub const MAX_SEARCH_CHARS: usize = store::MAX_SEARCH_CHARS;
#[cfg(feature = "test-util")]
#[deprecated(note = "use tower_apikey::testing::ManualClock")]
#[doc(hidden)]
pub type ManualClock = testing::ManualClock;
#[deprecated(note = "use tower_apikey::limits::InMemoryLimitBackend")]
#[doc(hidden)]
pub type MemoryLimitBackend = limits::InMemoryLimitBackend;
#[deprecated(note = "use tower_apikey::record::KeyNameError")]
#[doc(hidden)]
pub type NameError = record::KeyNameError;
#[deprecated(note = "use tower_apikey::event::NewEvent")]
#[doc(hidden)]
pub type NewEvent = event::NewEvent;
#[deprecated(note = "use tower_apikey::store::OldKeyEnd")]
#[doc(hidden)]
pub type OldKeyEnd = store::OldKeyEnd;
#[deprecated(note = "use tower_apikey::manager::OldKeyPlan")]
#[doc(hidden)]
pub type OldKeyPlan = manager::OldKeyPlan;
#[deprecated(note = "use tower_apikey::store::Page")]
#[doc(hidden)]
pub type Page<T> = store::Page<T>;
#[deprecated(note = "use tower_apikey::store::PageCursor")]
#[doc(hidden)]
pub type PageCursor = store::PageCursor;
#[deprecated(note = "use tower_apikey::store::PageError")]
#[doc(hidden)]
pub type PageError = store::PageError;
#[deprecated(note = "use tower_apikey::store::PageLimit")]
#[doc(hidden)]
pub type PageLimit = store::PageLimit;
#[deprecated(note = "use tower_apikey::key::PrefixError")]
#[doc(hidden)]
pub type PrefixError = key::PrefixError;
#[deprecated(note = "use tower_apikey::key::PrefixError")]
#[doc(hidden)]
#[allow(non_upper_case_globals)]
pub const PrefixError: key::PrefixError = key::PrefixError;
#[deprecated(note = "use tower_apikey::record::Quota")]
#[doc(hidden)]
pub type Quota = record::Quota;
#[deprecated(note = "use tower_apikey::record::QuotaPeriod")]
#[doc(hidden)]
pub type QuotaPeriod = record::QuotaPeriod;
#[deprecated(note = "use tower_apikey::record::RateLimit")]
#[doc(hidden)]
pub type RateLimit = record::RateLimit;
#[deprecated(note = "use tower_apikey::record::RecentIps")]
#[doc(hidden)]
pub type RecentIps = record::RecentIps;
#[deprecated(note = "use tower_apikey::middleware::Rejection")]
#[doc(hidden)]
pub type Rejection = middleware::Rejection;
#[deprecated(note = "use tower_apikey::middleware::RejectionKind")]
#[doc(hidden)]
pub type RejectionKind = middleware::RejectionKind;
#[deprecated(note = "use tower_apikey::middleware::RequireScopes")]
#[doc(hidden)]
pub type RequireScopes<S> = middleware::RequireScopes<S>;
#[deprecated(note = "use tower_apikey::middleware::RequireScopesFuture")]
#[doc(hidden)]
pub type RequireScopesFuture<F, B> = middleware::RequireScopesFuture<F, B>;
#[deprecated(note = "use tower_apikey::middleware::ResponseBody")]
#[doc(hidden)]
pub type ResponseBody<B> = middleware::ResponseBody<B>;
#[deprecated(note = "use tower_apikey::middleware::ResponseFuture")]
#[doc(hidden)]
pub type ResponseFuture<S, ReqBody, ResBody, R = middleware::DefaultRejection> =
    middleware::ResponseFuture<S, ReqBody, ResBody, R>;
#[deprecated(note = "use tower_apikey::manager::Restriction")]
#[doc(hidden)]
pub type Restriction = manager::Restriction;
#[deprecated(note = "use tower_apikey::store::Revocation")]
#[doc(hidden)]
pub type Revocation = store::Revocation;
#[deprecated(note = "use tower_apikey::store::RotateOutcome")]
#[doc(hidden)]
pub type RotateOutcome = store::RotateOutcome;
#[deprecated(note = "use tower_apikey::usage::RotationEnd")]
#[doc(hidden)]
pub type RotationEnd = usage::RotationEnd;
#[deprecated(note = "use tower_apikey::manager::ScopeCatalogue")]
#[doc(hidden)]
pub type ScopeCatalogue = manager::ScopeCatalogue;
#[deprecated(note = "use tower_apikey::scope::ScopeError")]
#[doc(hidden)]
pub type ScopeError = scope::ScopeError;
#[deprecated(note = "use tower_apikey::limits::SharedLimits")]
#[doc(hidden)]
pub type SharedLimits = limits::SharedLimits;
#[deprecated(note = "use tower_apikey::limits::SharedLimitsStats")]
#[doc(hidden)]
pub type SharedLimitsStats = limits::SharedLimitsStats;
#[deprecated(note = "use tower_apikey::event::TracingEventSink")]
#[doc(hidden)]
pub type TracingEventSink = event::TracingEventSink;
#[deprecated(note = "use tower_apikey::event::TracingEventSink")]
#[doc(hidden)]
#[allow(non_upper_case_globals)]
pub const TracingEventSink: event::TracingEventSink = event::TracingEventSink;
#[deprecated(note = "use tower_apikey::usage::TracingUsageSink")]
#[doc(hidden)]
pub type TracingSink = usage::TracingUsageSink;
#[deprecated(note = "use tower_apikey::usage::TracingUsageSink")]
#[doc(hidden)]
#[allow(non_upper_case_globals)]
pub const TracingSink: usage::TracingUsageSink = usage::TracingUsageSink;
#[deprecated(note = "use tower_apikey::client_addr::TrustedProxies")]
#[doc(hidden)]
pub type TrustedProxies = client_addr::TrustedProxies;
#[deprecated(note = "use tower_apikey::client_addr::TrustedProxiesError")]
#[doc(hidden)]
pub type TrustedProxiesError = client_addr::TrustedProxiesError;
#[deprecated(note = "use tower_apikey::usage::UsageBatch")]
#[doc(hidden)]
pub type UsageBatch<'a> = usage::UsageBatch<'a>;
#[deprecated(note = "use tower_apikey::usage::UsageBatchId")]
#[doc(hidden)]
pub type UsageBatchId = usage::UsageBatchId;
#[deprecated(note = "use tower_apikey::usage::UsageDay")]
#[doc(hidden)]
pub type UsageDay = usage::UsageDay;
#[deprecated(note = "use tower_apikey::usage::UsageSinkError")]
#[doc(hidden)]
pub type UsageError = usage::UsageSinkError;
#[deprecated(note = "use tower_apikey::usage::UsageOutcome")]
#[doc(hidden)]
pub type UsageOutcome = usage::UsageOutcome;
#[deprecated(note = "use tower_apikey::usage::UsageTrackerStats")]
#[doc(hidden)]
pub type UsageStats = usage::UsageTrackerStats;
#[deprecated(note = "use tower_apikey::usage::UsageTracker")]
#[doc(hidden)]
pub type UsageTracker = usage::UsageTracker;
#[deprecated(note = "use tower_apikey::usage::UsageTrackerBuilder")]
#[doc(hidden)]
pub type UsageTrackerBuilder = usage::UsageTrackerBuilder;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
