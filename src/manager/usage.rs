//! A key's requests per day, as the manager's usage sink counted them.

use crate::error::StoreError;
use crate::key::KeyId;
use crate::manager::KeyManager;
use crate::store::KeyStoreAdmin;
use crate::usage::usage_counts::{every_day, last_days, requests_per_day};
use crate::usage::{UsageCounts, UsageDay};

impl<S: KeyStoreAdmin> KeyManager<S> {
    /// The daily request counts this manager's usage sink keeps, where they can be read
    /// back ([`UsageSink::counts`](crate::UsageSink::counts)): the store's, unless
    /// [`KeyManagerBuilder::usage_sink`](crate::KeyManagerBuilder::usage_sink) named a
    /// sink that keeps none. The [background](Self::background) prunes them with the
    /// events, under the event log's retention.
    pub fn usage_counts(&self) -> Option<&dyn UsageCounts> {
        self.usage_sink.counts()
    }

    /// The requests of `id` on each of the `days` UTC days up to and including today
    /// (this manager's clock), oldest first, days without requests as zero; all zero
    /// when the usage sink keeps no counts.
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn daily_requests(
        &self,
        id: &KeyId,
        days: u32,
    ) -> Result<Vec<(UsageDay, u64)>, StoreError> {
        let now = self.clock.now();
        match self.usage_counts() {
            Some(counts) => requests_per_day(counts, id, now, days).await,
            None => {
                let (from, to) = last_days(now, days);
                Ok(every_day(&[], from, to))
            }
        }
    }
}
