//! [`Limiter`]: the limits a request meets, as the middleware asks for them: the
//! instance's own state ([`local`](super::local)), and the lease of
//! [`SharedLimits`] when the limits are shared.
//!
//! The policies read an [`Entry`] (check); the verdict then consumes one request of it
//! ([`Limiter::consume`]), both the rate and the quota or neither. A refusal is an
//! [`Exhausted`]: which limit ran out, and until when.

use std::sync::Arc;
use std::time::SystemTime;

use crate::key::KeyId;
use crate::limits::backend::Exhausted;
use crate::limits::headers::Seen;
use crate::limits::local::{Charge, Entry, LocalLimits};
use crate::limits::shared_limits::{Shared, SharedLimits};
use crate::record::{Quota, RateLimit};

/// The limits' state of one layer, shared by all its clones (and by every layer given
/// the same [`SharedLimits`]).
#[derive(Clone)]
pub(crate) struct Limiter {
    local: Arc<LocalLimits>,
    /// Set when the layers share their limits with other instances.
    shared: Option<Arc<Shared>>,
}

impl Limiter {
    /// Limits counted on this instance alone.
    pub(crate) fn new() -> Self {
        Self {
            local: Arc::new(LocalLimits::new()),
            shared: None,
        }
    }

    /// Limits whose decisions lease from `limits`' backend.
    pub(crate) fn shared(limits: &SharedLimits) -> Self {
        let (local, shared) = limits.parts();
        Self {
            local,
            shared: Some(shared),
        }
    }

    /// The limits that decide locally now: the key's own, or, while the shared limits'
    /// backend fails, its local share (see [`Shared::local_share`]).
    #[inline]
    pub(crate) fn local_limits(
        &self,
        rate: Option<RateLimit>,
        quota: Option<Quota>,
    ) -> (Option<RateLimit>, Option<Quota>) {
        match &self.shared {
            Some(shared) if !shared.is_healthy() => shared.local_share(rate, quota),
            _ => (rate, quota),
        }
    }

    /// The entry of key `id`, made on its first limited request.
    #[inline]
    pub(crate) fn entry(&self, id: &KeyId, stops_at: SystemTime, now: SystemTime) -> Arc<Entry> {
        self.local.entry(id, stops_at, now)
    }

    /// Consumes one request of the entry's limits (`charge.local`, as
    /// [`local_limits`](Self::local_limits) gave them) and, when the limits are shared,
    /// a leased token, or owes the request (see [`SharedLimits`]); the headers' state
    /// after.
    #[inline]
    pub(crate) fn consume(&self, charge: &Charge<'_>) -> Result<Seen, (Exhausted, Seen)> {
        let Some(shared) = &self.shared else {
            // One instance: the fast path, with nothing else to do.
            let entry = charge.entry;
            return match entry.commit(charge.local.0, charge.local.1, charge.now) {
                Ok(counted) => Ok(self.local.seen(entry, counted)),
                Err((limit, counted)) => Err((limit, self.local.seen(entry, counted))),
            };
        };
        shared.consume(&self.local, charge)
    }

    /// The headers' state of `entry` as it is, for a refusal that consumed nothing.
    #[inline]
    pub(crate) fn peek(
        &self,
        entry: &Entry,
        limits: (Option<RateLimit>, Option<Quota>),
        now: SystemTime,
    ) -> Seen {
        self.local.seen(entry, entry.peek(limits.0, limits.1, now))
    }
}
