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
//! The traits and [`StoreError`] are at the crate root; this module holds what their
//! methods take and return: a listing's [`KeyQuery`] (filters [`KeyFilter`], order
//! [`KeySort`], position [`KeyPosition`]) and its [`Page`] ([`PageLimit`],
//! [`PageCursor`]), a [`KeyUpdate`], a [`Revocation`], a rotation's [`OldKeyEnd`] and
//! [`RotateOutcome`], and [`BoxError`]. With the feature `cache`, `store::cached` is a
//! cache in front of any store and `store::feed` keeps it in step with its store.
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
//! # How the store API grows
//!
//! The next releases add record fields (actors, limits, addresses), events, usage
//! counts, paged queries and shared limit counters. A user's own store must keep
//! compiling through all of that, so the API is shaped for it now:
//!
//! - **One required method stays one.** [`KeyStore::lookup`] is all a read-only store
//!   writes; [`KeyStore::lookup_ready`] has a default.
//! - **Records are built, not written out.** [`KeyRecord`] has private fields, a
//!   constructor and `with_…` setters, so a new field is a new setter with a default.
//! - **What users match or build is `#[non_exhaustive]`**: [`StoreError`],
//!   [`OldKeyEnd`], [`RotateOutcome`], [`KeyUsage`](crate::usage::KeyUsage) (built with
//!   [`KeyUsage::new`](crate::usage::KeyUsage::new)), `KeyChange` (feature `cache`),
//!   [`KeyState`](crate::record::KeyState). A store that meets a variant it does not know
//!   answers with an error rather than guess.
//! - **New capabilities are optional traits or default methods**, never new required
//!   methods: `KeyIdFeed` (feature `cache`: the id filter and push invalidation) is
//!   an optional trait; recording who revoked a key is
//!   [`KeyStoreAdmin::revoke_by`], a default method over `revoke`; paged listing is
//!   [`KeyStoreAdmin::list_page`], a default method over `list`; changing a key's name
//!   and limits is [`KeyStoreAdmin::update`], whose default refuses with
//!   [`StoreError::Unsupported`] (there is nothing to build it from); storing a change
//!   together with its events is [`KeyStoreAdmin::insert_with_events`] and its
//!   siblings, whose defaults work without events and refuse (`Unsupported`) when asked
//!   to keep some, since no default could keep them in the same write; revoking a key
//!   with its heirs is [`KeyStoreAdmin::revoke_with_heirs`], whose default works over
//!   `get`, `list` and `revoke_by`. New capabilities come the same way, each with a
//!   default that works (for example, paging over [`KeyStoreAdmin::list`]) or as a trait
//!   of its own that only the stores that can offer it implement.
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
//! The conformance suite, `testing::conformance` (feature `test-util`), is the contract
//! of these traits as checks to run against your own store (times kept as given, one
//! successor per rotation, paging that visits every key once, …);
//! `store_conformance_tests!` turns them into one test each.
// Named, not linked: a link to a feature-gated module breaks `cargo doc` without it.
//!
//! # Failing closed
//!
//! A store that cannot answer returns a [`StoreError`]; the middleware then refuses the
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
pub use key_update::KeyUpdate;
pub use revocation::Revocation;
