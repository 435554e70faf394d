//! Key stores: where key records live.
//!
//! Two traits split what the middleware needs from what key management needs, so a
//! read-only integration with an existing database implements one method:
//!
//! - [`KeyStore`]: look a record up by [`KeyId`]. This is all the middleware calls.
//! - [`KeyStoreAdmin`]: insert, list, revoke and rotate, for [`KeyManager`](crate::KeyManager).
//!
//! A store never sees a plaintext key, only [`KeyRecord`]s holding its digest.
//!
//! The two traits and [`StoreError`](crate::StoreError) are at the crate root; this
//! module holds the optional [`KeyStoreUpdate`] and what the traits' methods take and
//! return: a listing's [`KeyQuery`] (filters [`KeyFilter`], order [`KeySort`], position
//! [`KeyPosition`]) and its [`Page`] ([`PageLimit`], [`PageCursor`]), a [`KeyUpdate`], a
//! [`Revocation`], a rotation's [`OldKeyEnd`] and [`RotateOutcome`], and [`BoxError`].
//! With the feature `cache`, `store::cached` is a cache in front of any store and
//! `store::feed` keeps it in step with its store.
//!
//! ```
//! use async_trait::async_trait;
//! use tower_apikey::{KeyId, KeyRecord, KeyStore, StoreError};
//!
//! /// A read-only store over an application's own table.
//! #[derive(Debug)]
//! struct MyStore;
//!
//! #[async_trait]
//! impl KeyStore for MyStore {
//!     async fn lookup(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
//!         // SELECT … WHERE id = $1, then KeyRecord::new(…)
//!         Ok(None)
//!     }
//! }
//! ```
//!
//! # A store of your own, step by step
//!
//! Each step is a trait, each proved by a conformance suite (feature `test-util`, one
//! `#[tokio::test]` per check: `tower_apikey::testing::<suite>!(async { fresh_store().await })`).
//! Stop after any step: what the later steps enable is then refused at compile time,
//! never at run time, except where a row says otherwise.
//!
//! | step | implement | it enables | proved by |
//! |---|---|---|---|
//! | 1 | [`KeyStore`] (`lookup`; `lookup_ready` for a store in memory) | the middleware | `store_conformance_tests!` (its lookups) |
//! | 2 | [`KeyStoreAdmin`] (`insert`, `list`, `revoke`, `rotate`; `get`, `list_page`, `live_heirs` have defaults to override) | [`KeyManager`](crate::KeyManager): create, list, revoke, rotate | `store_conformance_tests!` |
//! | 3 | [`UsageSink`](crate::UsageSink) (`record_usage`, then `record_usage_batch` to report first uses) | last-used times, `until_first_use` rotation; without it, name a sink: `KeyManagerBuilder::usage_sink` | `rotation_conformance_tests!` |
//! | 4 | [`KeyStoreUpdate`] (`update`) | [`KeyManager::update`](crate::KeyManager::update), and the admin router, whose `PATCH /keys/{id}` needs it | `update_conformance_tests!` |
//! | 5 | [`EventStore`](crate::event::EventStore), and the `…_with_events` methods and `revoke_with_heirs` of steps 2 and 4 | the audit trail ([`EventLog`](crate::event::EventLog)); until they are overridden, a change asked to keep events is refused at run time (`StoreError::Unsupported`, 501), since no default can keep them in the same write | `event_store_conformance_tests!` |
//! | 6 | [`UsageCounts`](crate::usage::UsageCounts), answering [`UsageSink::counts`](crate::UsageSink::counts) with `Some(self)` | requests per day ([`KeyManager::daily_requests`](crate::KeyManager::daily_requests), `GET /keys/{id}/usage`), pruned with the events | `usage_conformance_tests!` |
//! | 7 | `KeyIdFeed` (feature `cache`) | a `CachedKeyStore`'s id filter and push invalidation across instances | the feed's tests in `tower-apikey-postgres` show the way; no suite yet |
//! | — | `LimitBackend` (in [`limits`](crate::limits)), apart from the key traits | limits shared across instances | `limit_backend_conformance_tests!` |
//!
//! # How the store API grows
//!
//! A user's own store must keep compiling as records gain fields and stores gain
//! capabilities, so the API is shaped for it:
//!
//! - **One required method stays one.** [`KeyStore::lookup`] is all a read-only store
//!   writes; [`KeyStore::lookup_ready`] has a default.
//! - **Records are built, not written out.** [`KeyRecord`] has private fields, a
//!   constructor and `with_…` setters, so a new field is a new setter with a default.
//! - **What users match or build is `#[non_exhaustive]`**: [`StoreError`](crate::StoreError),
//!   [`OldKeyEnd`], [`RotateOutcome`], [`KeyUsage`](crate::usage::KeyUsage) (built with
//!   [`KeyUsage::new`](crate::usage::KeyUsage::new)), `KeyChange` (feature `cache`),
//!   [`KeyState`](crate::record::KeyState). A store that meets a variant it does not know
//!   answers with an error rather than guess.
//! - **A new capability is a trait of its own** that only the stores that can offer it
//!   implement, and what needs it says so in its bounds ([`KeyStoreUpdate`],
//!   [`EventStore`](crate::event::EventStore), [`UsageCounts`](crate::usage::UsageCounts),
//!   `KeyIdFeed`); **or a default method that works** over the required ones (paging
//!   over [`list`](KeyStoreAdmin::list), [`live_heirs`](KeyStoreAdmin::live_heirs) over
//!   it too). Never a default that fails at run time, except the `…_with_events`
//!   methods, which cannot be built from anything else and refuse only when asked to
//!   keep events.
//!
//! # No change without its event
//!
//! A key change and the events that record it are stored together (DESIGN §10): the
//! [`KeyManager`](crate::KeyManager) hands the events to the `…_with_events` methods
//! and [`KeyStoreAdmin::revoke_with_heirs`], and the store writes both in one
//! transaction (PostgreSQL) or under one lock (memory), so that neither a failure nor a
//! caller giving up halfway can keep one without the other.
//!
//! # Conformance
//!
//! The conformance suites, `testing::conformance` (feature `test-util`), are the
//! contract of these traits as checks to run against your own store (times kept as
//! given, one successor per rotation, paging that visits every key once, …); the
//! `…_conformance_tests!` macros of the table above turn each into one test per check.
// Named, not linked: a link to a feature-gated module breaks `cargo doc` without it.
//!
//! # Failing closed
//!
//! A store that cannot answer returns a [`StoreError`](crate::StoreError); the middleware then refuses the
//! request with 503. It must never turn an error into `Ok(None)`, which would report a
//! valid key as unknown (401) and send its owner chasing the wrong problem.
//!
//! [`KeyId`]: crate::KeyId
//! [`KeyRecord`]: crate::KeyRecord

#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
pub mod cached;
#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
pub mod feed;
#[cfg(feature = "cache")]
pub(crate) mod feed_listener;
#[cfg(feature = "cache")]
pub(crate) mod id_filter;
pub(crate) mod key_query;
pub(crate) mod key_store;
pub(crate) mod key_store_update;
mod key_update;
pub(crate) mod memory;
pub(crate) mod revocation;

pub use crate::error::BoxError;
pub use crate::page::{
    DEFAULT_PAGE_LIMIT, MAX_CURSOR_CHARS, MAX_PAGE_LIMIT, Page, PageCursor, PageError, PageLimit,
};
pub use key_query::{
    DORMANT_AFTER_NEVER_USED, DORMANT_AFTER_UNUSED, EXPIRING_WITHIN, KeyFilter, KeyPosition,
    KeyQuery, KeyQueryError, KeySort, KeySortField, MAX_SEARCH_CHARS,
};
// `KeyStore`, `KeyStoreAdmin` and `StoreError` are named from the crate root; the
// crate's own code imports them from here.
pub(crate) use key_store::*;
pub use key_store::{OldKeyEnd, RotateOutcome};
pub use key_store_update::KeyStoreUpdate;
pub use key_update::KeyUpdate;
pub use revocation::Revocation;
