//! [`CachedKeyStore`]: a bounded cache in front of any [`KeyStore`] (feature `cache`).
//!
//! A request whose key id is in the cache is answered from memory, synchronously,
//! through [`KeyStore::lookup_ready`]: the middleware then needs no boxed future and
//! the database sees no query. A miss asks the wrapped store once, however many
//! requests for that id arrive meanwhile, and remembers the answer:
//!
//! - a found record (revoked and expired ones too) for the **hit TTL**, which depends on
//!   whether a [`KeyFeedListener`](crate::store::feed::KeyFeedListener) keeps the cache in step:
//!   - while its feed is up, every revocation arrives as a notification and evicts at
//!     once, so the TTL only bounds a lost notification: [`DEFAULT_HIT_TTL`], 10 minutes;
//!   - while its feed is down (the listener reconnecting), [`DEFAULT_STALE_HIT_TTL`],
//!     1 s, so that a revocation made elsewhere is still seen within about a second;
//!   - with no listener at all, [`DEFAULT_UNFOLLOWED_HIT_TTL`], 30 s;
//!
//!   every change between these states empties the cache, so an entry never outlives
//!   the TTL of the state it is served in;
//! - "no such key" for the shorter **miss TTL** (default 5 s);
//! - an error never: the next request asks the store again.
//!
//! # Under a flood of forged keys
//!
//! Key ids are public and checksums can be computed offline, so an attacker can send
//! any number of well-formed keys with fresh ids. The cache holds against that in three
//! ways:
//!
//! - **An id filter** ([`KeyFeedListener`](crate::store::feed::KeyFeedListener), fed by
//!   a [`KeyIdFeed`](crate::store::feed::KeyIdFeed) such as `PgKeyStore`) knows which
//!   ids exist. An id it says is absent gets [`StoreError::RuledOut`](crate::StoreError::RuledOut)
//!   without a query (after a wait of up to 20 ms for a notification while the feed is
//!   up, at most 256 at once), and is not put in the cache (which would otherwise fill
//!   with the flood); [`CachedKeyStoreBuilder::filter_passes_per_sec`] such ids a second
//!   still reach the store, so that a key created a moment ago elsewhere is never
//!   refused. Without a running listener there is no filter and every miss asks the
//!   store.
//! - **Distinct lookups in flight are capped** ([`CachedKeyStoreBuilder::max_loads`],
//!   default [`DEFAULT_MAX_LOADS`]). Past the cap a lookup fails at once with
//!   [`StoreError::Overloaded`] (503 with `Retry-After`) instead of queueing, so a flood
//!   that gets past the filter cannot hold the store's connections; cache hits never
//!   count against the cap.
//! - **A cancelled lookup leaves nothing behind.** A client that gives up, or the
//!   layer's lookup timeout, drops the lookup's future; the last caller to leave a load
//!   that has not finished removes it (a drop guard), so nothing accumulates.
//!
//! [`CachedKeyStore::stats`] shows all three.
//!
//! ```
//! use std::time::Duration;
//! use tower_apikey::{ApiKeyV2Layer, InMemoryKeyStore};
//! use tower_apikey::store::cached::CachedKeyStore;
//!
//! let store = CachedKeyStore::builder(InMemoryKeyStore::new())
//!     .max_entries(50_000)
//!     .hit_ttl(Duration::from_secs(600)) // while a listener follows the store
//!     .unfollowed_hit_ttl(Duration::from_secs(30)) // without one
//!     .miss_ttl(Duration::from_secs(5))
//!     .build();
//! // The layer takes the cache like any store; management through `store` (it is
//! // also a `KeyStoreAdmin` when the wrapped store is) evicts the ids it changes.
//! let layer = ApiKeyV2Layer::new(store.clone());
//! ```
//!
//! # Staleness
//!
//! A cached record is what the wrapped store said when it was read. Writes made through
//! this `CachedKeyStore` (revoke, rotate, insert) evict the ids they touch at once.
//! Writes made elsewhere (another instance) are seen when the entry expires, or earlier
//! if something calls [`CachedKeyStore::invalidate`]: with PostgreSQL, the
//! [`KeyFeedListener`](crate::store::feed::KeyFeedListener) does so for every revocation its feed
//! reports (with PostgreSQL: LISTEN/NOTIFY). The hit TTL
//! is therefore the bound on staleness when a notification is lost.
//!
//! # A lock-free map of answers, and an in-flight map
//!
//! Answers live in a lock-free map, each with a deadline on a coarse clock and a
//! reference bit for a second-chance sweep that keeps it within `max_entries`, so that
//! a hit costs about what a lookup in [`InMemoryKeyStore`](crate::InMemoryKeyStore)
//! does and answers synchronously, without a future (the map's own documentation says
//! why not a general-purpose cache, and how exact the TTLs are: to a few milliseconds).
//! Coalescing needs an `async` wait, so misses meet in a small map of in-flight loads
//! (a [`tokio::sync::OnceCell`] per id): the first caller runs the query, the others
//! await its answer, and if the first caller is cancelled the next one takes over. Only
//! misses touch that map, and each caller holds a ticket whose drop removes the load
//! when it was the last one waiting.
//!
//! [`KeyStore`]: crate::KeyStore
//! [`KeyStore::lookup_ready`]: crate::KeyStore::lookup_ready
//! [`StoreError::Overloaded`]: crate::StoreError::Overloaded

mod cache_map;
pub(crate) mod cached_key_store;
mod events;
mod listener;
mod usage;

use std::time::Duration;
/// How long a found record stays cached while a listener follows the store's feed
/// (10 minutes): revocations then evict at once, and this only bounds a lost
/// notification.
pub const DEFAULT_HIT_TTL: Duration = Duration::from_secs(600);
/// How long a found record stays cached while the listener's feed is down (1 s).
pub const DEFAULT_STALE_HIT_TTL: Duration = Duration::from_secs(1);
/// How long a found record stays cached when no listener runs (30 s).
pub const DEFAULT_UNFOLLOWED_HIT_TTL: Duration = Duration::from_secs(30);
/// How long "no such key" stays cached (5 s).
pub const DEFAULT_MISS_TTL: Duration = Duration::from_secs(5);
/// How many ids the cache holds at most (100 000); past that, answers not read lately
/// make room.
pub const DEFAULT_MAX_ENTRIES: u64 = 100_000;
/// How many distinct ids may be looked up in the wrapped store at once (32).
pub const DEFAULT_MAX_LOADS: usize = 32;
/// How many ids the id filter does not hold may still reach the wrapped store each
/// second (20), so that a key created on another instance a moment ago, or while the
/// feed was down, is not refused.
pub const DEFAULT_FILTER_PASSES: u32 = 20;
/// How long a key created through a cache whose feed is up waits, at most, for the
/// feed to announce it back before its creation answers (250 ms; about a millisecond
/// normally), so that other instances following the same store already know it.
pub(crate) const ECHO_WAIT: Duration = Duration::from_millis(250);
/// How long a lookup of an id the filter rules out waits, while the feed is up, for a
/// notification to announce it (20 ms): a key used here at once after its creation
/// elsewhere may arrive before its notification.
pub(crate) const ANNOUNCE_WAIT: Duration = Duration::from_millis(20);
/// How many such lookups wait at once (256); past that, ruled-out ids are refused at
/// once, so that a flood of forged ids holds no more than this many requests.
pub(crate) const MAX_ANNOUNCE_WAITERS: usize = 256;

pub(crate) use cached_key_store::*;
pub use cached_key_store::{
    CachedKeyStore, CachedKeyStoreBuilder, CachedKeyStoreStats, FilterState,
};
