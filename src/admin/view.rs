//! What the admin router shows of a key: a serde view of [`KeyRecord`] without its digest.
//!
//! `KeyRecord` itself has no `Serialize`, so no code path can write a digest by accident;
//! these views copy out exactly the public fields.

use std::time::SystemTime;

use serde::Serialize;
use time::OffsetDateTime;

use super::problem::AdminError;
use crate::KeyRecord;

/// A key record as JSON: everything but the digest, times in RFC 3339 UTC.
#[derive(Debug, Serialize)]
pub(super) struct KeyView {
    id: String,
    name: String,
    scopes: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    ends_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    revoked_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    last_used_at: Option<OffsetDateTime>,
    rotated_from: Option<String>,
}

impl KeyView {
    pub(super) fn new(record: &KeyRecord) -> Result<Self, AdminError> {
        Ok(Self {
            id: record.id().to_string(),
            name: record.name().to_string(),
            scopes: record.scopes().iter().map(ToString::to_string).collect(),
            created_at: utc(record.created_at())?,
            expires_at: utc(record.expires_at())?,
            ends_at: record.ends_at().map(utc).transpose()?,
            revoked_at: record.revoked_at().map(utc).transpose()?,
            last_used_at: record.last_used_at().map(utc).transpose()?,
            rotated_from: record.rotated_from().map(ToString::to_string),
        })
    }
}

/// The answer to create and rotate: the record and, this once, the key.
#[derive(Debug, Serialize)]
pub(super) struct CreatedView<'a> {
    #[serde(flatten)]
    pub(super) record: KeyView,
    pub(super) key: &'a str,
}

/// `time` in UTC, or an error for a time RFC 3339 cannot write (before year 0 or after
/// 9999), which only a corrupt store could hold. Never panics, unlike
/// `OffsetDateTime::from(SystemTime)` on such times.
pub(super) fn utc(time: SystemTime) -> Result<OffsetDateTime, AdminError> {
    crate::utc::from_system_time(time)
        .filter(|t| (0..=9999).contains(&t.year()))
        .ok_or(AdminError::Unrepresentable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyDigest, KeyId, KeyName, Scopes};
    use std::time::{Duration, UNIX_EPOCH};

    fn record() -> KeyRecord {
        let created = UNIX_EPOCH + Duration::from_secs(1_777_636_800); // 2026-05-01T12:00:00Z
        KeyRecord::new(
            KeyId::new("7Fq2LxW9aZ3kPm4R").unwrap(),
            KeyName::new("billing-sync").unwrap(),
            Scopes::new(["reports:read", "admin:keys"]).unwrap(),
            KeyDigest::of("mkc_0000000000000000_00000000000000000000000000000000000000000003HMsUU"),
            created,
            created + Duration::from_secs(86_400),
        )
        .with_last_used_at(Some(created + Duration::from_millis(1_500)))
        .with_ends_at(Some(created + Duration::from_secs(3_600)))
    }

    #[test]
    fn a_record_shows_every_public_field_in_rfc3339_utc_and_no_digest() {
        let json = serde_json::to_value(KeyView::new(&record()).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "7Fq2LxW9aZ3kPm4R",
                "name": "billing-sync",
                "scopes": ["admin:keys", "reports:read"],
                "created_at": "2026-05-01T12:00:00Z",
                "expires_at": "2026-05-02T12:00:00Z",
                "ends_at": "2026-05-01T13:00:00Z",
                "revoked_at": null,
                "last_used_at": "2026-05-01T12:00:01.5Z",
                "rotated_from": null,
            })
        );
        let text = json.to_string();
        assert!(!text.contains("6cddf45d"), "the digest must never be shown");
    }

    #[test]
    fn times_outside_rfc3339_are_an_error_not_a_panic() {
        let far = UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert!(matches!(utc(far), Err(AdminError::Unrepresentable)));
        let before_year_0 = UNIX_EPOCH - Duration::from_secs(70_000_000_000);
        assert!(matches!(
            utc(before_year_0),
            Err(AdminError::Unrepresentable)
        ));
        assert_eq!(utc(UNIX_EPOCH).unwrap(), OffsetDateTime::UNIX_EPOCH);
    }
}
