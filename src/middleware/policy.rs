//! Per-request policies: rules over a proven key's record, checked in order after its
//! state (see [`verdict`](super::verdict)). Each lives in a file of its own and owns its
//! refusal; its row in [`POLICIES`] says where it runs and what a refusal by it still
//! does. Adding one is a new file and a row.
//!
//! The limits' policies (rate, quota) only read their state (kept in [`limits`]); the
//! verdict charges the key's limits afterwards, once, when every policy passed or the
//! refusing policy's row says a refusal still charges.

mod address;
pub(crate) mod limits;
#[cfg(test)]
mod probe;
mod quota;
mod rate_limit;
mod scopes;

use std::time::SystemTime;

use http::{Extensions, HeaderMap};

use crate::middleware::config::Config;
use crate::middleware::rejection::RejectionKind;
use crate::record::KeyRecord;

/// What a policy sees: the layer's settings, the proven record, the request's time and
/// headers, and the limits' state of the key once a limits' policy fetched it.
pub(crate) struct Check<'a> {
    pub(crate) config: &'a Config,
    pub(crate) record: &'a KeyRecord,
    pub(crate) now: SystemTime,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) extensions: &'a Extensions,
    pub(crate) limits: limits::Limited,
}

/// One row: a policy, and what a refusal by it still does.
pub(crate) struct Policy {
    /// `Ok`, or the refusal.
    pub(crate) check: fn(&mut Check<'_>) -> Result<(), RejectionKind>,
    pub(crate) effect: Effect,
}

/// What a request refused by a policy still does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Effect {
    /// The refused request is charged to the key's rate limit and quota, as if it had
    /// been let through (a client cannot probe for free what it may not do).
    pub(crate) charges: bool,
    /// The client's address goes into the key's recent addresses (with the use, which
    /// is recorded whatever the policies said): not when the policy refused the
    /// address itself, so that "restrict to recent addresses" never adds it.
    pub(crate) records_client: bool,
}

/// The policies, in the order they are checked (DESIGN §12).
pub(crate) const POLICIES: &[Policy] = &[
    Policy {
        check: address::check,
        effect: Effect {
            charges: false,
            records_client: false,
        },
    },
    Policy {
        check: rate_limit::check,
        effect: Effect {
            charges: false,
            records_client: true,
        },
    },
    Policy {
        check: quota::check,
        effect: Effect {
            charges: false,
            records_client: true,
        },
    },
    Policy {
        check: scopes::check,
        effect: Effect {
            charges: true,
            records_client: true,
        },
    },
    // A test-only policy: a new policy is this much (see `probe.rs`).
    #[cfg(test)]
    Policy {
        check: probe::check,
        effect: Effect {
            charges: true,
            records_client: true,
        },
    },
];
