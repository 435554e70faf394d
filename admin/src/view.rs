//! What the admin router shows of a key: a serde view of [`KeyRecord`] without its digest.
//!
//! `KeyRecord` itself has no `Serialize`, so no code path can write a digest by accident;
//! these views copy out exactly the public fields.

use std::fmt;
use std::time::SystemTime;

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::problem::AdminError;
use tower_apikey::Actor;
use tower_apikey::KeyRecord;
use tower_apikey::PlaintextKey;
use tower_apikey::manager::ScopeCatalogue;
use tower_apikey::manager::Tenancy;

// The doc comments on these views are also their descriptions in the OpenAPI document
// (`GET /openapi.json`), which `ToSchema` derives from the very types serialised here.

/// A key record: everything but the digest, times in RFC 3339 UTC.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = KeyRecord)]
pub(super) struct KeyView {
    /// The key's public id: 16 base62 characters, safe to log and show.
    #[schema(pattern = "^[0-9A-Za-z]{16}$")]
    id: String,
    /// What uses the key.
    name: String,
    /// The tenant the key belongs to (DESIGN §14); `null` for a key of the application itself.
    #[schema(required = true)]
    tenant: Option<String>,
    /// The scopes the key holds, sorted.
    scopes: Vec<String>,
    /// When the key was created.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    /// When the key expires: at and after this time it is refused.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    expires_at: OffsetDateTime,
    /// The end a rotation scheduled for this key, if any (before `expires_at`).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    ends_at: Option<OffsetDateTime>,
    /// When the key was revoked, if it was.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    revoked_at: Option<OffsetDateTime>,
    /// The key's latest proven use, written about once per usage-flush period.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    last_used_at: Option<OffsetDateTime>,
    /// The id of the key this one was rotated from, if any.
    #[schema(required = true)]
    rotated_from: Option<String>,
    /// Who created the key: an admin key's id, a person's name, or `null` for the
    /// application itself.
    #[schema(required = true)]
    created_by: Option<String>,
    /// Who revoked the key, as `created_by`; `null` while it is not revoked.
    #[schema(required = true)]
    revoked_by: Option<String>,
    /// The key's rate limit; absent for a key without one.
    // Left out when unset, so that records of keys without limits read as before.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    rate_limit: Option<RateLimitView>,
    /// The key's quota; absent for a key without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    quota: Option<QuotaView>,
    /// The addresses and networks the key is accepted from; absent for any address.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    allowed_ips: Option<Vec<String>>,
    /// On the successor of an `until_first_use` rotation only (DESIGN §11): its first
    /// use ends `rotated_from` this many seconds later.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    predecessor_grace_secs: Option<u64>,
    /// The last client addresses, newest first; left out while there is none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    recent_ips: Vec<String>,
}

/// A rate limit: `requests` per `per_secs` seconds, as create takes it.
// `deny_unknown_fields` only for the schema: create and PATCH take this very shape, and
// refuse other members.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RateLimit)]
pub(super) struct RateLimitView {
    #[schema(minimum = 1, maximum = 4294967295_u32)]
    requests: u32,
    #[schema(minimum = 1, maximum = 86400)]
    per_secs: u32,
}

/// A quota: `requests` per UTC calendar day or month, as create takes it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Quota)]
pub(super) struct QuotaView {
    #[schema(minimum = 1, maximum = 4294967295_u32)]
    requests: u32,
    #[schema(value_type = QuotaPeriodName)]
    per: &'static str,
}

/// A quota's period: a UTC calendar day or month.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // Only its schema is used: `QuotaView::per` is the period's name.
pub(super) enum QuotaPeriodName {
    /// A UTC calendar day.
    Day,
    /// A UTC calendar month.
    Month,
}

impl KeyView {
    pub(super) fn new(record: &KeyRecord) -> Result<Self, AdminError> {
        Ok(Self {
            id: record.id().to_string(),
            name: record.name().to_string(),
            tenant: record.tenant().map(ToString::to_string),
            scopes: record.scopes().iter().map(ToString::to_string).collect(),
            created_at: utc(record.created_at())?,
            expires_at: utc(record.expires_at())?,
            ends_at: record.ends_at().map(utc).transpose()?,
            revoked_at: record.revoked_at().map(utc).transpose()?,
            last_used_at: record.last_used_at().map(utc).transpose()?,
            rotated_from: record.rotated_from().map(ToString::to_string),
            created_by: record.created_by().map(ToString::to_string),
            revoked_by: record.revoked_by().map(ToString::to_string),
            rate_limit: record.rate_limit().map(|l| RateLimitView {
                requests: l.requests(),
                per_secs: l.per_secs(),
            }),
            quota: record.quota().map(|q| QuotaView {
                requests: q.requests(),
                per: q.per().as_str(),
            }),
            allowed_ips: record
                .allowed_ips()
                .map(|ips| ips.nets().iter().map(ToString::to_string).collect()),
            predecessor_grace_secs: record.predecessor_grace().map(|g| g.as_secs()),
            recent_ips: record
                .recent_ips()
                .iter()
                .map(|ip| ip.to_string())
                .collect(),
        })
    }
}

/// The answer to create and rotate: the record and, this once, the key.
///
/// `Debug` shows the record and no key: the view lives only to be serialised into the
/// one answer that carries the key.
#[derive(Serialize, ToSchema)]
#[schema(as = CreatedKey)]
pub(super) struct CreatedView<'a> {
    #[serde(flatten)]
    record: KeyView,
    /// The new key's plaintext, shown in this answer only: store it now.
    #[schema(pattern = "^[a-z0-9]{1,8}_[0-9A-Za-z]{16}_[0-9A-Za-z]{49}$")]
    key: &'a str,
}

impl<'a> CreatedView<'a> {
    pub(super) fn new(record: KeyView, key: &'a PlaintextKey) -> Self {
        Self {
            record,
            key: key.expose_secret(),
        }
    }
}

impl fmt::Debug for CreatedView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedView")
            .field("record", &self.record)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// `GET /scopes`: the catalogue, which of its scopes the caller may grant, and who the
/// caller is.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ScopeCatalogue)]
pub(super) struct ScopesView<'a> {
    /// The scopes the application declares; `null` without a catalogue, when any
    /// valid scope may be asked for.
    #[schema(required = true)]
    catalogue: Option<Vec<CatalogueView<'a>>>,
    actor: ActorView<'a>,
    /// The caller's tenant (DESIGN §14): the only tenant it sees; `null` for an operator,
    /// who sees every tenant.
    #[schema(required = true)]
    tenant: Option<&'a str>,
}

/// One declared scope, and whether the caller may grant it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CatalogueEntry)]
struct CatalogueView<'a> {
    scope: &'a str,
    description: &'a str,
    grantable: bool,
}

/// Who the caller is, and the scopes it may grant.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CallingActor)]
struct ActorView<'a> {
    name: &'a str,
    may_grant: Vec<&'a str>,
}

impl<'a> ScopesView<'a> {
    pub(super) fn new(catalogue: Option<&'a ScopeCatalogue>, actor: &'a Actor) -> Self {
        let catalogue = catalogue.map(|catalogue| {
            catalogue
                .iter()
                .map(|entry| CatalogueView {
                    scope: entry.scope().as_str(),
                    description: entry.description(),
                    grantable: actor.may_grant().grants(entry.scope()),
                })
                .collect()
        });
        Self {
            catalogue,
            actor: ActorView {
                name: actor.name().as_str(),
                may_grant: actor.may_grant().iter().map(|s| s.as_str()).collect(),
            },
            tenant: match actor.tenancy() {
                Tenancy::Operator => None,
                Tenancy::Tenant(tenant) => Some(tenant.as_str()),
            },
        }
    }
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
    use std::time::{Duration, UNIX_EPOCH};
    use tower_apikey::KeyId;
    use tower_apikey::Scopes;
    use tower_apikey::key::KeyDigest;
    use tower_apikey::record::KeyName;

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
        .with_created_by(Some(
            tower_apikey::record::ActorName::new("alice@example.com").unwrap(),
        ))
        .with_rate_limit(Some(tower_apikey::record::RateLimit::new(100, 60).unwrap()))
        .with_quota(Some(
            tower_apikey::record::Quota::new(10_000, tower_apikey::record::QuotaPeriod::Month)
                .unwrap(),
        ))
        .with_allowed_ips(Some(
            tower_apikey::record::AllowedIps::new(["203.0.113.0/24", "2001:db8::/32"]).unwrap(),
        ))
    }

    #[test]
    fn a_record_shows_every_public_field_in_rfc3339_utc_and_no_digest() {
        let json = serde_json::to_value(KeyView::new(&record()).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "7Fq2LxW9aZ3kPm4R",
                "name": "billing-sync",
                "tenant": null,
                "scopes": ["admin:keys", "reports:read"],
                "created_at": "2026-05-01T12:00:00Z",
                "expires_at": "2026-05-02T12:00:00Z",
                "ends_at": "2026-05-01T13:00:00Z",
                "revoked_at": null,
                "last_used_at": "2026-05-01T12:00:01.5Z",
                "rotated_from": null,
                "created_by": "alice@example.com",
                "revoked_by": null,
                "rate_limit": {"requests": 100, "per_secs": 60},
                "quota": {"requests": 10000, "per": "month"},
                "allowed_ips": ["203.0.113.0/24", "2001:db8::/32"],
            })
        );
        let text = json.to_string();
        assert!(!text.contains("6cddf45d"), "the digest must never be shown");
    }

    #[test]
    fn the_view_carrying_a_new_key_does_not_debug_print_it() {
        let key = PlaintextKey::generate(&tower_apikey::key::KeyPrefix::default());
        let view = CreatedView::new(KeyView::new(&record()).unwrap(), &key);
        let debug = format!("{view:?}");
        let secret = key.expose_secret();
        assert!(!debug.contains(&secret[secret.len() - 49..]), "{debug}");
        assert!(
            debug.contains("7Fq2LxW9aZ3kPm4R"),
            "the record is shown: {debug}"
        );
        // It is serialised with the key, once.
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["key"], secret);
    }

    #[test]
    fn scopes_say_which_the_actor_may_grant() {
        let catalogue = ScopeCatalogue::new([
            ("reports:read", "Read reports"),
            ("reports:write", "Write reports"),
            ("admin:keys", "Manage keys"),
        ])
        .unwrap();
        let actor = Actor::person(
            "alice@example.com",
            Scopes::new(["reports:*"]).unwrap(),
            Tenancy::Operator,
        )
        .unwrap();
        let json = serde_json::to_value(ScopesView::new(Some(&catalogue), &actor)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "catalogue": [
                    {"scope": "admin:keys", "description": "Manage keys", "grantable": false},
                    {"scope": "reports:read", "description": "Read reports", "grantable": true},
                    {"scope": "reports:write", "description": "Write reports", "grantable": true},
                ],
                "actor": {"name": "alice@example.com", "may_grant": ["reports:*"]},
                "tenant": null,
            })
        );
        let open = serde_json::to_value(ScopesView::new(None, &actor)).unwrap();
        assert_eq!(open["catalogue"], serde_json::Value::Null);
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
