//! The limits of a create request (DESIGN §12): `rate_limit`, `quota`, `allowed_ips`,
//! each optional, each refused with a 422 that names it (and the member at fault).
//!
//! ```text
//! "rate_limit": {"requests": 100, "per_secs": 60}
//! "quota": {"requests": 10000, "per": "day"}          // or "month"
//! "allowed_ips": ["203.0.113.0/24", "2001:db8::/32"]  // 1 to 64 entries
//! ```

use serde_json::{Map, Value};

use super::problem::FieldError;
use tower_apikey::record::{AllowedIps, LimitError, Quota, QuotaPeriod, RateLimit};

/// The limits asked for; `None` where a field was absent or `null`.
#[derive(Debug, Default)]
pub(super) struct LimitsRequest {
    pub(super) rate_limit: Option<RateLimit>,
    pub(super) quota: Option<Quota>,
    pub(super) allowed_ips: Option<AllowedIps>,
}

/// The field names this module reads.
pub(super) const FIELDS: &[&str] = &["rate_limit", "quota", "allowed_ips"];

impl LimitsRequest {
    /// Reads the three fields of `object`, adding a field-named error for each problem.
    pub(super) fn parse(object: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Self {
        Self {
            rate_limit: rate_limit(object.get("rate_limit"), errors),
            quota: quota(object.get("quota"), errors),
            allowed_ips: allowed_ips(object.get("allowed_ips"), errors),
        }
    }
}

pub(super) fn rate_limit(value: Option<&Value>, errors: &mut Vec<FieldError>) -> Option<RateLimit> {
    const SHAPE: &str =
        "rate_limit must be an object such as {\"requests\": 100, \"per_secs\": 60}, or null";
    let object = object_of(
        value,
        "rate_limit",
        SHAPE,
        &["requests", "per_secs"],
        errors,
    )?;
    let requests = count(object, "rate_limit", "requests", errors);
    let per_secs = count(object, "rate_limit", "per_secs", errors);
    match RateLimit::new(requests?, per_secs?) {
        Ok(limit) => Some(limit),
        Err(error) => {
            errors.push(limit_error("rate_limit", &error));
            None
        }
    }
}

pub(super) fn quota(value: Option<&Value>, errors: &mut Vec<FieldError>) -> Option<Quota> {
    const SHAPE: &str =
        "quota must be an object such as {\"requests\": 10000, \"per\": \"day\"}, or null";
    let object = object_of(value, "quota", SHAPE, &["requests", "per"], errors)?;
    let requests = count(object, "quota", "requests", errors);
    let per = match object.get("per").and_then(Value::as_str) {
        Some("day") => Some(QuotaPeriod::Day),
        Some("month") => Some(QuotaPeriod::Month),
        _ => {
            errors.push(FieldError::new(
                "quota.per",
                "quota.per must be \"day\" or \"month\" (UTC calendar periods)",
            ));
            None
        }
    };
    match Quota::new(requests?, per?) {
        Ok(quota) => Some(quota),
        Err(error) => {
            errors.push(limit_error("quota", &error));
            None
        }
    }
}

pub(super) fn allowed_ips(
    value: Option<&Value>,
    errors: &mut Vec<FieldError>,
) -> Option<AllowedIps> {
    const SHAPE: &str = "allowed_ips must be an array of addresses or CIDR networks such as [\"203.0.113.0/24\", \"2001:db8::/32\"], or null";
    let items = match value {
        None | Some(Value::Null) => return None,
        Some(Value::Array(items)) => items,
        Some(_) => {
            errors.push(FieldError::new("allowed_ips", SHAPE));
            return None;
        }
    };
    let Some(texts) = items.iter().map(Value::as_str).collect::<Option<Vec<_>>>() else {
        errors.push(FieldError::new("allowed_ips", SHAPE));
        return None;
    };
    match AllowedIps::new(texts) {
        Ok(ips) => Some(ips),
        Err(error) => {
            errors.push(limit_error("allowed_ips", &error));
            None
        }
    }
}

/// The object in `value`, with no members but `members`; `None` (and no error) when
/// absent or `null`.
fn object_of<'a>(
    value: Option<&'a Value>,
    field: &str,
    shape: &str,
    members: &[&str],
    errors: &mut Vec<FieldError>,
) -> Option<&'a Map<String, Value>> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::Object(object)) => {
            if let Some(unknown) = object.keys().find(|k| !members.contains(&k.as_str())) {
                let shown: String = unknown.chars().take(32).collect();
                errors.push(FieldError::new(
                    field,
                    format!("{field} has no member {shown:?}; {shape}"),
                ));
                return None;
            }
            Some(object)
        }
        Some(_) => {
            errors.push(FieldError::new(field, shape));
            None
        }
    }
}

/// A whole number from 1 to 4,294,967,295 in `object[member]`.
fn count(
    object: &Map<String, Value>,
    field: &str,
    member: &str,
    errors: &mut Vec<FieldError>,
) -> Option<u32> {
    let found = object
        .get(member)
        .and_then(super::body::whole_number)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|&n| n > 0);
    if found.is_none() {
        errors.push(FieldError::new(
            format!("{field}.{member}"),
            format!("{field}.{member} must be a whole number from 1 to 4294967295"),
        ));
    }
    found
}

fn limit_error(field: &str, error: &LimitError) -> FieldError {
    FieldError::new(field, format!("{field}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> (LimitsRequest, Vec<String>) {
        let object = json.as_object().unwrap().clone();
        let mut errors = Vec::new();
        let limits = LimitsRequest::parse(&object, &mut errors);
        (limits, errors.into_iter().map(|e| e.field).collect())
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
