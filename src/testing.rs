//! Test aids (feature `test-util`), all in this one module: for an application's tests,
//! and for a store's author.
//!
//! - **Time:** [`ManualClock`], a [`Clock`](crate::Clock) that moves only when told, so
//!   that a test of expiry or last-used times never sleeps.
//! - **Keys that are well-formed but wrong:** [`with_wrong_secret`] and
//!   [`with_bad_checksum`], so that a test of a refusal reaches the check it means to
//!   test.
//! - **Stores that fail:** [`FailingStore`] (every lookup fails, as a database that is
//!   down: the layer answers 503) and [`HangingStore`] (no lookup ever answers: the
//!   layer's lookup timeout).
//! - **The conformance suites:** [`conformance`], the contract of the store traits as
//!   checks to run against your own store, and six macros that turn each suite into
//!   one `#[tokio::test]` per check:
//!
//! | macro | checks | for a store that implements |
//! |---|---|---|
//! | [`store_conformance_tests!`] | times kept as given, one successor per rotation, paging that visits every key once, … | [`KeyStoreAdmin`](crate::KeyStoreAdmin) |
//! | [`update_conformance_tests!`] | an update changes exactly what it names | [`KeyStoreUpdate`](crate::store::KeyStoreUpdate) |
//! | [`rotation_conformance_tests!`] | rotation until first use, written with the use | [`KeyStoreAdmin`](crate::KeyStoreAdmin) and [`UsageSink`](crate::UsageSink) |
//! | [`event_store_conformance_tests!`] | events stored with their change, paged newest first, pruned | [`EventStore`](crate::event::EventStore) too |
//! | [`usage_conformance_tests!`] | daily counts added once per batch, read back, pruned | [`UsageCounts`](crate::usage::UsageCounts) too |
//! | [`limit_backend_conformance_tests!`] | leases that never grant beyond a limit | [`LimitBackend`](crate::limits::LimitBackend) |
//!
//! ```
//! # #[cfg(any())] mod doc {
//! // In a store crate's `tests/conformance.rs`, with tokio's `macros` and `rt`:
//! tower_apikey::testing::store_conformance_tests!(async { MyStore::connect_to_a_fresh_schema().await });
//! # }
//! ```
//!
//! The six macros are also at the crate root, hidden there, because `#[macro_export]`
//! puts every exported macro at the root; their documented path is this module.

pub mod conformance;
mod forged_keys;
mod stores;

pub use crate::clock::manual::ManualClock;
#[doc(inline)]
pub use crate::{
    event_store_conformance_tests, limit_backend_conformance_tests, rotation_conformance_tests,
    store_conformance_tests, update_conformance_tests, usage_conformance_tests,
};
pub use forged_keys::{with_bad_checksum, with_wrong_secret};
pub use stores::{FailingStore, HangingStore};
