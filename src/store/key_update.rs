//! [`KeyUpdate`]: what [`KeyStoreUpdate::update`](crate::store::KeyStoreUpdate::update) changes in
//! a record (`PATCH /keys/{id}`, DESIGN §12).

use crate::record::{AllowedIps, KeyName, KeyRecord, Quota, RateLimit};

/// A change to a key's name, limits and addresses; every field it does not mention
/// stays as it is. Scopes, times and actors are never changed this way.
///
/// Each limit is set with `Some`, cleared with `None`, or left alone by not calling its
/// method:
///
/// ```
/// use tower_apikey::record::{KeyName, RateLimit};
/// use tower_apikey::store::KeyUpdate;
///
/// let update = KeyUpdate::new()
///     .name(KeyName::new("billing-sync (eu)")?)
///     .rate_limit(Some(RateLimit::new(100, 60)?)) // set
///     .allowed_ips(None); // clear: any address again
/// assert!(update.quota_change().is_none()); // the quota stays as it is
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyUpdate {
    name: Option<KeyName>,
    rate_limit: Option<Option<RateLimit>>,
    quota: Option<Option<Quota>>,
    allowed_ips: Option<Option<AllowedIps>>,
}

impl KeyUpdate {
    /// A change of nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Renames the key.
    pub fn name(mut self, name: KeyName) -> Self {
        self.name = Some(name);
        self
    }

    /// Sets the rate limit, or removes it (`None`).
    pub fn rate_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// Sets the quota, or removes it (`None`).
    pub fn quota(mut self, quota: Option<Quota>) -> Self {
        self.quota = Some(quota);
        self
    }

    /// Restricts the key to these addresses, or lets it be used from any (`None`).
    pub fn allowed_ips(mut self, ips: Option<AllowedIps>) -> Self {
        self.allowed_ips = Some(ips);
        self
    }

    /// The new name, if the key is renamed.
    pub fn name_change(&self) -> Option<&KeyName> {
        self.name.as_ref()
    }

    /// `Some(new)` if the rate limit changes (`Some(None)`: removed).
    pub fn rate_limit_change(&self) -> Option<Option<RateLimit>> {
        self.rate_limit
    }

    /// `Some(new)` if the quota changes (`Some(None)`: removed).
    pub fn quota_change(&self) -> Option<Option<Quota>> {
        self.quota
    }

    /// `Some(new)` if the allowlist changes (`Some(None)`: removed).
    pub fn allowed_ips_change(&self) -> Option<Option<&AllowedIps>> {
        self.allowed_ips.as_ref().map(Option::as_ref)
    }

    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.rate_limit.is_none()
            && self.quota.is_none()
            && self.allowed_ips.is_none()
    }

    /// `record` with this change applied: what a store writes back, in one step with
    /// reading `record`.
    pub fn apply_to(&self, record: &KeyRecord) -> KeyRecord {
        let mut changed = record.clone();
        if let Some(name) = &self.name {
            changed = changed.with_name(name.clone());
        }
        if let Some(limit) = self.rate_limit {
            changed = changed.with_rate_limit(limit);
        }
        if let Some(quota) = self.quota {
            changed = changed.with_quota(quota);
        }
        if let Some(ips) = &self.allowed_ips {
            changed = changed.with_allowed_ips(ips.clone());
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::key::{KeyDigest, KeyId};
    use crate::record::QuotaPeriod;
    use crate::scope::Scopes;

    #[test]
    fn an_update_changes_what_it_names_and_nothing_else() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let rate = RateLimit::new(10, 1).unwrap();
        let quota = Quota::new(5, QuotaPeriod::Day).unwrap();
        let record = KeyRecord::new(
            KeyId::new("0000000000000000").unwrap(),
            KeyName::new("old").unwrap(),
            Scopes::new(["a:b"]).unwrap(),
            KeyDigest::DUMMY,
            t0,
            t0 + Duration::from_secs(10),
        )
        .with_rate_limit(Some(rate))
        .with_quota(Some(quota));
        assert!(KeyUpdate::new().is_empty());
        let same = KeyUpdate::new().apply_to(&record);
        assert_eq!(
            (same.name().as_str(), same.rate_limit(), same.quota()),
            ("old", Some(rate), Some(quota))
        );
        let ips = AllowedIps::new(["10.0.0.0/8"]).unwrap();
        let update = KeyUpdate::new()
            .name(KeyName::new("new").unwrap())
            .rate_limit(None)
            .allowed_ips(Some(ips.clone()));
        assert!(!update.is_empty());
        let changed = update.apply_to(&record);
        assert_eq!(changed.name().as_str(), "new");
        assert_eq!(changed.rate_limit(), None, "cleared");
        assert_eq!(changed.quota(), Some(quota), "left as it was");
        assert_eq!(changed.allowed_ips(), Some(&ips));
        assert_eq!(changed.scopes(), record.scopes());
        assert_eq!(changed.expires_at(), record.expires_at());
        assert_eq!(record.name().as_str(), "old", "the original is not touched");
    }
}
