//! [`KeyRecord`]: everything a store keeps about one key, and the state it is in at a
//! given time.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::record_data::RecordData;
use super::{
    ActorName, AllowedIps, ApiKeyIdentity, KeyName, KeyState, Limits, Quota, RateLimit, RecentIps,
    TenantId,
};
use crate::key::{KeyDigest, KeyId};
use crate::scope::Scopes;

/// Everything a store keeps about one key: the digest and metadata, never the key.
///
/// Cloning is cheap: the identity part is shared. `Debug` redacts the digest.
///
/// A store for your own database builds records with [`KeyRecord::new`] and the
/// `with_*` methods:
///
/// ```
/// # use std::time::{Duration, SystemTime};
/// use tower_apikey::key::KeyDigest;
/// use tower_apikey::record::KeyName;
/// use tower_apikey::{KeyId, KeyRecord, Scopes};
/// # fn row() -> (String, String, Vec<String>, [u8; 32]) {
/// #   ("7Fq2LxW9aZ3kPm4R".into(), "billing".into(), vec!["reports:read".into()], [0; 32]) }
/// let (id, name, scopes, digest) = row();
/// let created = SystemTime::now();
/// let record = KeyRecord::new(
///     KeyId::new(&id)?,
///     KeyName::new(&name)?,
///     Scopes::new(&scopes)?,
///     KeyDigest::from_bytes(digest),
///     created,
///     created + Duration::from_secs(86_400),
/// )
/// .with_last_used_at(None);
/// assert!(!format!("{record:?}").contains("0, 0, 0"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct KeyRecord(Arc<RecordData>);

impl KeyRecord {
    /// A record that is not revoked, has no scheduled end, was never used, is not a
    /// rotation, belongs to no tenant and was created by the application itself (no
    /// actor).
    pub fn new(
        id: KeyId,
        name: KeyName,
        scopes: Scopes,
        digest: KeyDigest,
        created_at: SystemTime,
        expires_at: SystemTime,
    ) -> Self {
        Self(Arc::new(RecordData {
            id,
            name,
            scopes,
            tenant: None,
            digest,
            created_at,
            expires_at,
            revoked_at: None,
            ends_at: None,
            last_used_at: None,
            rotated_from: None,
            created_by: None,
            revoked_by: None,
            limits: Limits::default(),
            predecessor_grace: None,
            recent_ips: RecentIps::new(),
        }))
    }

    /// The fields, to change: copied first if another record or identity shares them.
    fn data_mut(&mut self) -> &mut RecordData {
        Arc::make_mut(&mut self.0)
    }

    /// Sets the key's name (a rename, [`KeyUpdate::name`](crate::store::KeyUpdate::name)).
    pub fn with_name(mut self, name: KeyName) -> Self {
        self.data_mut().name = name;
        self
    }

    /// Sets the tenant the key belongs to (DESIGN §14); `None` for the application's own.
    pub fn with_tenant(mut self, tenant: Option<TenantId>) -> Self {
        self.data_mut().tenant = tenant;
        self
    }

    /// Sets when the key was revoked; `Some` revokes it, whatever the time.
    pub fn with_revoked_at(mut self, at: Option<SystemTime>) -> Self {
        self.data_mut().revoked_at = at;
        self
    }

    /// Sets when the key was last used.
    pub fn with_last_used_at(mut self, at: Option<SystemTime>) -> Self {
        self.data_mut().last_used_at = at;
        self
    }

    /// Sets the key this one replaced.
    pub fn with_rotated_from(mut self, from: Option<KeyId>) -> Self {
        self.data_mut().rotated_from = from;
        self
    }

    /// Sets who created the key: `None` when the application itself did.
    pub fn with_created_by(mut self, by: Option<ActorName>) -> Self {
        self.data_mut().created_by = by;
        self
    }

    /// Sets who revoked the key: `None` when the application itself did, or when it is
    /// not revoked.
    pub fn with_revoked_by(mut self, by: Option<ActorName>) -> Self {
        self.data_mut().revoked_by = by;
        self
    }

    /// Sets when the key expires.
    pub fn with_expires_at(mut self, at: SystemTime) -> Self {
        self.data_mut().expires_at = at;
        self
    }

    /// Sets the end a rotation scheduled for the key, if any.
    pub fn with_ends_at(mut self, at: Option<SystemTime>) -> Self {
        self.data_mut().ends_at = at;
        self
    }

    /// Sets how long after this key's first use the key it replaced ends, for the
    /// successor of an `until_first_use` rotation ([`predecessor_grace`](Self::predecessor_grace)).
    pub fn with_predecessor_grace(mut self, grace: Option<Duration>) -> Self {
        self.data_mut().predecessor_grace = grace;
        self
    }

    /// Sets the key's rate limit (DESIGN §12); `None` for none.
    pub fn with_rate_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.data_mut().limits.rate_limit = limit;
        self
    }

    /// Sets the key's quota per UTC day or month; `None` for none.
    pub fn with_quota(mut self, quota: Option<Quota>) -> Self {
        self.data_mut().limits.quota = quota;
        self
    }

    /// Sets the addresses the key may be used from; `None` for any.
    pub fn with_allowed_ips(mut self, ips: Option<AllowedIps>) -> Self {
        self.data_mut().limits.allowed_ips = ips;
        self
    }

    /// The key's rate limit, if it has one.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.0.limits.rate_limit
    }

    /// The key's quota, if it has one.
    pub fn quota(&self) -> Option<Quota> {
        self.0.limits.quota
    }

    /// The addresses the key may be used from, if it is restricted.
    pub fn allowed_ips(&self) -> Option<&AllowedIps> {
        self.0.limits.allowed_ips.as_ref()
    }

    /// Sets the last client addresses the key was used from, newest first.
    pub fn with_recent_ips(mut self, ips: RecentIps) -> Self {
        self.data_mut().recent_ips = ips;
        self
    }

    /// The last [`MAX_RECENT_IPS`](crate::record::MAX_RECENT_IPS) distinct client addresses of the key's proven
    /// requests, newest first, as last-used tracking wrote them.
    pub fn recent_ips(&self) -> &RecentIps {
        &self.0.recent_ips
    }

    pub(crate) fn with_limits(mut self, limits: Limits) -> Self {
        self.data_mut().limits = limits;
        self
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.0.limits
    }

    /// The key's public id.
    pub fn id(&self) -> &KeyId {
        &self.0.id
    }

    /// The key's name.
    pub fn name(&self) -> &KeyName {
        &self.0.name
    }

    /// What the key may do.
    pub fn scopes(&self) -> &Scopes {
        &self.0.scopes
    }

    /// The tenant the key belongs to; `None` for a key of the application itself.
    pub fn tenant(&self) -> Option<&TenantId> {
        self.0.tenant.as_ref()
    }

    /// The SHA-256 digest of the key text, for the store to persist. Never log it.
    pub fn digest(&self) -> &KeyDigest {
        &self.0.digest
    }

    /// When the key was created.
    pub fn created_at(&self) -> SystemTime {
        self.0.created_at
    }

    /// When the key expires: the lifetime it was created with. A rotation never changes
    /// it; see [`ends_at`](Self::ends_at).
    pub fn expires_at(&self) -> SystemTime {
        self.0.expires_at
    }

    /// When the key was revoked, if it was. It is a record of when: a key with any
    /// `revoked_at` is refused.
    pub fn revoked_at(&self) -> Option<SystemTime> {
        self.0.revoked_at
    }

    /// When the key ends because a rotation with an overlap replaced it, if one did.
    /// Always before [`expires_at`](Self::expires_at) when stores set it.
    pub fn ends_at(&self) -> Option<SystemTime> {
        self.0.ends_at
    }

    /// When the key stops working unless it is revoked first: the earlier of
    /// [`ends_at`](Self::ends_at) and [`expires_at`](Self::expires_at).
    pub fn stops_at(&self) -> SystemTime {
        self.0.stops_at()
    }

    /// For the successor of an `until_first_use` rotation (DESIGN §11): how long after
    /// this key's first proven use the key it replaced ([`rotated_from`](Self::rotated_from))
    /// ends. The store applies it when it records that first use: the old key's
    /// `ends_at` becomes the recorded use plus this grace, unless it stops sooner
    /// anyway. `None` for every other key. The field stays after the end is applied,
    /// as a record of how the rotation was made.
    pub fn predecessor_grace(&self) -> Option<Duration> {
        self.0.predecessor_grace
    }

    /// The latest recorded use, written periodically rather than on every request.
    pub fn last_used_at(&self) -> Option<SystemTime> {
        self.0.last_used_at
    }

    /// The key this one replaced, if it came from a rotation.
    pub fn rotated_from(&self) -> Option<&KeyId> {
        self.0.rotated_from.as_ref()
    }

    /// Who created the key: the acting key's id or a signed-in person's name, or `None`
    /// when the application itself did (through [`KeyManager`](crate::KeyManager)'s own
    /// methods rather than [`KeyManager::acting_as`](crate::KeyManager::acting_as)).
    pub fn created_by(&self) -> Option<&ActorName> {
        self.0.created_by.as_ref()
    }

    /// Who revoked the key, as [`created_by`](Self::created_by) says who created it.
    /// `None` for a key that is not revoked, or that the application revoked. A rotation
    /// that revokes the old key at once records the rotation's actor.
    pub fn revoked_by(&self) -> Option<&ActorName> {
        self.0.revoked_by.as_ref()
    }

    /// What a caller proven to hold this key is, as request extensions carry it.
    pub fn identity(&self) -> ApiKeyIdentity {
        ApiKeyIdentity::from_data(Arc::clone(&self.0))
    }

    pub(crate) fn into_identity(self) -> ApiKeyIdentity {
        ApiKeyIdentity::from_data(self.0)
    }

    /// Where the key stands at `now`.
    ///
    /// Revoked if it has any `revoked_at`, without comparing that time with `now`: a
    /// revocation holds whatever the clocks of the instance that made it and the one
    /// asking say. Otherwise ended or expired at and after the earlier of `ends_at` and
    /// `expires_at` (expired when both are the same time), else active.
    pub fn state_at(&self, now: SystemTime) -> KeyState {
        if self.0.revoked_at.is_some() {
            return KeyState::Revoked;
        }
        match self.0.ends_at {
            Some(end) if end < self.0.expires_at && now >= end => KeyState::Ended,
            _ if now >= self.0.expires_at => KeyState::Expired,
            _ => KeyState::Active,
        }
    }
}

impl fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRecord")
            .field("id", self.id())
            .field("name", self.name())
            .field("scopes", self.scopes())
            .field("tenant", &self.tenant())
            .field("digest", self.digest())
            .field("created_at", &self.created_at())
            .field("expires_at", &self.expires_at())
            .field("revoked_at", &self.revoked_at())
            .field("ends_at", &self.ends_at())
            .field("last_used_at", &self.last_used_at())
            .field("rotated_from", &self.rotated_from())
            .field("created_by", &self.created_by())
            .field("revoked_by", &self.revoked_by())
            .field("rate_limit", &self.rate_limit())
            .field("quota", &self.quota())
            .field("allowed_ips", &self.allowed_ips())
            .field("predecessor_grace", &self.predecessor_grace())
            .field("recent_ips", self.recent_ips())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn record_at(t0: SystemTime) -> KeyRecord {
        KeyRecord::new(
            KeyId::new("0000000000000000").unwrap(),
            KeyName::new("n").unwrap(),
            Scopes::empty(),
            KeyDigest::DUMMY,
            t0,
            t0 + Duration::from_secs(10),
        )
    }

    #[test]
    fn a_revocation_holds_whatever_time_it_records() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        // Recorded by a clock running ahead of the one asking, or asked after the
        // asking clock stepped back: revoked either way.
        let revoked = record_at(t0).with_revoked_at(Some(t0 + Duration::from_secs(120)));
        for now in [
            t0,
            t0 + Duration::from_secs(5),
            t0 + Duration::from_secs(200),
        ] {
            assert_eq!(revoked.state_at(now), KeyState::Revoked);
        }
        let ended = record_at(t0)
            .with_ends_at(Some(t0 + Duration::from_secs(5)))
            .with_revoked_at(Some(t0));
        assert_eq!(
            ended.state_at(t0 + Duration::from_secs(20)),
            KeyState::Revoked
        );
    }

    #[test]
    fn a_scheduled_end_ends_the_key_at_exactly_ends_at() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let ending = record_at(t0).with_ends_at(Some(t0 + Duration::from_secs(5)));
        assert_eq!(ending.stops_at(), t0 + Duration::from_secs(5));
        assert_eq!(
            ending.state_at(t0 + Duration::from_secs(5) - Duration::from_nanos(1)),
            KeyState::Active
        );
        assert_eq!(
            ending.state_at(t0 + Duration::from_secs(5)),
            KeyState::Ended
        );
        assert_eq!(
            ending.state_at(t0 + Duration::from_secs(20)),
            KeyState::Ended,
            "it ended before it expired"
        );
        // An end at or after the expiry changes nothing: the key expires.
        for end in [10, 15] {
            let late = record_at(t0).with_ends_at(Some(t0 + Duration::from_secs(end)));
            assert_eq!(late.stops_at(), t0 + Duration::from_secs(10));
            assert_eq!(late.state_at(t0 + Duration::from_secs(9)), KeyState::Active);
            assert_eq!(
                late.state_at(t0 + Duration::from_secs(12)),
                KeyState::Expired
            );
        }
    }

    #[test]
    fn a_key_is_expired_at_exactly_expires_at_and_revocation_wins() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let record = KeyRecord::new(
            KeyId::new("0000000000000000").unwrap(),
            KeyName::new("n").unwrap(),
            Scopes::empty(),
            KeyDigest::DUMMY,
            t0,
            t0 + Duration::from_secs(10),
        );
        assert_eq!(
            record.state_at(t0 + Duration::from_secs(9)),
            KeyState::Active
        );
        assert_eq!(
            record.state_at(t0 + Duration::from_secs(10)),
            KeyState::Expired
        );
        let revoked = record.with_revoked_at(Some(t0 + Duration::from_secs(5)));
        assert_eq!(
            revoked.state_at(t0 + Duration::from_secs(4)),
            KeyState::Revoked
        );
        assert_eq!(
            revoked.state_at(t0 + Duration::from_secs(20)),
            KeyState::Revoked
        );
    }
}
