//! The crate's shared error types: [`StoreError`], which every store trait (keys,
//! events, usage counts) answers with, and [`BoxError`], the backend error behind
//! [`StoreError::Unavailable`] and
//! [`UsageSinkError::Sink`](crate::usage::UsageSinkError::Sink). In a module of their own
//! so that stores, events and usage tracking, which all carry them, do not depend on
//! each other for them.

use std::error::Error as StdError;
use std::time::Duration;

use crate::key::KeyId;

/// An error from a backend (a database driver, an HTTP client), boxed.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a store could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend failed: connection refused, pool exhausted, query error. Requests that
    /// needed the store are refused with 503 and this error is logged.
    #[error("the key store is unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// The store did not answer in time.
    #[error("the key store did not answer within {0:?}")]
    Timeout(Duration),
    /// A record with this id already exists (ids are random, so this is a bug or a replay).
    #[error("a key with id {0} already exists")]
    Duplicate(KeyId),
    /// The backend holds data that is not a valid record, such as a malformed scope.
    #[error("the key store holds a record it cannot read: {0}")]
    Corrupt(String),
    /// The lookup was shed before reaching the backend: as many distinct lookups as a
    /// `CachedKeyStore` (feature `cache`) allows were already in flight, or its
    /// id filter is stale and this second's budget of unfiltered lookups is spent.
    /// Requests get 503 with `Retry-After` at once instead of queueing behind a flood.
    #[error("too many key lookups are in flight; try again shortly")]
    Overloaded,
    /// The id was ruled out without asking the backend: a filter in front of it (a
    /// `CachedKeyStore`'s id filter, feature `cache`) knows no key with this id.
    /// The middleware answers it as an unknown id (401 `invalid_token`), but, since no
    /// store was asked and the filter may not yet have heard of a key created a moment
    /// ago elsewhere, it is not a failed proof: the
    /// [`FailureThrottle`](crate::middleware::FailureThrottle) does not count it.
    #[error("no key with this id is known here (ruled out without asking the key store)")]
    RuledOut,
    /// The store does not implement this operation (it names the method): a store
    /// whose `…_with_events` methods keep their defaults, asked to keep a change's
    /// events (see [`store`](crate::store#a-store-of-your-own-step-by-step), step 5).
    /// Implement the method.
    #[error("this key store does not implement {0}; implement it to use this operation")]
    Unsupported(&'static str),
}

impl StoreError {
    /// Wraps a backend error as [`StoreError::Unavailable`].
    pub fn unavailable(error: impl Into<BoxError>) -> Self {
        Self::Unavailable(error.into())
    }
}
