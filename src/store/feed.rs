//! [`KeyIdFeed`]: a store's ids and their changes, for the caches in front of it
//! (feature `cache`).
//!
//! A [`CachedKeyStore`](crate::store::cached::CachedKeyStore) alone cannot tell a forged id from a key
//! it has not seen yet, nor know that a record it holds was revoked elsewhere. A store
//! that can say which ids exist and what changes implements this trait, and a
//! [`KeyFeedListener`] keeps the caches in step (its [`FeedHealth`] says whether it
//! follows the feed):
//!
//! - the snapshot fills the cache's id filter, so ids that do not exist are refused
//!   without a query;
//! - [`KeyChange::Created`] adds an id to the filter, once
//!   [`existing`](KeyIdFeed::existing) confirmed it;
//! - [`KeyChange::Changed`] evicts an id (revoked, ended early), so the next request
//!   reads the new record.
//!
//! `tower_apikey_postgres::PgKeyStore` implements it with LISTEN/NOTIFY.

// The trait in a child of its own, so that the listener, which follows it, and this
// module, which shows both, do not import each other.
mod key_id_feed;

pub use super::feed_listener::{FeedHealth, KeyFeedListener};
pub use key_id_feed::{KeyChange, KeyIdFeed, KeyIdSubscription};
