//! [`KeyUsage`]: one key's latest use, requests and addresses, as a
//! [`UsageSink`](crate::UsageSink) receives it in a batch.

use std::time::SystemTime;

use crate::key::KeyId;
use crate::record::RecentIps;
use crate::usage::counts::UsageDay;

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
    /// Requests counted since the last batch, per UTC day; zero counts are unused.
    requests: [(UsageDay, u64); MAX_DAYS_PER_USAGE],
    /// Client addresses seen since the last batch, newest first.
    recent_ips: RecentIps,
}

/// The most UTC days one [`KeyUsage`] counts: a flush period is at most a day, so a
/// batch spans two days, or three after a failed flush was retried across midnight.
pub const MAX_DAYS_PER_USAGE: usize = 3;

impl KeyUsage {
    /// A use of `key_id` at `last_used_at`, with no requests counted.
    pub fn new(key_id: KeyId, last_used_at: SystemTime) -> Self {
        Self {
            key_id,
            last_used_at,
            requests: [(UsageDay::from_days_since_epoch(0), 0); MAX_DAYS_PER_USAGE],
            recent_ips: RecentIps::new(),
        }
    }

    /// Sets the client addresses seen since the last batch, newest first.
    pub fn with_recent_ips(mut self, ips: RecentIps) -> Self {
        self.recent_ips = ips;
        self
    }

    /// The client addresses seen since the last batch, newest first. A sink puts them
    /// in front of the key's stored [`recent_ips`](crate::KeyRecord::recent_ips)
    /// ([`RecentIps::and_older`]), so that sending a batch twice changes nothing more.
    pub fn recent_ips(&self) -> &RecentIps {
        &self.recent_ips
    }

    /// Adds `n` requests on `day`. Past [`MAX_DAYS_PER_USAGE`] distinct days, the
    /// oldest day's count gives way (the tracker never needs that many).
    pub fn with_requests(mut self, day: UsageDay, n: u64) -> Self {
        if n == 0 {
            return self;
        }
        if let Some(entry) = self.requests.iter_mut().find(|(d, c)| *c > 0 && *d == day) {
            entry.1 = entry.1.saturating_add(n);
            return self;
        }
        let place = self
            .requests
            .iter()
            .position(|(_, c)| *c == 0)
            .unwrap_or_else(|| {
                (0..MAX_DAYS_PER_USAGE)
                    .min_by_key(|&i| self.requests[i].0)
                    .unwrap_or(0)
            });
        self.requests[place] = (day, n);
        self
    }

    /// The requests counted in this batch, per UTC day, oldest first. A sink adds them
    /// to what it stored, once per batch id ([`UsageBatch::id`](crate::usage::UsageBatch::id)).
    pub fn requests(&self) -> impl Iterator<Item = (UsageDay, u64)> + '_ {
        let mut days: Vec<(UsageDay, u64)> = self
            .requests
            .iter()
            .copied()
            .filter(|(_, n)| *n > 0)
            .collect();
        days.sort_by_key(|&(d, _)| d);
        days.into_iter()
    }
}
