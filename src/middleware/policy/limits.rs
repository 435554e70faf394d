//! The state the limits' policies share: the key's [`Entry`], fetched by the first of
//! them that needs it, read by both (check), and charged once by the verdict after
//! every policy (see [`charge`]). A limit's refusal, an [`Exhausted`], becomes the
//! middleware's [`RejectionKind`] here.

use std::sync::Arc;

use crate::limits::backend::Exhausted;
use crate::limits::headers::Seen;
use crate::limits::local::{Charge, Entry};
use crate::middleware::policy::Check;
use crate::middleware::rejection::RejectionKind;
use crate::record::{Quota, RateLimit};

/// The key's limits' state, once a limits' policy fetched it.
#[derive(Default)]
pub(crate) struct Limited {
    entry: Option<Arc<Entry>>,
}

impl Check<'_> {
    /// The key's limits' state, made on its first limited request.
    #[inline]
    pub(crate) fn entry(&mut self) -> &Entry {
        let Self {
            config,
            record,
            now,
            limits,
            ..
        } = self;
        limits
            .entry
            .get_or_insert_with(|| config.limiter.entry(record.id(), record.stops_at(), *now))
    }

    /// The limits that decide on this instance now (the key's own, or its local share of
    /// shared limits; see [`Limiter::local_limits`](crate::limits::limiter::Limiter::local_limits)).
    #[inline]
    pub(crate) fn local_limits(&self) -> (Option<RateLimit>, Option<Quota>) {
        self.config
            .limiter
            .local_limits(self.record.rate_limit(), self.record.quota())
    }
}

/// Charges one request to the key's limits, both or neither (when a limits' policy
/// fetched them: the key has limits); the headers' state after, or the refusal if a
/// concurrent request (or the shared limits' lease) took the last one.
#[inline]
pub(crate) fn charge(check: &mut Check<'_>) -> Result<Option<Seen>, (RejectionKind, Seen)> {
    let Some(entry) = check.limits.entry.take() else {
        return Ok(None);
    };
    let record = check.record;
    let charge = Charge {
        id: record.id(),
        entry: &entry,
        local: check.local_limits(),
        own: (record.rate_limit(), record.quota()),
        now: check.now,
    };
    check
        .config
        .limiter
        .consume(&charge)
        .map(Some)
        .map_err(|(limit, seen)| (refusal(limit), seen))
}

/// The headers' state as it is, for a refusal that charges nothing.
pub(crate) fn peek(check: &Check<'_>) -> Option<Seen> {
    let entry = check.limits.entry.as_ref()?;
    Some(
        check
            .config
            .limiter
            .peek(entry, check.local_limits(), check.now),
    )
}

/// A limit's refusal as the middleware's: 429 `rate_limited` or `quota_exceeded`.
#[inline]
pub(crate) fn refusal(limit: Exhausted) -> RejectionKind {
    match limit {
        Exhausted::Rate { retry_after } => RejectionKind::RateLimited { retry_after },
        Exhausted::Quota { retry_after } => RejectionKind::QuotaExceeded { retry_after },
    }
}
