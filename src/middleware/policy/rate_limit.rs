//! The rate limit: GCRA with the key's [`RateLimit`](crate::record::RateLimit); over it, 429
//! `rate_limited`. Only reads the state: the verdict charges it (see
//! [`limits`]).

use crate::middleware::policy::{Check, limits};
use crate::middleware::rejection::RejectionKind;

#[inline(always)]
pub(super) fn check(check: &mut Check<'_>) -> Result<(), RejectionKind> {
    let Some(limit) = check.local_limits().0 else {
        return Ok(());
    };
    let now = check.now;
    check
        .entry()
        .check_rate(limit, now)
        .map_err(limits::refusal)
}
