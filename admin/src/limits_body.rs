//! The limits of a create or PATCH body (DESIGN §12): `rate_limit`, `quota`,
//! `allowed_ips`, each read as its core type ([`Field`]), each refused with a 422 that
//! names it (and the member at fault).
//!
//! ```text
//! "rate_limit": {"requests": 100, "per_secs": 60}
//! "quota": {"requests": 10000, "per": "day"}          // or "month"
//! "allowed_ips": ["203.0.113.0/24", "2001:db8::/32"]  // 1 to 64 entries
//! ```

use serde_json::{Map, Value};
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::json::whole_number;
use super::problem::FieldError;
use super::wire::{At, Field};
use tower_apikey::record::{AllowedIps, LimitError, Quota, QuotaPeriod, RateLimit};

const RATE_LIMIT_SHAPE: &str =
    "rate_limit must be an object such as {\"requests\": 100, \"per_secs\": 60}, or null";
const QUOTA_SHAPE: &str =
    "quota must be an object such as {\"requests\": 10000, \"per\": \"day\"}, or null";

impl Field for RateLimit {
    fn read(value: &Value, at: &mut At<'_>) -> Option<Self> {
        let object = object_of(value, at, RATE_LIMIT_SHAPE, &["requests", "per_secs"])?;
        let (requests, per_secs) = (count(object, at, "requests"), count(object, at, "per_secs"));
        limit(at, RateLimit::new(requests?, per_secs?))
    }
}

impl Field for Quota {
    fn read(value: &Value, at: &mut At<'_>) -> Option<Self> {
        let object = object_of(value, at, QUOTA_SHAPE, &["requests", "per"])?;
        let requests = count(object, at, "requests");
        let per = match object.get("per").and_then(Value::as_str) {
            Some("day") => Some(QuotaPeriod::Day),
            Some("month") => Some(QuotaPeriod::Month),
            _ => {
                let field = at.field;
                at.push(FieldError::new(
                    format!("{field}.per"),
                    format!("{field}.per must be \"day\" or \"month\" (UTC calendar periods)"),
                ))
            }
        };
        limit(at, Quota::new(requests?, per?))
    }
}

impl Field for AllowedIps {
    fn read(value: &Value, at: &mut At<'_>) -> Option<Self> {
        const SHAPE: &str = "allowed_ips must be an array of addresses or CIDR networks such as [\"203.0.113.0/24\", \"2001:db8::/32\"], or null";
        let texts = match value {
            Value::Array(items) => items.iter().map(Value::as_str).collect::<Option<Vec<_>>>(),
            _ => None,
        };
        match texts {
            Some(texts) => limit(at, AllowedIps::new(texts)),
            None => at.refuse(SHAPE),
        }
    }
}

/// The object in `value`, with no members but `members`.
fn object_of<'a>(
    value: &'a Value,
    at: &mut At<'_>,
    shape: &str,
    members: &[&str],
) -> Option<&'a Map<String, Value>> {
    let Value::Object(object) = value else {
        return at.refuse(shape);
    };
    match object.keys().find(|k| !members.contains(&k.as_str())) {
        Some(unknown) => {
            let shown: String = unknown.chars().take(32).collect();
            at.refuse(format!("{} has no member {shown:?}; {shape}", at.field))
        }
        None => Some(object),
    }
}

/// A whole number from 1 to 4,294,967,295 in `object[member]`.
fn count(object: &Map<String, Value>, at: &mut At<'_>, member: &str) -> Option<u32> {
    let found = object
        .get(member)
        .and_then(whole_number)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|&n| n > 0);
    if found.is_none() {
        let field = at.field;
        at.push::<()>(FieldError::new(
            format!("{field}.{member}"),
            format!("{field}.{member} must be a whole number from 1 to 4294967295"),
        ));
    }
    found
}

/// What a limit's constructor answers, its error named by the field.
fn limit<T>(at: &mut At<'_>, result: Result<T, LimitError>) -> Option<T> {
    let field = at.field;
    at.checked(result, |error| {
        FieldError::new(field, format!("{field}: {error}"))
    })
}

/// One entry of `allowed_ips`, as its schema says: an address or a CIDR network.
pub(super) struct IpNetwork;

impl PartialSchema for IpNetwork {
    fn schema() -> RefOr<Schema> {
        const OCTET: &str = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
        // The IPv6 forms without an embedded IPv4 address: eight groups, or fewer around `::`.
        const IPV6: &str = "(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,7}:|\
            (?:[0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,5}(?::[0-9A-Fa-f]{1,4}){1,2}|\
            (?:[0-9A-Fa-f]{1,4}:){1,4}(?::[0-9A-Fa-f]{1,4}){1,3}|(?:[0-9A-Fa-f]{1,4}:){1,3}(?::[0-9A-Fa-f]{1,4}){1,4}|\
            (?:[0-9A-Fa-f]{1,4}:){1,2}(?::[0-9A-Fa-f]{1,4}){1,5}|[0-9A-Fa-f]{1,4}:(?::[0-9A-Fa-f]{1,4}){1,6}|\
            :(?:(?::[0-9A-Fa-f]{1,4}){1,7}|:))";
        let format = |name: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::Custom(name.to_owned())))
        };
        let pattern = |pattern: String| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(pattern))
        };
        AnyOfBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "An IP address or a CIDR network, such as `203.0.113.7`, `203.0.113.0/24`, \
                 `2001:db8::1` or `2001:db8::/32`",
            ))
            .item(format("ipv4"))
            .item(format("ipv6"))
            .item(pattern(format!(
                "^{OCTET}(?:\\.{OCTET}){{3}}/(?:3[0-2]|[12]?[0-9])$"
            )))
            .item(pattern(format!(
                "^{IPV6}/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9])$"
            )))
            .into()
    }
}

impl ToSchema for IpNetwork {}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::problem::AdminError;
    use crate::wire::{self, wire_struct};

    wire_struct! {
        /// The limits alone, as create and PATCH take them.
        #[derive(Debug, Default)]
        struct LimitsRequest {
            rate_limit: Option<RateLimit>,
            quota: Option<Quota>,
            allowed_ips: Option<AllowedIps>,
        }
    }

    fn parse(json: serde_json::Value) -> (LimitsRequest, Vec<String>) {
        let object = json.as_object().unwrap().clone();
        match wire::fill::<LimitsRequest>(&object, Default::default()) {
            Ok(limits) => (limits, Vec::new()),
            Err(AdminError::Invalid(errors)) => (
                LimitsRequest::default(),
                errors.into_iter().map(|e| e.field).collect(),
            ),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn valid_limits_are_read() {
        let (limits, errors) = parse(serde_json::json!({
            "rate_limit": {"requests": 100, "per_secs": 60},
            "quota": {"requests": 10000, "per": "month"},
            "allowed_ips": ["203.0.113.0/24", "2001:db8::/32", "127.0.0.1"],
        }));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(limits.rate_limit, Some(RateLimit::new(100, 60).unwrap()));
        assert_eq!(
            limits.quota,
            Some(Quota::new(10_000, QuotaPeriod::Month).unwrap())
        );
        assert_eq!(limits.allowed_ips.unwrap().nets().len(), 3);
    }

    #[test]
    fn whole_numbers_written_as_floats_are_read() {
        // Found by Schemathesis: JSON Schema's `integer` includes `100.0`.
        let (limits, errors) = parse(serde_json::json!({
            "rate_limit": {"requests": 100.0, "per_secs": 6e1},
            "quota": {"requests": 10000.0, "per": "day"},
        }));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(limits.rate_limit, Some(RateLimit::new(100, 60).unwrap()));
        assert_eq!(
            limits.quota,
            Some(Quota::new(10_000, QuotaPeriod::Day).unwrap())
        );
        let (_, errors) = parse(serde_json::json!({
            "rate_limit": {"requests": 1.5, "per_secs": 1e30},
            "quota": {"requests": -1.0, "per": "day"},
        }));
        assert_eq!(
            errors,
            [
                "rate_limit.requests",
                "rate_limit.per_secs",
                "quota.requests"
            ]
        );
    }

    #[test]
    fn absent_or_null_limits_are_none() {
        let (limits, errors) = parse(serde_json::json!({"quota": null}));
        assert!(errors.is_empty());
        assert!(limits.rate_limit.is_none() && limits.quota.is_none());
        assert!(limits.allowed_ips.is_none());
    }

    #[test]
    fn every_invalid_limit_is_named() {
        let (_, errors) = parse(serde_json::json!({
            "rate_limit": {"requests": 0, "per_secs": 60},
            "quota": {"requests": 5, "per": "week"},
            "allowed_ips": ["10.0.0.0/33"],
        }));
        assert_eq!(errors, ["rate_limit.requests", "quota.per", "allowed_ips"]);
        let (_, errors) = parse(serde_json::json!({
            "rate_limit": {"requests": 1, "per_secs": 100000},
            "quota": "lots",
            "allowed_ips": [],
        }));
        assert_eq!(errors, ["rate_limit", "quota", "allowed_ips"]);
        let (_, errors) = parse(serde_json::json!({"rate_limit": {"requests": 1, "per": 1}}));
        assert_eq!(errors, ["rate_limit"]);
    }
}
