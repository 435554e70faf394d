//! `PATCH /keys/{id}`'s body, declared once: `{"name"?, "rate_limit"?, "quota"?,
//! "allowed_ips"?}`.
//!
//! A field left out stays as it is; `null` removes a limit (a name cannot be removed).
//! Scopes cannot be patched: a key's scopes are what it was created (and granted) with,
//! so a change of scopes is a new key (rotate, or create and revoke).

use utoipa::ToSchema;

use super::json::Object;
use super::limits_body::IpNetwork;
use super::problem::AdminError;
use super::view::{QuotaView, RateLimitView};
use super::wire::{self, Change, Kept, wire_struct};
use tower_apikey::record::{AllowedIps, KeyName, Quota, RateLimit};
use tower_apikey::store::KeyUpdate;

wire_struct! {
    /// `PATCH /keys/{id}`'s body. A field left out stays as it is; `null` removes a limit
    /// or the allowlist. `scopes` cannot be changed (422)
    #[derive(Debug, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(super) struct UpdateKeyBody {
        /// A new name; it cannot be removed
        #[schema(schema_with = super::create_body::name_schema, required = false)]
        name: Kept<KeyName>,
        /// `requests` per `per_secs` seconds; `null` removes it. No looser than the acting
        /// key's own, if it has one (403, `too_loose`)
        #[schema(value_type = Option<RateLimitView>, required = false)]
        rate_limit: Change<RateLimit>,
        /// `requests` per UTC calendar day or month; `null` removes it. No looser than the
        /// acting key's own, if it has one (403, `too_loose`)
        #[schema(value_type = Option<QuotaView>, required = false)]
        quota: Change<Quota>,
        /// The addresses and CIDR networks the key is accepted from (1 to 64); `null`
        /// removes the allowlist. Inside the acting key's own, if it has one (403,
        /// `too_loose`)
        #[schema(value_type = Option<Vec<IpNetwork>>, min_items = 1, max_items = 64, required = false)]
        allowed_ips: Change<AllowedIps>,
    }
    refused: &[(
        "scopes",
        "scopes cannot be changed: a key keeps the scopes it was created with; \
         create a key with the new scopes (or rotate for the same ones) and revoke \
         this one",
    )];
}

/// Checks every field of a PATCH body and reports every problem at once.
pub(super) fn parse(object: &Object) -> Result<KeyUpdate, AdminError> {
    let body: UpdateKeyBody = wire::fill(object, Default::default())?;
    let mut update = KeyUpdate::new();
    if let Some(name) = body.name.0 {
        update = update.name(name);
    }
    // Present, even as `null`, means "change".
    if let Some(limit) = body.rate_limit.0 {
        update = update.rate_limit(limit);
    }
    if let Some(quota) = body.quota.0 {
        update = update.quota(quota);
    }
    if let Some(ips) = body.allowed_ips.0 {
        update = update.allowed_ips(ips);
    }
    Ok(update)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use tower_apikey::record::{Quota, QuotaPeriod, RateLimit};

    use crate::json::testing::object;

    fn fields(json: Value) -> Vec<String> {
        crate::json::testing::fields(parse(&object(json)).unwrap_err())
    }

    #[test]
    fn absent_fields_stay_null_clears_and_values_set() {
        let update = parse(&object(serde_json::json!({
            "name": "renamed",
            "rate_limit": null,
            "quota": {"requests": 10, "per": "day"},
        })))
        .unwrap();
        assert_eq!(update.name_change().unwrap().as_str(), "renamed");
        assert_eq!(update.rate_limit_change(), Some(None), "null clears");
        assert_eq!(
            update.quota_change(),
            Some(Some(Quota::new(10, QuotaPeriod::Day).unwrap()))
        );
        assert!(update.allowed_ips_change().is_none(), "absent stays");
        let update = parse(&object(serde_json::json!({
            "rate_limit": {"requests": 5, "per_secs": 1},
            "allowed_ips": ["192.0.2.1"],
        })))
        .unwrap();
        assert_eq!(
            update.rate_limit_change(),
            Some(Some(RateLimit::new(5, 1).unwrap()))
        );
        assert!(update.name_change().is_none());
        assert!(parse(&object(serde_json::json!({}))).unwrap().is_empty());
    }

    #[test]
    fn every_bad_field_is_named_and_scopes_cannot_be_patched() {
        assert_eq!(
            fields(serde_json::json!({
                "name": null,
                "rate_limit": {"requests": 0, "per_secs": 1},
                "quota": {"requests": 1, "per": "week"},
                "allowed_ips": [],
                "scopes": ["admin:keys"],
                "expires_at": "2030-01-01T00:00:00Z",
            })),
            [
                "name",
                "rate_limit.requests",
                "quota.per",
                "allowed_ips",
                "scopes",
                "expires_at"
            ]
        );
        assert_eq!(fields(serde_json::json!({"name": 7})), ["name"]);
        assert_eq!(fields(serde_json::json!({"nmae": "x"})), ["nmae"]);
    }
}
