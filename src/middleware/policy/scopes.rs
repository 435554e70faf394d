//! The required scopes: the key must hold every scope the layer requires (a wildcard
//! grants what is under it); otherwise 403 naming what is missing.

use crate::middleware::policy::Check;
use crate::middleware::rejection::RejectionKind;

pub(super) fn check(check: &mut Check<'_>) -> Result<(), RejectionKind> {
    let (required, record) = (&check.config.required, check.record);
    // One pass decides both questions: whether anything is missing, and whether it is
    // the whole requirement (the usual refusal, answered with the prebuilt answer).
    match record.scopes().missing(required).count() {
        0 => Ok(()),
        all if all == required.len() => Err(RejectionKind::InsufficientScope(required.clone())),
        _ => Err(RejectionKind::InsufficientScope(
            record.scopes().missing_set(required),
        )),
    }
}
