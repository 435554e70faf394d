//! The quota: the key's [`Quota`](crate::record::Quota) per UTC day or month; used up, 429
//! `quota_exceeded` until the period ends. Only reads the state: the verdict charges
//! it (see [`limits`]).

use crate::middleware::policy::{Check, limits};
use crate::middleware::rejection::RejectionKind;

#[inline(always)]
pub(super) fn check(check: &mut Check<'_>) -> Result<(), RejectionKind> {
    let Some(limit) = check.local_limits().1 else {
        return Ok(());
    };
    let now = check.now;
    check
        .entry()
        .check_quota(limit, now)
        .map_err(limits::refusal)
}
