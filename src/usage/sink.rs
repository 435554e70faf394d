//! [`UsageSink`] and what it receives, as [`usage`](super) documents.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::BoxError;
use crate::usage::batch::{UsageBatch, UsageOutcome};
use crate::usage::key_usage::KeyUsage;
use crate::usage::usage_counts::UsageCounts;

/// Why a sink could not take a batch. The tracker keeps the batch and retries it,
/// merged with newer uses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsageSinkError {
    /// The sink's backend failed.
    #[error("the usage sink failed: {0}")]
    Sink(#[source] BoxError),
    /// The sink did not answer in time.
    #[error("the usage sink did not answer within {0:?}")]
    Timeout(Duration),
}

impl UsageSinkError {
    /// Wraps a backend error as [`UsageSinkError::Sink`].
    pub fn sink(error: impl Into<BoxError>) -> Self {
        Self::Sink(error.into())
    }
}

/// Where last-used times go: a database, a log, a metrics system.
///
/// Implementations must keep times monotonic per key (`GREATEST(old, new)` in SQL): a
/// retried batch may arrive after a newer one.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a `UsageSink`: a key manager must write last-used times somewhere",
    note = "implement `UsageSink` for it, or name where the times go: `KeyManager::builder(store).usage_sink(sink).build()`"
)]
#[async_trait]
pub trait UsageSink: fmt::Debug + Send + Sync + 'static {
    /// Records a batch: each key at most once.
    async fn record_usage(&self, batch: &[KeyUsage]) -> Result<(), UsageSinkError>;

    /// Records a batch as [`record_usage`](Self::record_usage) does, given its id (the
    /// same for a retry of a failed flush, so that counts are applied once), and
    /// reports what changed: the keys whose first use this write stored. The tracker
    /// calls this method; it records `first_used` events from the report.
    ///
    /// The default calls `record_usage` and reports nothing, so a sink written before
    /// this method keeps working (without `first_used` events). Override it to report
    /// first uses and to make daily counts idempotent.
    async fn record_usage_batch(
        &self,
        batch: &UsageBatch<'_>,
    ) -> Result<UsageOutcome, UsageSinkError> {
        self.record_usage(batch.usages()).await?;
        Ok(UsageOutcome::default())
    }

    /// The daily request counts this sink keeps, if it keeps them where they can be
    /// read back and pruned ([`UsageCounts`]). The manager's
    /// [background](crate::KeyManager::background) prunes them with its events, under
    /// the event log's retention.
    ///
    /// The default is `None`: a sink that only forwards uses (a log, a metrics system)
    /// keeps no counts. A store that implements [`UsageCounts`] answers `Some(self)`.
    fn counts(&self) -> Option<&dyn UsageCounts> {
        None
    }
}

#[async_trait]
impl<T: UsageSink + ?Sized> UsageSink for std::sync::Arc<T> {
    async fn record_usage(&self, batch: &[KeyUsage]) -> Result<(), UsageSinkError> {
        (**self).record_usage(batch).await
    }

    async fn record_usage_batch(
        &self,
        batch: &UsageBatch<'_>,
    ) -> Result<UsageOutcome, UsageSinkError> {
        (**self).record_usage_batch(batch).await
    }

    fn counts(&self) -> Option<&dyn UsageCounts> {
        (**self).counts()
    }
}
