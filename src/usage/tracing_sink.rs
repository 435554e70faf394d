//! A sink that writes last-used times to the `tracing` log.

use async_trait::async_trait;

use crate::usage::{KeyUsage, UsageSink, UsageSinkError};

/// Logs each key's last-used time at `INFO` (target `tower_apikey::usage`), for
/// deployments that collect usage from logs or want to watch the tracker work.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingUsageSink;

#[async_trait]
impl UsageSink for TracingUsageSink {
    async fn record_usage(&self, batch: &[KeyUsage]) -> Result<(), UsageSinkError> {
        for usage in batch {
            tracing::info!(
                target: "tower_apikey::usage",
                key_id = %usage.key_id,
                last_used_at = %httpdate::fmt_http_date(usage.last_used_at),
                "API key used"
            );
        }
        Ok(())
    }
}
