//! [`UsageSink`] and what it receives, as [`usage`](super) documents.

use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::error::BoxError;
use crate::key::KeyId;

/// One key's latest use, as a sink receives it.
///
/// `#[non_exhaustive]`: later releases add what the same debounce carries (daily
/// request counts, recent client addresses). Read the fields; build one with
/// [`KeyUsage::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyUsage {
    /// The key.
    pub key_id: KeyId,
    /// Its latest proven use. A sink must never move a stored time backwards.
    pub last_used_at: SystemTime,
}

impl KeyUsage {
    /// A use of `key_id` at `last_used_at`.
    pub fn new(key_id: KeyId, last_used_at: SystemTime) -> Self {
        Self {
            key_id,
            last_used_at,
        }
    }
}

/// Why a sink could not take a batch. The tracker keeps the batch and retries it,
/// merged with newer uses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// The sink's backend failed.
    #[error("the usage sink failed: {0}")]
    Sink(#[source] BoxError),
    /// The sink did not answer in time.
    #[error("the usage sink did not answer within {0:?}")]
    Timeout(Duration),
}

impl UsageError {
    /// Wraps a backend error as [`UsageError::Sink`].
    pub fn sink(error: impl Into<BoxError>) -> Self {
        Self::Sink(error.into())
    }
}

/// Where last-used times go: a database, a log, a metrics system.
///
/// Implementations must keep times monotonic per key (`GREATEST(old, new)` in SQL): a
/// retried batch may arrive after a newer one.
#[async_trait]
pub trait UsageSink: fmt::Debug + Send + Sync + 'static {
    /// Records a batch: each key at most once.
    async fn record_usage(&self, batch: &[KeyUsage]) -> Result<(), UsageError>;
}

#[async_trait]
impl<T: UsageSink + ?Sized> UsageSink for std::sync::Arc<T> {
    async fn record_usage(&self, batch: &[KeyUsage]) -> Result<(), UsageError> {
        (**self).record_usage(batch).await
    }
}
