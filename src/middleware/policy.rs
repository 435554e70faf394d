//! Per-request policies: rules over a proven key's record, checked in order after its
//! state (see [`verdict`](super::verdict)). Each lives in a file of its own and owns its
//! refusal; adding one is a new file and a row in [`POLICIES`].

mod scopes;

use std::time::SystemTime;

use crate::middleware::config::Config;
use crate::middleware::rejection::RejectionKind;
use crate::record::KeyRecord;

/// A policy: the layer's settings, the proven record and the request's time, to `Ok`
/// or the refusal.
pub(crate) type Policy = fn(&Config, &KeyRecord, SystemTime) -> Result<(), RejectionKind>;

/// The policies, in the order they are checked.
pub(crate) const POLICIES: &[Policy] = &[scopes::check];
