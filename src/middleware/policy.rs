//! Per-request policies: rules over a proven key's record, checked in order after its
//! state (see [`verdict`](super::verdict)). Each lives in a file of its own and owns its
//! refusal; adding one is a new file and a row in [`POLICIES`].
//!
//! The limits' policies (rate, quota) only read their state; the verdict consumes it
//! once every policy passed or only the scopes refused (see
//! [`limiter`](super::limiter)), so that a request refused for its address, rate or
//! quota consumes nothing.

mod address;
mod quota;
mod rate_limit;
mod scopes;

use std::sync::Arc;
use std::time::SystemTime;

use http::{Extensions, HeaderMap};

use crate::middleware::config::Config;
use crate::middleware::limiter::Entry;
use crate::middleware::rejection::RejectionKind;
use crate::record::{KeyRecord, Quota, RateLimit};

/// What a policy sees: the layer's settings, the proven record, the request's time and
/// headers, and the limits' state of the key once a policy fetched it.
pub(crate) struct Check<'a> {
    pub(crate) config: &'a Config,
    pub(crate) record: &'a KeyRecord,
    pub(crate) now: SystemTime,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) extensions: &'a Extensions,
    pub(crate) entry: Option<Arc<Entry>>,
}

impl Check<'_> {
    /// The key's limits' state, made on its first limited request.
    pub(crate) fn entry(&mut self) -> &Entry {
        let Self {
            config,
            record,
            now,
            entry,
            ..
        } = self;
        entry.get_or_insert_with(|| config.limiter.entry(record.id(), record.stops_at(), *now))
    }
}

impl Check<'_> {
    /// The limits that decide on this instance now (the key's own, or its local share of
    /// shared limits; see [`Limiter::local_limits`](crate::middleware::limiter::Limiter::local_limits)).
    #[inline]
    pub(crate) fn local_limits(&self) -> (Option<RateLimit>, Option<Quota>) {
        self.config
            .limiter
            .local_limits(self.record.rate_limit(), self.record.quota())
    }
}

/// A policy: `Ok`, or the refusal.
pub(crate) type Policy = fn(&mut Check<'_>) -> Result<(), RejectionKind>;

/// The policies, in the order they are checked (DESIGN §12).
pub(crate) const POLICIES: &[Policy] = &[
    address::check,
    rate_limit::check,
    quota::check,
    scopes::check,
];
