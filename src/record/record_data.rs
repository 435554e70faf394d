//! [`RecordData`]: a record's fields, in a leaf of their own so that the record and the
//! identity made from it both read them without importing each other.

use std::time::{Duration, SystemTime};

use super::{ActorName, KeyName, Limits, RecentIps, TenantId};
use crate::key::{KeyDigest, KeyId};
use crate::scope::Scopes;

/// A record's fields, shared by the record and the [`ApiKeyIdentity`](crate::ApiKeyIdentity) made from it, so
/// that a lookup copies one pointer and an accepted request allocates nothing for it.
#[derive(Clone)]
pub(crate) struct RecordData {
    pub(crate) id: KeyId,
    pub(crate) name: KeyName,
    pub(crate) scopes: Scopes,
    /// The customer organisation the key belongs to; none for the application's own.
    pub(crate) tenant: Option<TenantId>,
    pub(crate) digest: KeyDigest,
    pub(crate) created_at: SystemTime,
    pub(crate) expires_at: SystemTime,
    pub(crate) revoked_at: Option<SystemTime>,
    pub(crate) ends_at: Option<SystemTime>,
    pub(crate) last_used_at: Option<SystemTime>,
    pub(crate) rotated_from: Option<KeyId>,
    pub(crate) created_by: Option<ActorName>,
    pub(crate) revoked_by: Option<ActorName>,
    pub(crate) limits: Limits,
    /// Set on the successor of an `until_first_use` rotation: its first use ends the
    /// key it replaced this long after.
    pub(crate) predecessor_grace: Option<Duration>,
    pub(crate) recent_ips: RecentIps,
}

impl RecordData {
    /// The earlier of `ends_at` and `expires_at`.
    pub(crate) fn stops_at(&self) -> SystemTime {
        self.ends_at
            .map_or(self.expires_at, |end| end.min(self.expires_at))
    }
}
