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
//!   [`KeyStoreAdmin`] for management, [`InMemoryKeyStore`] built in; a cache and a
//!   PostgreSQL store for many instances behind features.
//! - **[Last-used tracking](usage)**: the [manager's layer](KeyManager::layer) records
//!   each proven use without waiting, and its [background](KeyManager::background)
//!   writes each key's latest use to the store (a [`UsageSink`]) about every 5 minutes.
//! - **[Throttling](FailureThrottle)**: optionally, a client address that keeps sending
//!   wrong keys gets 429 before any lookup, in fixed memory; the
//!   [client address](client_addr) is the connection's peer or what trusted proxies
//!   forwarded.
//! - **[Key management](KeyManager)**: create (shown once, at most 365 days), list,
//!   revoke, rotate with an optional overlap or until the new key's first use, find
//!   expiring and dormant keys; over HTTP
//!   with the `admin` feature's router.
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
//! | `admin` | `admin::router`: key management over HTTP (axum, JSON), guarded by scope `admin:keys`, with a browser panel and an OpenAPI 3.1 document (`utoipa`) |
//! | `test-util` | the store conformance suite, to run against your own [`KeyStore`] |
//! | `cache` | `CachedKeyStore`: a bounded cache with hit and miss TTLs over any [`KeyStore`] |
//! | `client` | `client::SelfRotateLayer`: an integration's HTTP client sends its key and rotates it itself before it expires |
//! | `postgres` | `PgKeyStore` on the application's `sqlx` pool, a `KeyIdFeed` for `KeyFeedListener` (includes `cache`) |
//! | `metrics` | `metrics`: outcome counts, lookup latency, cache, usage-flush, event-sink and feed-listener health through the `metrics` facade |
//!
//! # Where names live
//!
//! One rule: **import from the root.** Every type and trait an application or a store
//! names is at the crate root (`tower_apikey::ApiKeyV2Layer`, `tower_apikey::KeyStore`,
//! …), as axum-login does, and only there: each public item has one path. The public
//! modules are where their subject is documented, and hold only the names that are not
//! at the root (the defaults and limits of one subject, one integration's helpers), so
//! that the root stays small:
//!
//! | module | documents, and holds |
//! |---|---|
//! | [`key`] | the key format, checkable offline |
//! | [`scope`] | the scope grammar and what grants what |
//! | [`store`] | the store traits, how they grow; `store::cached` (its defaults), `store::postgres`, the feed |
//! | [`usage`] | last-used tracking |
//! | [`limits`] | per-key limits shared by many instances; their defaults (`DEFAULT_LEASE_TTL`, `DEFAULT_BATCH_SPAN`, `DEFAULT_EXPECTED_INSTANCES`) |
//! | [`event`] | the audit trail: what each event means, how events are kept and forwarded; its defaults (`DEFAULT_RETENTION`, `MIN_RETENTION`, `EXPIRING_DAYS`, `DEFAULT_EVENT_QUEUE`, `DEFAULT_EXPIRING_EVERY`) |
//! | [`middleware`] | a request's path through the layer, one row per refusal |
//! | [`client_addr`] | the client's address, and trusting proxies |
//! | [`cors`] | exposing `ApiKey-Expires` to browsers on other origins |
//! | `admin` | key management over HTTP (feature `admin`) |
//! | `client` | the integration's side: sending a key and rotating it (feature `client`) |
//! | `metrics` | the metrics' names and `describe` (feature `metrics`) |
//! | `test_util` | test aids (feature `test-util`) |
//!
//! Defaults and limits are public constants beside what they configure, each named in
//! the documentation of the setting it is the default of:
//!
//! | constant | value |
//! |---|---|
//! | [`MAX_LIFETIME`] | 365 days, the longest a key lives |
//! | [`MAX_NAME_CHARS`] | the longest key name |
//! | [`middleware::DEFAULT_LOOKUP_TIMEOUT`] | 3 s for one store lookup, then 503 |
//! | [`middleware::DEFAULT_EXPIRY_WARNING`] | 30 days of `ApiKey-Expires` before a key's end |
//! | `store::cached::DEFAULT_HIT_TTL`, `DEFAULT_STALE_HIT_TTL`, `DEFAULT_UNFOLLOWED_HIT_TTL`, `DEFAULT_MISS_TTL`, `DEFAULT_MAX_ENTRIES`, `DEFAULT_MAX_LOADS`, `DEFAULT_FILTER_PASSES` | the cache (feature `cache`) |
//! | `store::postgres::DEFAULT_HEARTBEAT_EVERY`, `DEFAULT_HEARTBEAT_TIMEOUT` | the LISTEN connection's heartbeat (feature `postgres`) |
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
mod manager;
// Public with the feature (names and `describe`); without it, only the crate's no-op
// call sites, so that a build without `metrics` has neither the code nor the dependency.
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
#[cfg(not(feature = "metrics"))]
mod metrics;
pub mod middleware;
mod page;
mod problem;
mod record;
pub mod scope;
pub mod store;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod test_util;
pub mod usage;

pub use client_addr::addr::ClientAddr;
pub use client_addr::trusted_proxies::{TrustedProxies, TrustedProxiesError};
#[cfg(any(test, feature = "test-util"))]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub use clock::ManualClock;
pub use clock::{Clock, SystemClock};
pub use event::key_event::{
    EventDetail, EventId, EventQuery, EventSink, EventSinkError, EventStore, EventType, KeyEvent,
    NewEvent,
};
pub use event::log::{EventLog, EventLogBuilder, EventLogStats};
pub use event::tracing_sink::TracingEventSink;
pub use header::HeaderError;
pub use key::format::{
    KeyDigest, KeyFormatError, KeyId, KeyIdError, KeyPrefix, PlaintextKey, PrefixError,
};
pub use limits::backend::{Exhausted, InstanceId, Lease, LeaseRequest, LimitBackend};
pub use limits::ledger::{LedgerOutcome, LedgerState};
pub use limits::memory::MemoryLimitBackend;
pub use limits::shared_limits::{SharedLimits, SharedLimitsStats};
pub use manager::{
    ActingAs, Actor, Background, CatalogueEntry, CatalogueError, ChangeKind, CreatedKey,
    DEFAULT_FIRST_USE_GRACE, ExpiryError, KeyManager, KeyManagerBuilder, Loosened,
    MAX_CATALOGUE_SCOPES, MAX_DESCRIPTION_CHARS, MAX_FIRST_USE_GRACE, MAX_LIFETIME, ManagerError,
    NewKey, OldKeyPlan, Restriction, ScopeCatalogue, ShutdownError,
};
pub use middleware::future::ResponseFuture;
pub use middleware::layer::ApiKeyV2Layer;
pub use middleware::rejection::{DefaultRejection, OnRejection, Rejection, RejectionKind};
pub use middleware::require_scopes::{RequireScopes, RequireScopesFuture, RequireScopesLayer};
pub use middleware::response_body::ResponseBody;
pub use middleware::service::ApiKeyV2Service;
pub use middleware::throttle::FailureThrottle;
pub use page::{
    DEFAULT_PAGE_LIMIT, MAX_CURSOR_CHARS, MAX_PAGE_LIMIT, Page, PageCursor, PageError, PageLimit,
};
pub use record::ApiKeyIdentity;
pub use record::{
    ActorName, ActorNameError, KeyName, KeyRecord, KeyState, MAX_ACTOR_CHARS, MAX_NAME_CHARS,
    NameError,
};
pub use record::{
    AllowedIps, LimitError, MAX_ALLOWED_IPS, MAX_RATE_WINDOW_SECS, Quota, QuotaPeriod, RateLimit,
};
pub use record::{MAX_RECENT_IPS, RecentIps};
pub use scope::scopes::{Scope, ScopeError, Scopes};
#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
pub use store::cached::cached_key_store::{
    CacheStats, CachedKeyStore, CachedKeyStoreBuilder, FilterState,
};
#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
pub use store::feed::{KeyChange, KeyIdFeed, KeyIdSubscription};
#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
pub use store::feed_listener::{FeedHealth, KeyFeedListener};
pub use store::key_query::{
    DORMANT_AFTER_NEVER_USED, DORMANT_AFTER_UNUSED, EXPIRING_WITHIN, KeyFilter, KeyPosition,
    KeyQuery, KeyQueryError, KeySort, KeySortField, MAX_SEARCH_CHARS,
};
pub use store::key_store::{KeyStore, KeyStoreAdmin, OldKeyEnd, RotateOutcome, StoreError};
pub use store::key_update::KeyUpdate;
pub use store::memory::InMemoryKeyStore;
pub use store::revocation::Revocation;
pub use usage::batch::{RotationEnd, UsageBatch, UsageBatchId, UsageOutcome};
pub use usage::counts::UsageDay;
pub use usage::sink::{KeyUsage, MAX_DAYS_PER_USAGE, UsageError, UsageSink};
pub use usage::tracing_sink::TracingSink;
pub use usage::tracker::{UsageStats, UsageTracker, UsageTrackerBuilder};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
