//! The required scopes: the key must hold every scope the layer requires (a wildcard
//! grants what is under it); otherwise 403 naming what is missing.

use std::time::SystemTime;

use crate::middleware::config::Config;
use crate::middleware::rejection::RejectionKind;
use crate::record::KeyRecord;

pub(super) fn check(
    config: &Config,
    record: &KeyRecord,
    _: SystemTime,
) -> Result<(), RejectionKind> {
    if record.scopes().grants_all(&config.required) {
        Ok(())
    } else {
        let missing = record.scopes().missing_set(&config.required);
        Err(RejectionKind::InsufficientScope(missing))
    }
}
